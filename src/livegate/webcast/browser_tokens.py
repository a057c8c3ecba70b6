"""The database side of browser tokens (webcast/jwt.py): issuing one for an app (and a user),
and turning one back into the caller the event stream serves.

Issuing for a user opens the grant's data key with the access token the backend presented and
wraps it once more, under a fresh secret that only the new token carries (`sk`), expiring with
it (housekeeping deletes the wrapping after). Opening checks, now and against the database,
that the API key is not revoked and, for a user, that the access token it came from and its
grant are still good; then the session opens with `sk`. Ending the grant deletes every
wrapping of its session, this one too.
"""

from __future__ import annotations

import datetime as dt
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

from anyio import to_thread
from sqlalchemy import bindparam, select

from livegate.config import Settings
from livegate.db.engine import Database
from livegate.db.models import AccessToken, ApiKey, Grant, utcnow
from livegate.errors import LivegateError
from livegate.vault import Vault, VaultError
from livegate.webcast.auth import KeyInfo, Principal, TokenHolder, refusal
from livegate.webcast.errors import bad_api_key, invalid_token
from livegate.webcast.jwt import EventsJwtClaims, issue_events_jwt

Signed = tuple[str, EventsJwtClaims]

KIND = "events"  # the vault wrapping's secret kind (at most 10 characters)
MAX_SOCKETS = 50  # per token
MAX_CREATORS = 20  # per token: the token must fit the WebSocket URL's query

_TOKEN_ROW = (
    select(
        AccessToken.id,
        AccessToken.token_digest,
        AccessToken.scope,
        AccessToken.expires_at,
        AccessToken.revoked_at,
        Grant.id.label("grant_id"),
        Grant.status,
        Grant.client_pk,
        Grant.account_id,
    )
    .join(Grant, Grant.id == AccessToken.grant_id)
    .where(AccessToken.id == bindparam("id"))
)
_KEY_ROW = select(ApiKey.id, ApiKey.key_digest, ApiKey.client_pk, ApiKey.revoked_at).where(
    ApiKey.id == bindparam("id")
)


def missing_api_key() -> LivegateError:
    return LivegateError(
        401,
        "missing_api_key",
        "POST /webcast/jwt is called by the app's backend with its API key (X-Api-Key), and "
        "optionally the user's access token to act as that user.",
        headers={"WWW-Authenticate": 'Bearer realm="livegate"'},
    )


@dataclass(frozen=True)
class Issued:
    token: str
    claims: EventsJwtClaims


class BrowserTokens:
    def __init__(self, settings: Settings, database: Database, vault: Vault) -> None:
        self.settings = settings
        self.db = database
        self.vault = vault

    async def issue(
        self,
        principal: Principal,
        access_token: str | None,
        *,
        creators: list[str],
        max_sockets: int,
        ttl: int,
    ) -> Issued:
        """A token for the caller (checked by the route's dependency): the API key's app,
        and the user's grant when an access token came too."""
        if principal.api_key is None:
            raise missing_api_key()
        sign = partial(
            issue_events_jwt,
            self.settings,
            creators=creators,
            max_sockets=max_sockets,
            api_key_id=principal.api_key.id,
        )
        if principal.caller is None or access_token is None:
            return Issued(*sign(ttl=ttl))
        return await to_thread.run_sync(
            self._issue_for_user, principal.caller, access_token, sign, ttl
        )

    def _issue_for_user(
        self, holder: TokenHolder, access_token: str, sign: Callable[..., Signed], ttl: int
    ) -> Issued:
        secret = secrets.token_urlsafe(32)
        with self.db.session() as s:
            row = s.scalar(select(AccessToken).where(AccessToken.token_digest == holder.digest))
            if row is None:  # the route's dependency found it a moment ago
                raise invalid_token("The access token is unknown.")
            # The browser token never outlives the access token it stands for.
            left = int((row.expires_at - utcnow()).total_seconds())
            ttl = max(1, min(ttl, left))
            try:
                session_row, data_key = self.vault.unwrap(s, access_token)
            except VaultError:
                raise invalid_token("login_required") from None
            expires = utcnow() + dt.timedelta(seconds=ttl)
            self.vault.wrap(s, session_row.id, data_key, secret, KIND, expires)
            signed = sign(
                ttl=ttl, grant_id=holder.grant_id, access_token_id=row.id, session_secret=secret
            )
        return Issued(*signed)

    async def principal(self, claims: EventsJwtClaims) -> Principal:
        """The caller a verified token stands for, checked against the database now;
        LivegateError (401) when its API key, access token or grant is no longer good."""
        return await to_thread.run_sync(self._principal, claims)

    def _principal(self, claims: EventsJwtClaims) -> Principal:
        key_row = self.db.read_first(_KEY_ROW, {"id": claims.api_key_id})
        if key_row is None or key_row.revoked_at is not None:
            raise bad_api_key()
        key = KeyInfo(key_row.id, key_row.client_pk, key_row.key_digest[:24])
        if claims.grant_id is None or claims.session_secret is None:
            return Principal(caller=None, api_key=key, jar=None, vault_session=False)
        row = self.db.read_first(_TOKEN_ROW, {"id": claims.access_token_id})
        if row is None or row.grant_id != claims.grant_id:
            raise invalid_token("The user's authorization is gone.")
        why = refusal(row.revoked_at, row.expires_at, row.status)
        if why is not None:
            raise invalid_token(why)
        try:
            with self.db.session() as s:
                jar = self.vault.open(s, claims.session_secret)
        except VaultError:
            raise invalid_token("login_required") from None
        holder = TokenHolder(
            grant_id=row.grant_id,
            client_pk=row.client_pk,
            account_id=row.account_id,
            scopes=frozenset(row.scope.split()),
            digest=row.token_digest,
        )
        return Principal(caller=holder, api_key=key, jar=jar, vault_session=True)
