"""Who is calling the webcast API: access token, API key, or both; and with which session.

- `Authorization: Bearer <t>` or `x-oauth-token: <t>`: an access token. Its grant's TikTok
  session is unwrapped from the vault and signs the upstream calls.
- `X-Api-Key: <k>` (or `?apiKey=`): an app's API key. Alone, it makes an anonymous call (no
  user session; the caller may bring its own TikTok cookies in `x-cookie-header`). Beside a
  token, the key must belong to the token's app.
- Neither: 401. Anonymous calls need an API key, so every call is attributable to an app.

Hot path: the token's validity (revoked, expired, grant status) is read from the database on
every call with one small query, so revocation and `login_required` take effect on the next
call; the expensive part (the joined token load and the vault unwrap) is cached per token for
a short while. API keys are cached for a few seconds.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass
from http.cookies import CookieError, SimpleCookie
from typing import Any

from anyio import to_thread
from sqlalchemy import bindparam, select
from starlette.requests import HTTPConnection

from livegate.api.errors import ApiError, bad_request, insufficient_scope, invalid_token
from livegate.api.errors import no_credentials as no_credentials_error
from livegate.api.ratelimit import Credential
from livegate.db.engine import Database
from livegate.db.models import AccessToken, ApiKey, Grant, utcnow
from livegate.oauth.bearer import extract_token
from livegate.oauth.service import Caller, OAuthService, TokenRejected
from livegate.secrets import ACCESS_TOKEN_PREFIX, API_KEY_PREFIX, digest

TOKEN_CACHE_TTL = 120.0
API_KEY_CACHE_TTL = 5.0
CACHE_SIZE = 10_000

_TOKEN_STATUS = (
    select(AccessToken.revoked_at, AccessToken.expires_at, Grant.status, Grant.id)
    .join(Grant, Grant.id == AccessToken.grant_id)
    .where(AccessToken.token_digest == bindparam("d"))
)
_API_KEY = select(ApiKey.id, ApiKey.client_pk, ApiKey.revoked_at).where(
    ApiKey.key_digest == bindparam("d")
)
_GRANT_STATUS = select(Grant.status).where(Grant.id == bindparam("g"))


@dataclass(frozen=True)
class KeyInfo:
    id: int
    client_pk: int | None
    ident: str


@dataclass
class Principal:
    caller: Caller | None  # the app + user behind the access token
    api_key: KeyInfo | None
    jar: dict[str, str] | None  # TikTok cookies to sign upstream calls with
    vault_session: bool  # the jar came from the vault (the user's session: never leaves us)
    token_digest: str | None

    @property
    def token_ident(self) -> str | None:
        return self.token_digest[:24] if self.token_digest else None

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
        if self.token_ident:
            out.append(Credential("token", self.token_ident))
        if self.api_key:
            out.append(Credential("api_key", self.api_key.ident))
        return out


@dataclass
class _Cached:
    caller: Caller
    jar: dict[str, str] | None
    at: float


class _Lru(OrderedDict[str, Any]):
    def put(self, key: str, value: Any) -> None:
        self[key] = value
        self.move_to_end(key)
        while len(self) > CACHE_SIZE:
            self.popitem(last=False)


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


class Authenticator:
    def __init__(self, oauth: OAuthService, database: Database) -> None:
        self.oauth = oauth
        self.db = database
        self._tokens: _Lru = _Lru()
        self._keys: _Lru = _Lru()

    # -- the per-call check (runs in a worker thread: database I/O) ----------------------

    def _check(
        self, token: str | None, api_key: str | None
    ) -> tuple[Caller | None, dict[str, str] | None, KeyInfo | None]:
        key_info = self._api_key(api_key) if api_key is not None else None
        if token is None:
            return None, None, key_info
        if not token.startswith(ACCESS_TOKEN_PREFIX):
            raise invalid_token("The access token is unknown.")
        d = digest(token)
        with self.db.engine.connect() as conn:
            row = conn.execute(_TOKEN_STATUS, {"d": d}).first()
        if row is None:
            raise invalid_token("The access token is unknown.")
        revoked_at, expires_at, grant_status, grant_id = row
        if grant_status == "login_required":
            self.forget_grant(grant_id)
            raise invalid_token("login_required")
        if revoked_at is not None:
            raise invalid_token("The access token was revoked.")
        if expires_at <= utcnow():
            raise invalid_token("The access token expired.")
        if grant_status != "active":
            raise invalid_token("The authorization was revoked.")
        cached = self._tokens.get(d)
        if cached is not None and time.monotonic() - cached.at < TOKEN_CACHE_TTL:
            return cached.caller, cached.jar, key_info
        try:
            caller, jar = self.oauth.authenticate(token, with_session=True)
        except TokenRejected as exc:
            raise invalid_token(exc.description) from None
        self._tokens.put(d, _Cached(caller, jar, time.monotonic()))
        return caller, jar, key_info

    def _api_key(self, key: str) -> KeyInfo:
        if not key.startswith(API_KEY_PREFIX):
            raise _bad_key()
        d = digest(key)
        cached = self._keys.get(d)
        if cached is not None and time.monotonic() - cached[1] < API_KEY_CACHE_TTL:
            info: KeyInfo = cached[0]
            return info
        with self.db.engine.connect() as conn:
            row = conn.execute(_API_KEY, {"d": d}).first()
        if row is None or row.revoked_at is not None:
            self._keys.pop(d, None)
            raise _bad_key()
        info = KeyInfo(id=row.id, client_pk=row.client_pk, ident=d[:24])
        self._keys.put(d, (info, time.monotonic()))
        return info

    def forget_grant(self, grant_id: int) -> None:
        for d in [d for d, c in list(self._tokens.items()) if c.caller.grant_id == grant_id]:
            self._tokens.pop(d, None)

    def grant_active(self, grant_id: int) -> bool:
        with self.db.engine.connect() as conn:
            status = conn.execute(_GRANT_STATUS, {"g": grant_id}).scalar()
        return status == "active"

    def token_usable(self, token_digest: str, grant_id: int) -> bool:
        """Whether the token (by its digest) is still valid and its grant still active."""
        with self.db.engine.connect() as conn:
            row = conn.execute(_TOKEN_STATUS, {"d": token_digest}).first()
        if row is None:
            return False
        revoked_at, expires_at, grant_status, row_grant = row
        return (
            row_grant == grant_id
            and revoked_at is None
            and expires_at > utcnow()
            and grant_status == "active"
        )

    # -- the request-level entry point ----------------------------------------------------

    async def authenticate(self, conn: HTTPConnection, scope: str) -> Principal:
        token = extract_token(conn)  # type: ignore[arg-type]
        api_key = conn.headers.get("x-api-key") or conn.query_params.get("apiKey") or None
        api_key = api_key.strip() if api_key else None
        cookie_header = conn.headers.get("x-cookie-header")
        if token and cookie_header:
            raise bad_request(
                "Send either an access token or x-cookie-header, not both: with a token "
                "livegate signs with the user's stored session."
            )
        if token is None and api_key is None:
            raise no_credentials_error()
        caller, jar, key_info = await to_thread.run_sync(self._check, token, api_key)
        if caller is not None:
            if scope and scope not in caller.scopes:
                raise insufficient_scope(scope)
            if key_info is not None and key_info.client_pk != caller.client_pk:
                raise ApiError(
                    403,
                    "The API key belongs to another app than the access token.",
                    error="api_key_mismatch",
                )
            return Principal(
                caller=caller,
                api_key=key_info,
                jar=dict(jar) if jar else None,
                vault_session=bool(jar and jar.get("sessionid")),
                token_digest=digest(token) if token else None,
            )
        own = parse_cookie_header(cookie_header) if cookie_header else None
        return Principal(
            caller=None, api_key=key_info, jar=own or None, vault_session=False, token_digest=None
        )


def _bad_key() -> ApiError:
    return ApiError(
        401,
        "The API key is unknown or revoked.",
        error="invalid_api_key",
        headers={"WWW-Authenticate": 'Bearer realm="livegate"'},
    )
