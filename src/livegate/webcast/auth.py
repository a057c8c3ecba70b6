"""Who is calling the webcast API: access token, API key, or both; and with which session.

- An access token (`Authorization: Bearer` or `x-oauth-token`): its grant's TikTok session
  is unwrapped from the vault and signs the upstream calls.
- An app's API key (`X-Api-Key` or `?apiKey=`): alone, it makes an anonymous call (no user
  session; the caller may bring its own TikTok cookies in `x-cookie-header`). Beside a token,
  the key must belong to the token's app.
- Neither: 401. Anonymous calls need an API key, so every call is attributable to an app.

Every call looks its credentials up in the database: one query joins the token to its grant
and, when the route calls TikTok, to the wrapping and the encrypted session, which are opened
in the same worker thread; an API key is one more single-row read. Nothing is kept between
calls, so a revocation, an expiry or `login_required` written by any process or instance
sharing the database refuses the very next call.

Unknown or revoked API keys count against the caller's address (`Limiter.api_key`); an
address over that limit is refused (429) before its key is looked up, so it learns nothing
more about keys.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from http.cookies import CookieError, SimpleCookie
from typing import Any

from anyio import to_thread
from sqlalchemy import Row, bindparam, select

from livegate.db.engine import Database
from livegate.db.models import AccessToken, ApiKey, Grant, SessionKeyWrap, TikTokSession, utcnow
from livegate.errors import LivegateError, bad_request
from livegate.ratelimit import Limiter, Rule
from livegate.secrets import ACCESS_TOKEN_PREFIX, API_KEY_PREFIX, digest
from livegate.vault import Vault, VaultError
from livegate.webcast.errors import (
    BAD_KEY,
    api_key_mismatch,
    bad_api_key,
    insufficient_scope,
    invalid_token,
    no_credentials,
    rate_limited,
)
from livegate.webcast.ratelimit import Credential

_TOKEN_COLUMNS = (
    AccessToken.grant_id,
    AccessToken.scope,
    AccessToken.expires_at,
    AccessToken.revoked_at,
    Grant.status,
    Grant.client_pk,
    Grant.account_id,
)
_TOKEN = (
    select(*_TOKEN_COLUMNS)
    .join(Grant, Grant.id == AccessToken.grant_id)
    .where(AccessToken.token_digest == bindparam("d"))
)
# The same, with what opens the grant's TikTok session: the token's wrapping of the data key,
# and the encrypted jar. Outer joins: a token without them is refused as login_required.
_TOKEN_AND_SESSION = (
    select(
        *_TOKEN_COLUMNS,
        SessionKeyWrap.secret_kind,
        SessionKeyWrap.server_key_id,
        SessionKeyWrap.salt,
        SessionKeyWrap.nonce.label("wrap_nonce"),
        SessionKeyWrap.wrapped_key,
        TikTokSession.nonce.label("session_nonce"),
        TikTokSession.ciphertext,
    )
    .join(Grant, Grant.id == AccessToken.grant_id)
    .outerjoin(SessionKeyWrap, SessionKeyWrap.secret_digest == AccessToken.token_digest)
    .outerjoin(TikTokSession, TikTokSession.id == SessionKeyWrap.session_id)
    .where(AccessToken.token_digest == bindparam("d"))
)
_API_KEY = select(ApiKey.id, ApiKey.client_pk, ApiKey.revoked_at).where(
    ApiKey.key_digest == bindparam("d")
)
# The relay's check at handshake time (relay.py).
_TOKEN_STATUS = (
    select(AccessToken.revoked_at, AccessToken.expires_at, Grant.status, Grant.id.label("grant_id"))
    .join(Grant, Grant.id == AccessToken.grant_id)
    .where(AccessToken.token_digest == bindparam("d"))
)


UNKNOWN_TOKEN = "The access token is unknown: send one livegate issued (lg_at_...)."  # noqa: S105  # a message


@dataclass(frozen=True)
class KeyInfo:
    id: int
    client_pk: int | None
    ident: str


@dataclass(frozen=True)
class TokenHolder:
    """The app and user behind a valid access token."""

    grant_id: int
    client_pk: int
    account_id: int
    scopes: frozenset[str]
    digest: str


@dataclass
class Principal:
    caller: TokenHolder | None
    api_key: KeyInfo | None
    jar: dict[str, str] | None  # TikTok cookies to sign upstream calls with
    vault_session: bool  # the jar came from the vault (the user's session: never leaves us)

    @property
    def token_digest(self) -> str | None:
        return self.caller.digest if self.caller else None

    @property
    def client_pk(self) -> int | None:
        if self.caller is not None:
            return self.caller.client_pk
        return self.api_key.client_pk if self.api_key else None

    @property
    def grant_id(self) -> int | None:
        return self.caller.grant_id if self.caller else None

    @property
    def has_session(self) -> bool:
        return bool(self.jar and self.jar.get("sessionid"))

    def credentials(self) -> list[Credential]:
        out = []
        if self.caller:
            out.append(Credential("token", self.caller.digest[:24]))
        if self.api_key:
            out.append(Credential("api_key", self.api_key.ident))
        return out


@dataclass(frozen=True)
class Presented:
    """The credentials a request carries (from its headers and query)."""

    token: str | None
    api_key: str | None
    cookie_header: str | None
    address: str


def parse_cookie_header(value: str) -> dict[str, str]:
    jar: dict[str, str] = {}
    cookie: SimpleCookie = SimpleCookie()
    try:
        cookie.load(value)
        jar = {k: m.value for k, m in cookie.items()}
    except CookieError:
        jar = {}
    if not jar:  # SimpleCookie is strict; fall back to plain name=value pairs
        for part in value.split(";"):
            name, sep, val = part.strip().partition("=")
            if sep and name:
                jar[name] = val
    return jar


def refusal(revoked_at: dt.datetime | None, expires_at: dt.datetime, status: str) -> str | None:
    """Why a token may not be used, as the 401's description; None when it may."""
    # First: every token of the grant, even one already rotated out, tells the app what to
    # do next (send the user through the QR flow again).
    if status == "login_required":
        return "login_required"
    if revoked_at is not None:
        return "The access token was revoked: get a new one (refresh, or authorize again)."
    if expires_at <= utcnow():
        return "The access token expired: get a new one with the refresh token."
    if status != "active":
        return "The authorization was revoked: send the user through authorization again."
    return None


class Authenticator:
    def __init__(self, database: Database, vault: Vault, limiter: Limiter) -> None:
        self.db = database
        self.vault = vault
        self.limiter = limiter

    async def authenticate(
        self, presented: Presented, scopes: list[str], with_session: bool
    ) -> Principal:
        """The caller, checked against the database now; a LivegateError when refused."""
        token, api_key = presented.token, presented.api_key
        if token and presented.cookie_header:
            raise bad_request(
                "Send either an access token or x-cookie-header, not both: with a token "
                "livegate signs with the user's stored session."
            )
        if token is None and api_key is None:
            raise no_credentials()
        key_rules = None
        if api_key is not None:
            key_rules = self.limiter.api_key(presented.address)
            await self._refuse_over_limit(key_rules)
            if not api_key.startswith(API_KEY_PREFIX):
                await self.limiter.failed(key_rules)
                raise bad_api_key()
        if token is not None and not token.startswith(ACCESS_TOKEN_PREFIX):
            raise invalid_token(UNKNOWN_TOKEN)
        try:
            return await to_thread.run_sync(self._look_up, presented, scopes, with_session)
        except LivegateError as exc:
            if key_rules is not None and exc.error == BAD_KEY:
                await self.limiter.failed(key_rules)
            raise

    async def _refuse_over_limit(self, rules: list[Rule]) -> None:
        retry = await self.limiter.retry_after(rules)
        if retry is not None:
            limit = self.limiter.settings.rate_limit_failures
            raise rate_limited(
                f"Too many unknown or revoked API keys from this address (limit {limit}); "
                f"retry in {retry} s with a current key.",
                label="failures:api_key",
                retry=retry,
            )

    # -- a worker thread: the database and the vault ----------------------------------------

    def _look_up(self, presented: Presented, scopes: list[str], with_session: bool) -> Principal:
        key = self._key(presented.api_key) if presented.api_key else None
        if presented.token is None:
            own = parse_cookie_header(presented.cookie_header) if presented.cookie_header else None
            return Principal(caller=None, api_key=key, jar=own or None, vault_session=False)
        holder, jar = self._token(presented.token, with_session)
        for scope in scopes:
            if scope not in holder.scopes:
                raise insufficient_scope(scope)
        if key is not None and key.client_pk != holder.client_pk:
            raise api_key_mismatch()
        has_session = bool(jar and jar.get("sessionid"))
        return Principal(caller=holder, api_key=key, jar=jar, vault_session=has_session)

    def _key(self, api_key: str) -> KeyInfo:
        d = digest(api_key)
        row = self.db.read_first(_API_KEY, {"d": d})
        if row is None or row.revoked_at is not None:
            raise bad_api_key()
        return KeyInfo(id=row.id, client_pk=row.client_pk, ident=d[:24])

    def _token(self, token: str, with_session: bool) -> tuple[TokenHolder, dict[str, str] | None]:
        d = digest(token)
        row = self.db.read_first(_TOKEN_AND_SESSION if with_session else _TOKEN, {"d": d})
        if row is None:
            raise invalid_token(UNKNOWN_TOKEN)
        why = refusal(row.revoked_at, row.expires_at, row.status)
        if why is not None:
            raise invalid_token(why)
        holder = TokenHolder(
            grant_id=row.grant_id,
            client_pk=row.client_pk,
            account_id=row.account_id,
            scopes=frozenset(row.scope.split()),
            digest=d,
        )
        return holder, self._jar(token, row) if with_session else None

    def _jar(self, token: str, row: Row[Any]) -> dict[str, str]:
        """The grant's cookie jar, opened with the access token (vault.py)."""
        if row.wrapped_key is None or row.ciphertext is None:
            raise invalid_token("login_required")
        try:
            if row.server_key_id != self.vault.current_key_id:
                # Wrapped under an older server key: the vault's own path moves it to the
                # newest one as it opens it (a write, once per token after a rotation).
                with self.db.session() as session:
                    return self.vault.open(session, token)
            data_key = self.vault.open_key(
                token,
                row.secret_kind,
                row.server_key_id,
                row.salt,
                row.wrap_nonce,
                row.wrapped_key,
            )
            return self.vault.decrypt_jar(data_key, row.session_nonce, row.ciphertext, row.grant_id)
        except VaultError:
            raise invalid_token("login_required") from None

    def token_usable(self, token_digest: str, grant_id: int) -> bool:
        """Whether the token (by its digest) is still valid and its grant still active."""
        row = self.db.read_first(_TOKEN_STATUS, {"d": token_digest})
        return (
            row is not None
            and row.grant_id == grant_id
            and refusal(row.revoked_at, row.expires_at, row.status) is None
        )
