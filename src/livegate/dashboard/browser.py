"""The browser on the other end of a dashboard or /account request, and the pages it gets.

`Browser` (built by `dependencies.py`) knows the browser's CSRF cookie and session, collects
the cookies the answer must set, and renders pages and redirects with them. Pages answer
`no-store`: they hold CSRF tokens and, once, secrets.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import urlsplit

from fastapi import Request
from starlette.responses import RedirectResponse, Response

from livegate.config import Settings
from livegate.dashboard import once, sessions
from livegate.dashboard.csrf import COOKIE as CSRF_COOKIE
from livegate.dashboard.csrf import CsrfSigner
from livegate.dashboard.strings import STRINGS
from livegate.db.models import Developer, TikTokAccount, WebSession
from livegate.errors import NO_STORE
from livegate.login.service import LoginService
from livegate.ratelimit import Limiter
from livegate.vault import Vault
from livegate.web import templates

SameSite = Literal["lax", "strict"]


@dataclass
class DashboardState:
    """What the dashboard and /account need from the app, set once by `routes.install`."""

    settings: Settings
    logins: LoginService
    limiter: Limiter
    vault: Vault
    csrf: CsrfSigner = field(init=False)

    def __post_init__(self) -> None:
        self.csrf = CsrfSigner(self.settings.server_keys[0])


@dataclass
class Browser:
    request: Request
    state: DashboardState
    csrf_cookie: str
    new_csrf_cookie: bool
    # The signed-in session (developer or /account), None when signed out.
    session: WebSession | None = None
    developer: Developer | None = None
    account: TikTokAccount | None = None
    _cookies: list[Callable[[Response], None]] = field(default_factory=list)

    @property
    def settings(self) -> Settings:
        return self.state.settings

    @property
    def session_digest(self) -> str:
        return self.session.token_digest if self.session is not None else ""

    @property
    def csrf_token(self) -> str:
        return self.state.csrf.token(self.csrf_cookie, self.session_digest)

    def csrf_ok(self, presented: str | None) -> bool:
        cookie = self.request.cookies.get(CSRF_COOKIE)
        return self.state.csrf.check(cookie, self.session_digest, presented)

    @property
    def secure(self) -> bool:
        return self.request.url.scheme == "https" or self.settings.issuer.startswith("https://")

    # -- cookies ----------------------------------------------------------------------------

    def set_cookie(
        self, name: str, value: str, path: str, max_age: int | None, samesite: SameSite = "lax"
    ) -> None:
        secure = self.secure

        def apply(response: Response) -> None:
            response.set_cookie(
                name,
                value,
                max_age=max_age,
                path=path,
                httponly=True,
                samesite=samesite,
                secure=secure,
            )

        self._cookies.append(apply)

    def clear_cookie(self, name: str, path: str, samesite: SameSite = "lax") -> None:
        secure = self.secure
        self._cookies.append(
            lambda r: r.delete_cookie(
                name, path=path, httponly=True, samesite=samesite, secure=secure
            )
        )

    def renew_csrf(self) -> None:
        """A new CSRF cookie (at sign-in: nothing from before it carries over)."""
        self.csrf_cookie = CsrfSigner.new_cookie()
        self.new_csrf_cookie = True

    # -- one-time secrets -------------------------------------------------------------------

    def show_once(self, url: str, shown: once.Shown) -> None:
        """Carry `shown` to the page at `url` (where this answer redirects), for one GET."""
        path = urlsplit(url).path
        token = self.request.cookies.get(sessions.DEVELOPER_COOKIE) or ""
        value = once.seal(self.state.vault, token, path, shown)
        self.set_cookie(once.COOKIE, value, path, once.TTL, samesite="strict")

    def take_once(self) -> once.Shown | None:
        """What a POST left for this page to show; gone from the browser after this answer."""
        value = self.request.cookies.get(once.COOKIE)
        if value is None:
            return None
        path = self.request.url.path
        self.clear_cookie(once.COOKIE, path, samesite="strict")
        token = self.request.cookies.get(sessions.DEVELOPER_COOKIE)
        return once.unseal(self.state.vault, token, path, value)

    # -- answers ----------------------------------------------------------------------------

    def finish(self, response: Response) -> Response:
        if self.new_csrf_cookie:
            self.set_cookie(CSRF_COOKIE, self.csrf_cookie, "/", None)
            self.new_csrf_cookie = False
        for apply in self._cookies:
            apply(response)
        self._cookies.clear()
        return response

    def render(
        self,
        template: str,
        data: dict[str, Any] | None = None,
        status: int = 200,
        headers: dict[str, str] | None = None,
    ) -> Response:
        context: dict[str, Any] = {
            "t": STRINGS,
            "csrf_token": self.csrf_token,
            "developer": self.developer,
            "account": self.account,
            "signup": self.settings.signup,
            **(data or {}),
        }
        response = templates.TemplateResponse(
            self.request,
            template,
            context,
            status_code=status,
            headers={**NO_STORE, **(headers or {})},
        )
        return self.finish(response)

    def redirect(self, url: str) -> Response:
        """303 See Other: the answer to every POST that changed something."""
        return self.finish(RedirectResponse(url, status_code=303, headers=NO_STORE))
