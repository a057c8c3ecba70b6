"""A small third-party app, as a developer would write one against livegate.

It sends the user to livegate's authorize endpoint (PKCE + state), exchanges the code with
Authlib's httpx client, shows the granted scopes and the user's profile, and shows a LIVE
room's chat with no TikTok library at all: its server mints a browser token
(`POST /webcast/jwt`, with its API key and the user's access token, which stay on the server),
and the page opens livegate's event stream (`GET /webcast/rooms/{id}/events?jwtKey=...`,
Server-Sent Events) itself (static/sample.js).
"""

from __future__ import annotations

import secrets
import time
import warnings
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import httpx
from authlib.common.security import generate_token
from authlib.integrations.base_client import OAuthError

with warnings.catch_warnings():
    # Authlib 1.9 flags its httpx integration in favour of an httpx2 package we don't use.
    warnings.simplefilter("ignore")
    from authlib.integrations.httpx_client import AsyncOAuth2Client
from fastapi import FastAPI, Request
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from starlette.responses import FileResponse, JSONResponse, RedirectResponse, Response

from livegate.oauth.scopes import CATALOGUE

HERE = Path(__file__).parent
templates = Jinja2Templates(directory=str(HERE / "templates"))
COOKIE = "sample_sid"
REVOKED = "Access was revoked — connect again."
UNREACHABLE = "livegate cannot be reached right now."


@dataclass
class UserSession:
    state: str | None = None
    verifier: str | None = None
    token: dict[str, Any] | None = None
    userinfo: dict[str, Any] | None = None
    error: str | None = None
    notice: str | None = None


@dataclass
class SampleConfig:
    gateway_url: str  # what the browser is sent to
    gateway_api_url: str  # what this app's server calls
    public_url: str
    client_id: str
    client_secret: str
    scope: str
    room_unique_id: str
    api_key: str  # the app's API key: mints the browser's stream tokens
    sessions: dict[str, UserSession] = field(default_factory=dict)

    @property
    def redirect_uri(self) -> str:
        return f"{self.public_url}/callback"


def _oauth(cfg: SampleConfig, **kwargs: Any) -> AsyncOAuth2Client:
    return AsyncOAuth2Client(
        cfg.client_id,
        cfg.client_secret,
        scope=cfg.scope,
        redirect_uri=cfg.redirect_uri,
        code_challenge_method="S256",
        **kwargs,
    )


def duration(seconds: float) -> str:
    """`2591998` as "30 days", `3599` as "1 hour": the largest unit it (nearly) reaches."""
    seconds = max(0, round(seconds))
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size * 0.95:
            n = round(seconds / size)
            return f"{n} {unit}{'' if n == 1 else 's'}"
    return f"{seconds} second{'' if seconds == 1 else 's'}"


def _scopes(token: dict[str, Any]) -> list[dict[str, str]]:
    """The granted scopes in words (livegate's catalogue), each with its code."""
    out = []
    for name in str(token.get("scope") or "").split():
        info = CATALOGUE.get(name)
        title, description = (info.title, info.description) if info else (name, "")
        out.append({"name": name, "title": title, "description": description})
    return out


def _keep(token: dict[str, Any]) -> dict[str, Any]:
    """The token response, with the refresh token's end as a time (its `_in` goes stale)."""
    kept = dict(token)
    if "refresh_expires_in" in kept:
        kept["refresh_expires_at"] = time.time() + float(kept["refresh_expires_in"])
    return kept


async def _userinfo(cfg: SampleConfig, access_token: str) -> httpx.Response:
    async with httpx.AsyncClient(timeout=10) as http:
        return await http.get(
            f"{cfg.gateway_api_url}/tiktok/oauth/userinfo",
            headers={"Authorization": f"Bearer {access_token}"},
        )


async def _check_access(cfg: SampleConfig, sess: UserSession) -> None:
    """Whether the user's grant still stands: refreshes an expired access token, and forgets
    the tokens (with a notice) when livegate no longer accepts them."""
    if not sess.token:
        return
    try:
        info = await _userinfo(cfg, sess.token["access_token"])
        if info.status_code == 401:
            async with _oauth(cfg) as client:
                token = await client.refresh_token(
                    f"{cfg.gateway_api_url}/tiktok/oauth/token",
                    refresh_token=sess.token["refresh_token"],
                )
            sess.token = _keep(token)
            info = await _userinfo(cfg, sess.token["access_token"])
    except OAuthError:
        sess.token = sess.userinfo = None
        sess.notice = REVOKED
        return
    except httpx.HTTPError:
        return  # livegate unreachable: show what we had
    if info.status_code == 200:
        sess.userinfo = info.json()


def create_sample_app(cfg: SampleConfig) -> FastAPI:
    app = FastAPI(title="livegate sample app", docs_url=None, redoc_url=None, openapi_url=None)
    app.mount("/static", StaticFiles(directory=str(HERE / "static")), name="static")

    @app.middleware("http")
    async def no_store(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        response = await call_next(request)
        if not request.url.path.startswith("/static/"):
            # The pages change with the user's connection: Back must never show a stale one.
            response.headers["Cache-Control"] = "no-store"
        return response

    def session_of(request: Request) -> tuple[str, UserSession]:
        sid = request.cookies.get(COOKIE) or secrets.token_urlsafe(16)
        return sid, cfg.sessions.setdefault(sid, UserSession())

    def with_cookie(response: Response, sid: str) -> Response:
        response.set_cookie(COOKIE, sid, httponly=True, samesite="lax")
        return response

    @app.get("/")
    async def home(request: Request) -> Response:
        sid, sess = session_of(request)
        await _check_access(cfg, sess)
        token = sess.token or {}
        now = time.time()
        # A notice ("access was revoked") is shown once.
        notice, sess.notice = sess.notice, None
        context = {
            "cfg": cfg,
            "sess": sess,
            "notice": notice,
            "scopes": _scopes(token),
            "access_left": duration(float(token.get("expires_at") or now) - now),
            "refresh_left": duration(float(token.get("refresh_expires_at") or now) - now),
        }
        response = templates.TemplateResponse(request, "sample.html", context)
        return with_cookie(response, sid)

    @app.get("/favicon.ico", include_in_schema=False)
    async def favicon() -> Response:
        return FileResponse(HERE / "static" / "favicon.svg", media_type="image/svg+xml")

    @app.get("/login")
    async def login(request: Request) -> Response:
        sid, sess = session_of(request)
        sess.verifier = generate_token(48)
        async with _oauth(cfg) as client:
            url, state = client.create_authorization_url(
                f"{cfg.gateway_url}/tiktok/oauth/authorize", code_verifier=sess.verifier
            )
        sess.state = state
        return with_cookie(RedirectResponse(url, status_code=302), sid)

    @app.get("/callback")
    async def callback(request: Request) -> Response:
        _sid, sess = session_of(request)
        params = request.query_params
        sess.notice = None
        if params.get("error"):
            sess.error = params.get("error_description") or params["error"]
            return RedirectResponse("/", status_code=303)
        if not sess.state and sess.token:
            # Back to a sign-in that already finished: nothing to do again.
            return RedirectResponse("/", status_code=303)
        if not sess.state or params.get("state") != sess.state:
            sess.error = "state mismatch: start again"
            return RedirectResponse("/", status_code=303)
        async with _oauth(cfg, state=sess.state) as client:
            token = await client.fetch_token(
                f"{cfg.gateway_api_url}/tiktok/oauth/token",
                authorization_response=str(request.url),
                code_verifier=sess.verifier,
            )
            info = await client.get(f"{cfg.gateway_api_url}/tiktok/oauth/userinfo")
        sess.token = _keep(token)
        sess.userinfo = info.json() if info.status_code == 200 else None
        sess.error = None
        sess.state = sess.verifier = None
        return RedirectResponse("/", status_code=303)

    @app.post("/logout")
    async def logout(request: Request) -> Response:
        sid, sess = session_of(request)
        if sess.token:
            async with httpx.AsyncClient() as http:
                await http.post(
                    f"{cfg.gateway_api_url}/tiktok/oauth/revoke",
                    data={"token": sess.token["refresh_token"], "token_type_hint": "refresh_token"},
                    auth=(cfg.client_id, cfg.client_secret),
                )
        cfg.sessions.pop(sid, None)
        return RedirectResponse("/", status_code=303)

    @app.get("/chat/token")
    async def chat_token(request: Request) -> Response:
        """Where the page opens the room's events: livegate's stream with a browser token,
        minted here with the app's API key and the user's access token, which never reach
        the browser."""
        _, sess = session_of(request)
        await _check_access(cfg, sess)
        if not sess.token:
            return JSONResponse({"error": "revoked", "message": REVOKED}, status_code=401)
        return await _browser_stream(cfg, sess.token["access_token"])

    return app


async def _browser_stream(cfg: SampleConfig, access_token: str) -> JSONResponse:
    """`{url}` of the room's event stream for the browser; or why not, in words: 401
    `{error: "revoked", message}` (the page goes home, which says so), else 200
    `{error, message}` (not live, say: an answer, not a failure of this call)."""
    room = cfg.room_unique_id
    try:
        async with httpx.AsyncClient(base_url=cfg.gateway_api_url, timeout=10) as http:
            r = await http.get(
                "/webcast/room_id",
                params={"unique_id": room},
                headers={"Authorization": f"Bearer {access_token}"},
            )
            if not _is_live(r):
                return _lookup_failed(cfg, r)
            minted = await http.post(
                "/webcast/jwt",
                json={"creators": [room], "max_sockets": 2, "expires_in": 60},
                headers={"Authorization": f"Bearer {access_token}", "X-Api-Key": cfg.api_key},
            )
    except httpx.HTTPError:
        return _why_not("unreachable", UNREACHABLE)
    if minted.status_code == 401:
        return JSONResponse({"error": "revoked", "message": REVOKED}, status_code=401)
    if minted.status_code != 200:
        return _why_not("refused", f"livegate refused the stream (HTTP {minted.status_code}).")
    query = urlencode({"jwtKey": minted.json()["token"]})
    url = f"{cfg.gateway_url}/webcast/rooms/{quote(room)}/events?{query}"
    return JSONResponse({"url": url, "room": room})


def _why_not(error: str, message: str) -> JSONResponse:
    return JSONResponse({"error": error, "message": message})


def _is_live(r: httpx.Response) -> bool:
    if r.status_code != 200:
        return False
    body = r.json()
    data = body.get("data") if isinstance(body.get("data"), dict) else {}
    return bool(body.get("room_id") or data.get("room_id")) and body.get("is_live") is not False


def _lookup_failed(cfg: SampleConfig, r: httpx.Response) -> JSONResponse:
    """A failed room lookup in words, never livegate's raw answer."""
    if r.status_code == 401:
        return JSONResponse({"error": "revoked", "message": REVOKED}, status_code=401)
    try:
        body = r.json()
    except ValueError:
        body = {}
    if not isinstance(body, dict):
        body = {}
    if body.get("error") == "user_offline" or body.get("is_live") is False:
        message = f"@{cfg.room_unique_id} is not LIVE right now."
        return _why_not("offline", message)
    if body.get("message"):
        message = f"Could not find the LIVE room: {body['message']}"
    else:
        message = f"Could not find the LIVE room (HTTP {r.status_code})."
    return _why_not("not_found", message)
