"""A small third-party app, as a developer would write one against livegate.

It sends the user to livegate's authorize endpoint (PKCE + state), exchanges the code with
Authlib's httpx client, shows the granted scopes and the user's profile, and streams a LIVE
room's chat through livegate with the unmodified TikTokLive library.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import warnings
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from authlib.common.security import generate_token

with warnings.catch_warnings():
    # Authlib 1.9 flags its httpx integration in favour of an httpx2 package we don't use.
    warnings.simplefilter("ignore")
    from authlib.integrations.httpx_client import AsyncOAuth2Client
from fastapi import FastAPI, Request
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from starlette.responses import RedirectResponse, Response, StreamingResponse

HERE = Path(__file__).parent
templates = Jinja2Templates(directory=str(HERE / "templates"))
COOKIE = "sample_sid"


@dataclass
class UserSession:
    state: str | None = None
    verifier: str | None = None
    token: dict[str, Any] | None = None
    userinfo: dict[str, Any] | None = None
    error: str | None = None


@dataclass
class SampleConfig:
    gateway_url: str  # what the browser is sent to
    gateway_api_url: str  # what this app's server calls
    public_url: str
    client_id: str
    client_secret: str
    scope: str
    room_unique_id: str
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


def create_sample_app(cfg: SampleConfig) -> FastAPI:
    app = FastAPI(title="livegate sample app", docs_url=None, redoc_url=None, openapi_url=None)
    app.mount("/static", StaticFiles(directory=str(HERE / "static")), name="static")

    def session_of(request: Request) -> tuple[str, UserSession]:
        sid = request.cookies.get(COOKIE) or secrets.token_urlsafe(16)
        return sid, cfg.sessions.setdefault(sid, UserSession())

    def with_cookie(response: Response, sid: str) -> Response:
        response.set_cookie(COOKIE, sid, httponly=True, samesite="lax")
        return response

    @app.get("/")
    async def home(request: Request) -> Response:
        sid, sess = session_of(request)
        response = templates.TemplateResponse(
            request,
            "sample.html",
            {"cfg": cfg, "sess": sess, "scopes": (sess.token or {}).get("scope", "").split()},
        )
        return with_cookie(response, sid)

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
        if params.get("error"):
            sess.error = params.get("error_description") or params["error"]
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
        sess.token = dict(token)
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

    @app.get("/chat/stream")
    async def chat_stream(request: Request) -> Response:
        _, sess = session_of(request)
        if not sess.token:
            return Response("not connected", status_code=401)
        token = sess.token["access_token"]
        return StreamingResponse(_chat_events(cfg, token, request), media_type="text/event-stream")

    return app


def _sse(kind: str, data: dict[str, Any]) -> bytes:
    return f"event: {kind}\ndata: {json.dumps(data)}\n\n".encode()


async def _chat_events(cfg: SampleConfig, token: str, request: Request) -> AsyncIterator[bytes]:
    """Watch the room with TikTokLive, signed through livegate with the user's token."""
    from TikTokLive import TikTokLiveClient
    from TikTokLive.client.web.web_settings import WebDefaults
    from TikTokLive.events import CommentEvent, ConnectEvent

    async with httpx.AsyncClient(timeout=10) as http:
        r = await http.get(
            f"{cfg.gateway_api_url}/webcast/room_id",
            params={"unique_id": cfg.room_unique_id},
            headers={"x-oauth-token": token},
        )
    if r.status_code != 200:
        yield _sse("error", {"message": f"room lookup failed: {r.status_code} {r.text[:200]}"})
        return
    body = r.json()
    room_id = str(body.get("room_id") or body.get("data", {}).get("room_id") or "")
    queue: asyncio.Queue[bytes] = asyncio.Queue()
    WebDefaults.tiktok_sign_url = cfg.gateway_api_url
    client = TikTokLiveClient(unique_id=cfg.room_unique_id)
    signer = client.web.signer
    signer._sdk_client = signer.sdk_client.with_headers({"x-oauth-token": token})

    @client.on(ConnectEvent)
    async def on_connect(event: ConnectEvent) -> None:
        await queue.put(_sse("status", {"message": f"connected to @{cfg.room_unique_id}"}))

    @client.on(CommentEvent)
    async def on_comment(event: CommentEvent) -> None:
        await queue.put(
            _sse(
                "comment",
                {"user": event.user.nickname or event.user.unique_id, "text": event.comment},
            )
        )

    try:
        await client.start(room_id=int(room_id), fetch_live_check=False)
    except Exception as exc:
        yield _sse("error", {"message": f"{type(exc).__name__}: {str(exc)[:200]}"})
        return
    try:
        while not await request.is_disconnected():
            try:
                yield await asyncio.wait_for(queue.get(), timeout=15)
            except TimeoutError:
                yield b": keep-alive\n\n"
    finally:
        await client.disconnect()
