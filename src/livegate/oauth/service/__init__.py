"""The OAuth services, one per entity (authorizations, tokens, clients), and the object the
app wires them through. No HTTP here: each call is one database transaction."""

from __future__ import annotations

from livegate.config import Settings
from livegate.db.engine import Database
from livegate.oauth.lean.service import LeanTokens
from livegate.oauth.service.authorization import (
    AuthorizationService,
    ConsentRequest,
    upsert_account,
)
from livegate.oauth.service.client import ClientService
from livegate.oauth.service.token import Caller, TokenService
from livegate.vault import Vault

__all__ = [
    "AuthorizationService",
    "Caller",
    "ClientService",
    "ConsentRequest",
    "OAuthService",
    "TokenService",
    "upsert_account",
]


class OAuthService:
    def __init__(self, settings: Settings, database: Database, vault: Vault) -> None:
        self.settings = settings
        self.vault = vault
        self.authorizations = AuthorizationService(settings, database, vault)
        self.tokens = TokenService(settings, database, vault)
        self.lean = LeanTokens(self.tokens)
        self.clients = ClientService(settings, database, vault)

    # The resource server's entry points, where the webcast code calls them.

    def authenticate(
        self, access_token: str, with_session: bool = False
    ) -> tuple[Caller, dict[str, str] | None]:
        return self.tokens.authenticate(access_token, with_session)

    def mark_login_required(self, grant_id: int) -> None:
        self.tokens.mark_login_required(grant_id)
