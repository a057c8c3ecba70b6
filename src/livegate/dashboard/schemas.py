"""The dashboard's forms, as posted (field names as in the HTML forms).

No constraints here: the services check the values and say what to fix, and the form is
shown again with the developer's input.
"""

from __future__ import annotations

from pydantic import BaseModel, Field

from livegate.db.models import OAuthClient


class ClientForm(BaseModel):
    """The client form, shared by "new" and "edit" (which ignores `client_type`)."""

    name: str = ""
    description: str = ""
    logo_url: str = ""
    homepage_url: str = ""
    redirect_uris: str = Field(default="", description="One redirect URI per line.")
    scope: list[str] = Field(default_factory=list, description="Scopes the client may ask for.")
    client_type: str = Field(default="confidential", description="confidential or public.")
    theme: str = Field(default="auto", description="The consent page's theme: auto, light or dark.")

    @property
    def public(self) -> bool:
        return self.client_type == "public"

    @classmethod
    def from_row(cls, row: OAuthClient) -> ClientForm:
        return cls(
            name=row.name,
            description=row.description,
            logo_url=row.logo_url or "",
            homepage_url=row.homepage_url or "",
            redirect_uris="\n".join(row.redirect_uris),
            scope=list(row.scopes),
            client_type="public" if row.is_public else "confidential",
            theme=row.theme,
        )

    def uri_list(self) -> list[str]:
        return [u.strip() for u in self.redirect_uris.splitlines() if u.strip()]


class SignInForm(BaseModel):
    email: str = ""
    password: str = ""


class ApiKeyForm(BaseModel):
    name: str = ""
    client_id: str = Field(default="", description="The client the key belongs to, or empty.")
