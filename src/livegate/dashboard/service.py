"""Dashboard logic, no HTTP: developer accounts, client ownership and edits, API keys."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from livegate import apikeys, audit
from livegate.dashboard.passwords import MIN_LENGTH, hash_password, needs_rehash, verify_password
from livegate.db.models import ApiKey, Developer, OAuthClient
from livegate.oauth import clients, scopes

EMAIL_RE = re.compile(r"^[^@\s\x00-\x1f\x7f]+@[^@\s\x00-\x1f\x7f]+\.[^@\s\x00-\x1f\x7f]+$")
THEMES = ("auto", "light", "dark")


class DashboardError(ValueError):
    """A form value was refused; the message is shown to the developer."""


class Forbidden(PermissionError):
    pass


class NotFound(LookupError):
    pass


# -- developers ----------------------------------------------------------------------------


def normalize_email(email: str) -> str:
    email = email.strip().lower()
    if len(email) > 320 or not EMAIL_RE.match(email):
        raise DashboardError("bad_email")
    return email


def create_developer(db: Session, email: str, password: str, is_admin: bool = False) -> Developer:
    email = normalize_email(email)
    if len(password) < MIN_LENGTH:
        raise DashboardError("short_password")
    if db.scalar(select(Developer.id).where(Developer.email == email)) is not None:
        raise DashboardError("email_taken")
    row = Developer(email=email, password_hash=hash_password(password), is_admin=is_admin)
    db.add(row)
    db.flush()
    audit.record(db, "developer.created", developer_id=row.id, admin=is_admin)
    return row


def authenticate(db: Session, email: str, password: str) -> Developer | None:
    try:
        email = normalize_email(email)
    except DashboardError:
        email = ""
    row = db.scalar(select(Developer).where(Developer.email == email)) if email else None
    if not verify_password(row.password_hash if row else None, password) or row is None:
        return None
    if needs_rehash(row.password_hash):
        row.password_hash = hash_password(password)
    return row


def count_developers(db: Session) -> int:
    return int(db.scalar(select(func.count(Developer.id))) or 0)


# -- clients -------------------------------------------------------------------------------


def visible_clients(db: Session, dev: Developer) -> list[OAuthClient]:
    return clients.list_clients(db, owner_id=None if dev.is_admin else dev.id)


def owned_client(db: Session, dev: Developer, client_id: str) -> OAuthClient:
    """The client, if this developer may see and change it (its owner, or an admin)."""
    row = clients.get_client(db, client_id)
    if row is None:
        raise NotFound(client_id)
    if not dev.is_admin and row.owner_id != dev.id:
        raise Forbidden(client_id)
    return row


@dataclass
class ClientForm:
    name: str = ""
    description: str = ""
    logo_url: str = ""
    homepage_url: str = ""
    redirect_uris: str = ""
    scopes: list[str] = field(default_factory=list)
    public: bool = False
    theme: str = "auto"

    @classmethod
    def from_row(cls, row: OAuthClient) -> ClientForm:
        return cls(
            name=row.name,
            description=row.description,
            logo_url=row.logo_url or "",
            homepage_url=row.homepage_url or "",
            redirect_uris="\n".join(row.redirect_uris),
            scopes=list(row.scopes),
            public=row.is_public,
            theme=row.theme,
        )

    def uri_list(self) -> list[str]:
        return [u.strip() for u in self.redirect_uris.splitlines() if u.strip()]


def check_web_url(url: str, what: str) -> str | None:
    """An optional https URL (http only on loopback), for a logo or a homepage."""
    url = url.strip()
    if not url:
        return None
    parts = urlsplit(url)
    loopback = parts.hostname in ("localhost", "127.0.0.1", "::1")
    if (
        len(url) > 2000
        or not parts.netloc
        or not (parts.scheme == "https" or (parts.scheme == "http" and loopback))
    ):
        raise DashboardError(f"{what} must be an https URL")
    return url


def _validate(form: ClientForm) -> tuple[list[str], list[str], str | None, str | None]:
    if not form.name.strip():
        raise DashboardError("The name is required.")
    if len(form.name) > 200 or len(form.description) > 2000:
        raise DashboardError("The name or description is too long.")
    uris = form.uri_list()
    if not uris:
        raise DashboardError("Add at least one redirect URI.")
    try:
        uris = [clients.check_redirect_uri(u) for u in uris]
    except clients.ClientError as exc:
        raise DashboardError(str(exc)) from exc
    try:
        allowed = scopes.parse(" ".join(form.scopes))
    except scopes.UnknownScope as exc:
        raise DashboardError(f"Unknown scope: {exc.args[0]}") from exc
    if not allowed:
        raise DashboardError("Choose at least one scope.")
    if form.theme not in THEMES:
        raise DashboardError("The theme must be auto, light or dark.")
    logo = check_web_url(form.logo_url, "The logo URL")
    homepage = check_web_url(form.homepage_url, "The homepage")
    return uris, allowed, logo, homepage


def create_client(db: Session, dev: Developer, form: ClientForm) -> clients.NewClient:
    uris, allowed, logo, homepage = _validate(form)
    try:
        return clients.create_client(
            db,
            name=form.name,
            redirect_uris=uris,
            scope=" ".join(allowed),
            public=form.public,
            description=form.description.strip(),
            logo_url=logo,
            homepage_url=homepage,
            theme=form.theme,
            owner_id=dev.id,
        )
    except clients.ClientError as exc:
        raise DashboardError(str(exc)) from exc


def update_client(db: Session, row: OAuthClient, form: ClientForm) -> None:
    """Everything but the client type (which would change how it authenticates)."""
    uris, allowed, logo, homepage = _validate(form)
    row.name = form.name.strip()
    row.description = form.description.strip()
    row.logo_url = logo
    row.homepage_url = homepage
    row.redirect_uris = uris
    row.scopes = allowed
    row.theme = form.theme
    audit.record(db, "client.updated", client_pk=row.id)


# -- API keys ------------------------------------------------------------------------------


def visible_api_keys(db: Session, dev: Developer) -> list[ApiKey]:
    q = select(ApiKey).order_by(ApiKey.id.desc())
    if not dev.is_admin:
        q = q.where(ApiKey.owner_id == dev.id)
    return list(db.scalars(q))


def create_api_key(
    db: Session, dev: Developer, name: str, client_id: str | None
) -> tuple[str, ApiKey]:
    name = name.strip()
    if len(name) > 200:
        raise DashboardError("The name is too long.")
    client_pk = owned_client(db, dev, client_id).id if client_id else None
    return apikeys.create_api_key(db, name=name, client_pk=client_pk, owner_id=dev.id)


def owned_api_key(db: Session, dev: Developer, key_id: int) -> ApiKey:
    row = db.get(ApiKey, key_id)
    if row is None:
        raise NotFound(str(key_id))
    if not dev.is_admin and row.owner_id != dev.id:
        raise Forbidden(str(key_id))
    return row
