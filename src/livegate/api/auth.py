"""Who is calling the webcast API: access token, API key, or both; and with which session.

- `Authorization: Bearer <t>` or `x-oauth-token: <t>`: an access token. Its grant's TikTok
  session is unwrapped from the vault and signs the upstream calls.
- `X-Api-Key: <k>` (or `?apiKey=`): an app's API key. Alone, it makes an anonymous call (no
  user session; the caller may bring its own TikTok cookies in `x-cookie-header`). Beside a
  token, the key must belong to the token's app.
- Neither: 401. Anonymous calls need an API key, so every call is attributable to an app.

Unknown or revoked API keys count against the caller's address (`Limiter.api_key`); over the
limit, a key that is not already known good is refused (429) before it is looked up.

Hot path: a token's or key's check (the joined token load and the vault unwrap) is kept in
memory, tagged with the database's change generation (`db/changes.py`). A warm call uses it
without touching the database or a worker thread. Any update or delete by this process in the
token, grant, session, client or key tables moves the generation, so revocation and
`login_required` take effect on the next call. Such writes by other processes (a second
worker, the CLI) reach this one through `RemoteChanges`, which looks for them every
`LOOK_EVERY` seconds on the event loop, so they take effect within `STATUS_TTL`; while it
cannot look (at start, or with the database unreachable) nothing cached is used. Concurrent
calls that need the same check share it.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import math
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
from livegate.api.query import query_params
from livegate.api.ratelimit import Credential, Limiter, Rule, client_address
from livegate.db.changes import LOOK_EVERY, RemoteChanges
from livegate.db.engine import Database
from livegate.db.models import AccessToken, ApiKey, Grant, utcnow
from livegate.oauth.bearer import bearer_token
from livegate.oauth.service import Caller, OAuthService, TokenRejected
from livegate.secrets import ACCESS_TOKEN_PREFIX, API_KEY_PREFIX, digest

log = logging.getLogger(__name__)

STATUS_TTL = 2 * LOOK_EVERY  # how long a revocation made by another process can go unseen here
CACHE_SIZE = 10_000

_TOKEN_STATUS = (
    select(AccessToken.revoked_at, AccessToken.expires_at, Grant.status, Grant.id.label("grant_id"))
    .join(Grant, Grant.id == AccessToken.grant_id)
    .where(AccessToken.token_digest == bindparam("d"))
)
_API_KEY = select(ApiKey.id, ApiKey.client_pk, ApiKey.revoked_at).where(
    ApiKey.key_digest == bindparam("d")
)


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
class _TokenEntry:
    caller: Caller
    jar: dict[str, str] | None
    expires_at: float  # POSIX time
    generation: int  # the change generation the check was made under


@dataclass
class _KeyEntry:
    info: KeyInfo
    generation: int


_CheckTask = asyncio.Task[tuple[_TokenEntry | None, KeyInfo | None]]


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
    def __init__(self, oauth: OAuthService, database: Database, limiter: Limiter) -> None:
        self.oauth = oauth
        self.db = database
        self.limiter = limiter
        self._tokens: _Lru = _Lru()
        self._keys: _Lru = _Lru()
        self._checking: dict[tuple[str | None, str | None, int], _CheckTask] = {}
        self.remote = RemoteChanges(database.url, database.changes, LOOK_EVERY)

    # -- warm checks (event loop: memory only) ---------------------------------------------

    def _current(self, entry: _TokenEntry | _KeyEntry) -> bool:
        return entry.generation == self.db.changes.generation and self.remote.seen_within(
            STATUS_TTL
        )

    def _fresh_token(self, d: str) -> _TokenEntry | None:
        entry: _TokenEntry | None = self._tokens.get(d)
        if entry is not None and self._current(entry) and entry.expires_at > time.time():
            return entry
        return None

    def _fresh_key(self, d: str) -> KeyInfo | None:
        entry: _KeyEntry | None = self._keys.get(d)
        return entry.info if entry is not None and self._current(entry) else None

    # -- cold checks (a worker thread: database I/O) ----------------------------------------

    def _check_token(self, token: str, d: str) -> _TokenEntry:
        generation = self.db.changes.generation  # read before the database, never after
        try:
            caller, jar = self.oauth.authenticate(token, with_session=True)
        except TokenRejected as exc:
            self._tokens.pop(d, None)
            raise invalid_token(exc.description) from None
        entry = _TokenEntry(caller, jar, caller.expires_at.timestamp(), generation)
        self._tokens.put(d, entry)
        return entry

    def _check_key(self, d: str) -> KeyInfo:
        generation = self.db.changes.generation
        row = self.db.read_first(_API_KEY, {"d": d})
        if row is None or row.revoked_at is not None:
            self._keys.pop(d, None)
            raise _bad_key()
        info = KeyInfo(id=row.id, client_pk=row.client_pk, ident=d[:24])
        self._keys.put(d, _KeyEntry(info, generation))
        return info

    def _check(
        self, token: str | None, token_d: str | None, key_d: str | None
    ) -> tuple[_TokenEntry | None, KeyInfo | None]:
        """The database checks of the credentials given (a worker thread): key first."""
        key_info = self._check_key(key_d) if key_d else None
        entry = self._check_token(token, token_d) if token and token_d else None
        return entry, key_info

    async def _check_shared(
        self,
        token: str | None,
        token_d: str | None,
        key_d: str | None,
        entry: _TokenEntry | None,
        key_info: KeyInfo | None,
    ) -> tuple[_TokenEntry | None, KeyInfo | None]:
        """The checks the warm entries could not answer (`_check` in a worker thread), shared
        with concurrent calls: a check already running for the same credentials under the
        same change generation is awaited instead of started again.

        Without the sharing, a burst of calls with a token whose entry had gone stale (after
        any write to the credential tables) started one database check each: 16 at once,
        each taking 16-87 ms on one core, against 2-4 ms alone. A call that arrives after a
        write does not join a check started before it (its generation differs), so
        revocation still takes effect on the next call.
        """
        if entry is not None:
            token = token_d = None
        if key_info is not None:
            key_d = None
        need = (token_d, key_d, self.db.changes.generation)
        task = self._checking.get(need)
        if task is None:
            task = asyncio.get_running_loop().create_task(
                to_thread.run_sync(self._check, token, token_d, key_d)
            )
            self._checking[need] = task
            task.add_done_callback(lambda done: self._checked(need, done))
        # shield: a caller that goes away (client disconnect) does not cancel the others' check
        checked_entry, checked_key = await asyncio.shield(task)
        return checked_entry or entry, checked_key or key_info

    def _checked(self, need: tuple[str | None, str | None, int], done: _CheckTask) -> None:
        if self._checking.get(need) is done:
            del self._checking[need]
        if not done.cancelled():
            done.exception()  # retrieved: every waiter may have gone away

    def forget_grant(self, grant_id: int) -> None:
        for d in [d for d, c in list(self._tokens.items()) if c.caller.grant_id == grant_id]:
            self._tokens.pop(d, None)

    def token_usable(self, token_digest: str, grant_id: int) -> bool:
        """Whether the token (by its digest) is still valid and its grant still active."""
        row = self.db.read_first(_TOKEN_STATUS, {"d": token_digest})
        return (
            row is not None
            and row.grant_id == grant_id
            and _refusal(row.revoked_at, row.expires_at, row.status) is None
        )

    async def _refuse_over_limit(self, rules: list[Rule]) -> None:
        retry = await self.limiter.retry_after(rules)
        if retry is None:
            return
        limit = self.limiter.settings.rate_limit_failures
        raise ApiError(
            429,
            f"Too many unknown or revoked API keys from this address (limit {limit}); "
            f"retry in {retry} s.",
            error="rate_limited",
            # TikTokLive 7.0.1 reads RateLimit-Remaining with int() on any 429.
            headers={
                "RateLimit-Remaining": "0",
                "RateLimit-Reset": str(math.ceil(time.time()) + retry),
                "Retry-After": str(retry),
            },
            limit_label="failures:api_key",
            retry_after=retry,
        )

    # -- the request-level entry point ----------------------------------------------------

    async def authenticate(self, conn: HTTPConnection, scope: str) -> Principal:
        found = _credential_headers(conn.scope["headers"])
        token = bearer_token(found.get(b"authorization"), found.get(b"x-oauth-token"))
        api_key = found.get(b"x-api-key") or query_params(conn).get("apiKey") or None
        api_key = api_key.strip() if api_key else None
        cookie_header = found.get(b"x-cookie-header")
        if token and cookie_header:
            raise bad_request(
                "Send either an access token or x-cookie-header, not both: with a token "
                "livegate signs with the user's stored session."
            )
        if token is None and api_key is None:
            raise no_credentials_error()
        key_d = digest(api_key) if api_key else None
        key_info = self._fresh_key(key_d) if key_d else None
        key_rules = None
        if api_key is not None and key_info is None:
            # Only a key not known good here is held to the limit: warm calls pay nothing.
            key_rules = self.limiter.api_key(client_address(conn))
            await self._refuse_over_limit(key_rules)
            if not api_key.startswith(API_KEY_PREFIX):
                await self.limiter.failed(key_rules)
                raise _bad_key()
        if token is not None and not token.startswith(ACCESS_TOKEN_PREFIX):
            raise invalid_token("The access token is unknown.")
        token_d = digest(token) if token else None
        entry = self._fresh_token(token_d) if token_d else None
        if (token_d and entry is None) or (key_d and key_info is None):
            try:
                entry, key_info = await self._check_shared(token, token_d, key_d, entry, key_info)
            except ApiError as exc:
                if key_rules is not None and exc.error == _BAD_KEY:
                    await self.limiter.failed(key_rules)
                raise
        if entry is not None:
            caller, jar = entry.caller, entry.jar
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
                token_digest=token_d,
            )
        own = parse_cookie_header(cookie_header) if cookie_header else None
        return Principal(
            caller=None, api_key=key_info, jar=own or None, vault_session=False, token_digest=None
        )


_CREDENTIAL_HEADERS = frozenset(
    {b"authorization", b"x-oauth-token", b"x-api-key", b"x-cookie-header"}
)


def _credential_headers(raw: list[tuple[bytes, bytes]]) -> dict[bytes, str]:
    """The headers that carry credentials, each its first value, from one pass over the raw
    pairs (ASGI names are lower-case): four `Headers.get` calls scanned them four times."""
    found: dict[bytes, str] = {}
    for name, value in raw:
        if name in _CREDENTIAL_HEADERS and name not in found:
            found[name] = value.decode("latin-1")
    return found


def _refusal(revoked_at: dt.datetime | None, expires_at: dt.datetime, status: str) -> str | None:
    """Why a token (its `_TOKEN_STATUS` row) may not be used, as the 401's description."""
    if status == "login_required":
        return "login_required"
    if revoked_at is not None:
        return "The access token was revoked."
    if expires_at <= utcnow():
        return "The access token expired."
    if status != "active":
        return "The authorization was revoked."
    return None


_BAD_KEY = "invalid_api_key"


def _bad_key() -> ApiError:
    return ApiError(
        401,
        "The API key is unknown or revoked.",
        error=_BAD_KEY,
        headers={"WWW-Authenticate": 'Bearer realm="livegate"'},
    )
