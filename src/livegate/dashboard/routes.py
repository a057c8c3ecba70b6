"""The developer dashboard (/dashboard) and the end users' connected apps (/account). HTTP only."""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, ParamSpec, TypeVar

from fastapi import APIRouter, FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from sqlalchemy.orm import Session
from starlette.datastructures import FormData
from starlette.responses import RedirectResponse, Response

from livegate import apikeys
from livegate.config import Settings
from livegate.dashboard import account as account_service
from livegate.dashboard import service, sessions, usage
from livegate.dashboard.csrf import COOKIE as CSRF_COOKIE
from livegate.dashboard.csrf import FIELD as CSRF_FIELD
from livegate.dashboard.csrf import CsrfSigner
from livegate.dashboard.passwords import MIN_LENGTH
from livegate.dashboard.strings import STRINGS
from livegate.db.engine import Database
from livegate.db.models import Developer, Grant, TikTokAccount, WebSession, utcnow
from livegate.errors import NO_STORE
from livegate.ids import BadId, parse_id
from livegate.login import routes as login_routes
from livegate.login.service import LoginService
from livegate.oauth import clients, scopes
from livegate.ratelimit import Limiter, client_address
from livegate.secrets import digest, new_secret
from livegate.web import templates

router = APIRouter(include_in_schema=False)
T = TypeVar("T")
P = ParamSpec("P")


class DashboardState:
    def __init__(
        self, settings: Settings, database: Database, logins: LoginService, limiter: Limiter
    ) -> None:
        self.settings = settings
        self.db = database
        self.logins = logins
        self.csrf = CsrfSigner(settings.server_keys[0])
        self.limiter = limiter


def install(app: FastAPI) -> None:
    """Wire the dashboard into the app: its state, the /account sign-in hook, the routes."""
    settings: Settings = app.state.settings
    logins: LoginService = app.state.logins
    app.state.dashboard = DashboardState(settings, app.state.db, logins, app.state.limiter)
    logins.on_account_login = account_service.make_on_account_login(settings)
    app.include_router(router)


class PageError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass
class Ctx:
    request: Request
    state: DashboardState
    csrf_cookie: str
    new_csrf_cookie: bool
    session_row: WebSession | None = None
    developer: Developer | None = None
    account: TikTokAccount | None = None
    cookies: list[Callable[[Response], None]] = field(default_factory=list)

    @property
    def session_digest(self) -> str:
        return self.session_row.token_digest if self.session_row else ""

    @property
    def csrf_token(self) -> str:
        return self.state.csrf.token(self.csrf_cookie, self.session_digest)

    @property
    def secure(self) -> bool:
        return self.request.url.scheme == "https" or self.state.settings.issuer.startswith(
            "https://"
        )

    def set_cookie(self, name: str, value: str, path: str, max_age: int | None) -> None:
        secure = self.secure

        def apply(response: Response) -> None:
            response.set_cookie(
                name,
                value,
                max_age=max_age,
                path=path,
                httponly=True,
                samesite="lax",
                secure=secure,
            )

        self.cookies.append(apply)

    def clear_cookie(self, name: str, path: str) -> None:
        secure = self.secure
        self.cookies.append(
            lambda r: r.delete_cookie(name, path=path, httponly=True, samesite="lax", secure=secure)
        )

    def finish(self, response: Response) -> Response:
        if self.new_csrf_cookie:
            self.set_cookie(CSRF_COOKIE, self.csrf_cookie, "/", None)
            self.new_csrf_cookie = False
        for apply in self.cookies:
            apply(response)
        return response


def _state(request: Request) -> DashboardState:
    state: DashboardState = request.app.state.dashboard
    return state


async def _run(request: Request, fn: Callable[[Session], T]) -> T:
    db = _state(request).db

    def run() -> T:
        with db.session() as session:
            return fn(session)

    return await run_in_threadpool(run)


async def _context(request: Request, area: str) -> Ctx:
    """Who is asking: the developer (dashboard) or the TikTok account (/account), if any."""
    state = _state(request)
    cookie = request.cookies.get(CSRF_COOKIE)
    ctx = Ctx(
        request=request,
        state=state,
        csrf_cookie=cookie or CsrfSigner.new_cookie(),
        new_csrf_cookie=not cookie,
    )
    settings = state.settings

    def load(session: Session) -> None:
        if area == "dashboard":
            row = sessions.find(
                session,
                request.cookies.get(sessions.DEVELOPER_COOKIE),
                ("developer",),
                settings.dashboard_session_ttl,
            )
            if row is not None and row.developer_id is not None:
                ctx.session_row = row
                ctx.developer = session.get(Developer, row.developer_id)
        else:
            row = account_service.find_session(
                session, request.cookies.get(sessions.ACCOUNT_COOKIE), settings.account_session_ttl
            )
            if row is not None:
                ctx.session_row = row
                ctx.account = account_service.account_of(session, row)

    await _run(request, load)
    return ctx


async def _post(request: Request, area: str) -> tuple[Ctx, FormData]:
    """Every POST: the CSRF token first, before anything else happens."""
    form = await request.form()
    ctx = await _context(request, area)
    presented = form.get(CSRF_FIELD)
    ok = ctx.state.csrf.check(
        request.cookies.get(CSRF_COOKIE),
        ctx.session_digest,
        presented if isinstance(presented, str) else None,
    )
    if not ok:
        raise PageError(403, STRINGS["bad_csrf"])
    return ctx, form


def _render(
    ctx: Ctx,
    template: str,
    data: dict[str, Any] | None = None,
    status: int = 200,
    headers: dict[str, str] | None = None,
) -> Response:
    context: dict[str, Any] = {
        "t": STRINGS,
        "csrf_token": ctx.csrf_token,
        "developer": ctx.developer,
        "account": ctx.account,
        "signup": ctx.state.settings.signup,
    }
    context.update(data or {})
    response = templates.TemplateResponse(
        ctx.request, template, context, status_code=status, headers={**NO_STORE, **(headers or {})}
    )
    return ctx.finish(response)


def _redirect(ctx: Ctx, url: str) -> Response:
    return ctx.finish(RedirectResponse(url, status_code=303, headers=NO_STORE))


def _error_page(request: Request, status: int, message: str) -> Response:
    return templates.TemplateResponse(
        request,
        "dashboard/error.html",
        {"t": STRINGS, "message": message, "status": status, "developer": None, "account": None},
        status_code=status,
        headers=NO_STORE,
    )


def page(fn: Callable[P, Awaitable[Response]]) -> Callable[P, Awaitable[Response]]:
    """Turn refusals raised by a handler into an HTML error page with the right status."""

    @functools.wraps(fn)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> Response:
        request = kwargs.get("request")
        assert isinstance(request, Request)
        try:
            return await fn(*args, **kwargs)
        except PageError as exc:
            return _error_page(request, exc.status, exc.message)
        except service.Forbidden:
            return _error_page(request, 403, STRINGS["forbidden"])
        except (service.NotFound, account_service.GrantNotYours):
            return _error_page(request, 404, STRINGS["not_found"])
        except BadId as exc:
            message = STRINGS["not_found"] if exc.status == 404 else exc.message
            return _error_page(request, exc.status, message)

    return wrapper


def _require_developer(ctx: Ctx) -> Developer:
    if ctx.developer is None:
        raise _LoginRedirect()
    return ctx.developer


class _LoginRedirect(Exception):
    pass


def developer_page(fn: Callable[P, Awaitable[Response]]) -> Callable[P, Awaitable[Response]]:
    """A dashboard page: signed-out visitors are sent to the sign-in page."""

    @functools.wraps(fn)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> Response:
        try:
            return await fn(*args, **kwargs)
        except _LoginRedirect:
            return RedirectResponse("/dashboard/login", status_code=303, headers=NO_STORE)

    return page(wrapper)


# -- sign-in, sign-up, sign-out ------------------------------------------------------------


@router.get("/dashboard", response_model=None)
@developer_page
async def dashboard_home(request: Request) -> Response:
    ctx = await _context(request, "dashboard")
    _require_developer(ctx)
    return _redirect(ctx, "/dashboard/clients")


@router.get("/dashboard/login", response_model=None)
@page
async def login_form(request: Request) -> Response:
    ctx = await _context(request, "dashboard")
    if ctx.developer is not None:
        return _redirect(ctx, "/dashboard/clients")
    return _render(ctx, "dashboard/login.html", {"email": "", "error": None})


def _start_developer_session(ctx: Ctx, developer_id: int) -> Callable[[Session], None]:
    settings = ctx.state.settings

    def run(session: Session) -> None:
        if ctx.session_row is not None:
            sessions.end(session, ctx.request.cookies.get(sessions.DEVELOPER_COOKIE))
        token, _ = sessions.create(
            session, "developer", settings.dashboard_session_ttl, developer_id=developer_id
        )
        ctx.set_cookie(sessions.DEVELOPER_COOKIE, token, "/", settings.dashboard_session_ttl)
        # A fresh CSRF cookie too: nothing from before the sign-in carries over.
        ctx.csrf_cookie = CsrfSigner.new_cookie()
        ctx.new_csrf_cookie = True

    return run


@router.post("/dashboard/login", response_model=None)
@page
async def login_submit(request: Request) -> Response:
    ctx, form = await _post(request, "dashboard")
    email = str(form.get("email") or "")
    password = str(form.get("password") or "")
    limiter = ctx.state.limiter
    rules = limiter.sign_in(client_address(request), email)
    retry = await limiter.retry_after(rules)
    if retry is not None:
        return _render(
            ctx,
            "dashboard/login.html",
            {"email": email, "error": STRINGS["too_many_attempts"]},
            status=429,
            headers={"Retry-After": str(retry)},
        )
    dev = await _run(request, lambda s: service.authenticate(s, email, password))
    if dev is None:
        await limiter.failed(rules)
        return _render(
            ctx,
            "dashboard/login.html",
            {"email": email, "error": STRINGS["bad_login"]},
            status=401,
        )
    await _run(request, _start_developer_session(ctx, dev.id))
    return _redirect(ctx, "/dashboard/clients")


@router.get("/dashboard/signup", response_model=None)
@page
async def signup_form(request: Request) -> Response:
    ctx = await _context(request, "dashboard")
    if not ctx.state.settings.signup:
        return _render(ctx, "dashboard/signup.html", {"closed": True}, status=403)
    data = {"closed": False, "email": "", "error": None, "min": MIN_LENGTH}
    return _render(ctx, "dashboard/signup.html", data)


@router.post("/dashboard/signup", response_model=None)
@page
async def signup_submit(request: Request) -> Response:
    ctx, form = await _post(request, "dashboard")
    state = ctx.state
    if not state.settings.signup:
        return _render(ctx, "dashboard/signup.html", {"closed": True}, status=403)
    email = str(form.get("email") or "")
    password = str(form.get("password") or "")
    retry = await state.limiter.hit(state.limiter.sign_up(client_address(request)))
    if retry is not None:
        error = STRINGS["too_many_attempts"]
        data = {"closed": False, "email": email, "error": error, "min": MIN_LENGTH}
        return _render(
            ctx, "dashboard/signup.html", data, status=429, headers={"Retry-After": str(retry)}
        )

    def create(session: Session) -> int:
        return service.create_developer(session, email, password).id

    try:
        dev_id = await _run(request, create)
    except service.DashboardError as exc:
        message = STRINGS.get(exc.args[0], exc.args[0]).format(n=MIN_LENGTH)
        return _render(
            ctx,
            "dashboard/signup.html",
            {"closed": False, "email": email, "error": message, "min": MIN_LENGTH},
            status=400,
        )
    await _run(request, _start_developer_session(ctx, dev_id))
    return _redirect(ctx, "/dashboard/clients")


@router.post("/dashboard/logout", response_model=None)
@page
async def logout(request: Request) -> Response:
    ctx, _ = await _post(request, "dashboard")
    token = request.cookies.get(sessions.DEVELOPER_COOKIE)
    await _run(request, lambda s: sessions.end(s, token))
    ctx.clear_cookie(sessions.DEVELOPER_COOKIE, "/")
    return _redirect(ctx, "/dashboard/login")


# -- OAuth clients -------------------------------------------------------------------------


def _client_form(form: FormData) -> service.ClientForm:
    return service.ClientForm(
        name=str(form.get("name") or ""),
        description=str(form.get("description") or ""),
        logo_url=str(form.get("logo_url") or ""),
        homepage_url=str(form.get("homepage_url") or ""),
        redirect_uris=str(form.get("redirect_uris") or ""),
        scopes=[str(v) for v in form.getlist("scope")],
        public=form.get("client_type") == "public",
        theme=str(form.get("theme") or "auto"),
    )


def _form_data(extra: dict[str, Any]) -> dict[str, Any]:
    return {"catalogue": list(scopes.CATALOGUE.values()), "themes": service.THEMES, **extra}


@dataclass
class ClientView:
    row: Any
    owner_email: str | None


@router.get("/dashboard/clients", response_model=None)
@developer_page
async def clients_list(request: Request) -> Response:
    ctx = await _context(request, "dashboard")
    dev = _require_developer(ctx)

    def load(session: Session) -> list[ClientView]:
        rows = service.visible_clients(session, dev)
        owners = {d.id: d.email for d in session.query(Developer).all()} if dev.is_admin else {}
        return [ClientView(r, owners.get(r.owner_id) if r.owner_id else None) for r in rows]

    rows = await _run(request, load)
    flash = STRINGS["deleted"] if request.query_params.get("deleted") else None
    return _render(ctx, "dashboard/clients.html", {"clients": rows, "flash": flash})


@router.get("/dashboard/clients/new", response_model=None)
@developer_page
async def client_new(request: Request) -> Response:
    ctx = await _context(request, "dashboard")
    _require_developer(ctx)
    form = service.ClientForm(scopes=["webcast:fetch"])
    return _render(ctx, "dashboard/client_new.html", _form_data({"form": form, "error": None}))


@router.post("/dashboard/clients", response_model=None)
@developer_page
async def client_create(request: Request) -> Response:
    ctx, data = await _post(request, "dashboard")
    dev = _require_developer(ctx)
    form = _client_form(data)

    def create(session: Session) -> clients.NewClient:
        return service.create_client(session, dev, form)

    try:
        new = await _run(request, create)
    except service.DashboardError as exc:
        return _render(
            ctx,
            "dashboard/client_new.html",
            _form_data({"form": form, "error": str(exc)}),
            status=400,
        )
    return _render(
        ctx,
        "dashboard/client.html",
        _client_page_data(ctx, new.row, secret=new.client_secret, flash=STRINGS["client_created"]),
        status=201,
    )


def _grace_text(seconds: int) -> str:
    if seconds % 3600 == 0:
        hours = seconds // 3600
        return f"{hours} hour" + ("s" if hours != 1 else "")
    if seconds % 60 == 0:
        return f"{seconds // 60} minutes"
    return f"{seconds} seconds"


def _client_page_data(
    ctx: Ctx,
    row: Any,
    *,
    secret: str | None = None,
    flash: str | None = None,
    error: str | None = None,
    form: service.ClientForm | None = None,
) -> dict[str, Any]:
    grace_active = (
        row.previous_secret_expires_at is not None and row.previous_secret_expires_at > utcnow()
    )
    return _form_data(
        {
            "client": row,
            "form": form or service.ClientForm.from_row(row),
            "secret": secret,
            "flash": flash,
            "error": error,
            "grace": _grace_text(ctx.state.settings.secret_grace_period),
            "grace_until": row.previous_secret_expires_at if grace_active else None,
        }
    )


@router.get("/dashboard/clients/{client_id}", response_model=None)
@developer_page
async def client_show(request: Request, client_id: str) -> Response:
    ctx = await _context(request, "dashboard")
    dev = _require_developer(ctx)
    row = await _run(request, lambda s: service.owned_client(s, dev, client_id))
    flash = STRINGS["client_saved"] if request.query_params.get("saved") else None
    return _render(ctx, "dashboard/client.html", _client_page_data(ctx, row, flash=flash))


@router.post("/dashboard/clients/{client_id}", response_model=None)
@developer_page
async def client_update(request: Request, client_id: str) -> Response:
    ctx, data = await _post(request, "dashboard")
    dev = _require_developer(ctx)
    form = _client_form(data)

    def update(session: Session) -> Any:
        row = service.owned_client(session, dev, client_id)
        try:
            service.update_client(session, row, form)
        except service.DashboardError as exc:
            # Nothing was changed: validation comes before any assignment.
            return row, str(exc)
        return row, None

    row, error = await _run(request, update)
    if error:
        return _render(
            ctx,
            "dashboard/client.html",
            _client_page_data(ctx, row, error=error, form=form),
            status=400,
        )
    return _redirect(ctx, f"/dashboard/clients/{client_id}?saved=1")


@router.post("/dashboard/clients/{client_id}/rotate", response_model=None)
@developer_page
async def client_rotate(request: Request, client_id: str) -> Response:
    ctx, _ = await _post(request, "dashboard")
    dev = _require_developer(ctx)
    grace = ctx.state.settings.secret_grace_period

    def rotate(session: Session) -> tuple[Any, str]:
        row = service.owned_client(session, dev, client_id)
        try:
            secret = clients.rotate_secret(session, row, grace)
        except clients.ClientError as exc:
            raise PageError(400, str(exc)) from exc
        return row, secret

    row, secret = await _run(request, rotate)
    return _render(
        ctx,
        "dashboard/client.html",
        _client_page_data(ctx, row, secret=secret, flash=STRINGS["rotated"]),
    )


@router.post("/dashboard/clients/{client_id}/delete", response_model=None)
@developer_page
async def client_delete(request: Request, client_id: str) -> Response:
    ctx, _ = await _post(request, "dashboard")
    dev = _require_developer(ctx)

    def delete(session: Session) -> None:
        clients.delete_client(session, service.owned_client(session, dev, client_id))

    await _run(request, delete)
    return _redirect(ctx, "/dashboard/clients?deleted=1")


# -- usage ---------------------------------------------------------------------------------


def _window(request: Request) -> str:
    window = request.query_params.get("window", "24h")
    return window if window in usage.WINDOWS else "24h"


@router.get("/dashboard/clients/{client_id}/usage", response_model=None)
@developer_page
async def client_usage(request: Request, client_id: str) -> Response:
    ctx = await _context(request, "dashboard")
    dev = _require_developer(ctx)
    window = _window(request)

    def load(session: Session) -> tuple[Any, usage.Usage]:
        row = service.owned_client(session, dev, client_id)
        return row, usage.compute(session, row.id, window)

    row, figures = await _run(request, load)
    window_name = STRINGS["window_24h" if window == "24h" else "window_30d"]
    chart = usage.svg_chart(
        figures, STRINGS["chart_title"].format(window=window_name.lower()), STRINGS
    )
    return _render(
        ctx,
        "dashboard/usage.html",
        {
            "client": row,
            "usage": figures,
            "window": window,
            "window_name": window_name,
            "chart": chart,
            "counters": usage.COUNTERS,
        },
    )


@router.get("/dashboard/clients/{client_id}/usage.csv", response_model=None)
@developer_page
async def client_usage_csv(request: Request, client_id: str) -> Response:
    ctx = await _context(request, "dashboard")
    dev = _require_developer(ctx)
    window = _window(request)

    def load(session: Session) -> usage.Usage:
        row = service.owned_client(session, dev, client_id)
        return usage.compute(session, row.id, window)

    figures = await _run(request, load)
    response = Response(
        usage.to_csv(figures),
        media_type="text/csv; charset=utf-8",
        headers={
            **NO_STORE,
            "Content-Disposition": f'attachment; filename="usage-{client_id}-{window}.csv"',
        },
    )
    return ctx.finish(response)


# -- API keys ------------------------------------------------------------------------------


async def _apikeys_page(
    request: Request,
    ctx: Ctx,
    dev: Developer,
    *,
    new_key: str | None = None,
    flash: str | None = None,
    error: str | None = None,
    status: int = 200,
) -> Response:
    def load(session: Session) -> tuple[list[Any], list[Any]]:
        keys = service.visible_api_keys(session, dev)
        rows = service.visible_clients(session, dev)
        return keys, rows

    keys, client_rows = await _run(request, load)
    names = {c.id: c.name for c in client_rows}
    return _render(
        ctx,
        "dashboard/apikeys.html",
        {
            "keys": keys,
            "clients": client_rows,
            "client_names": names,
            "new_key": new_key,
            "flash": flash,
            "error": error,
        },
        status=status,
    )


@router.get("/dashboard/apikeys", response_model=None)
@developer_page
async def apikeys_list(request: Request) -> Response:
    ctx = await _context(request, "dashboard")
    dev = _require_developer(ctx)
    flash = STRINGS["apikey_revoked"] if request.query_params.get("revoked") else None
    return await _apikeys_page(request, ctx, dev, flash=flash)


@router.post("/dashboard/apikeys", response_model=None)
@developer_page
async def apikeys_create(request: Request) -> Response:
    ctx, form = await _post(request, "dashboard")
    dev = _require_developer(ctx)
    name = str(form.get("name") or "")
    client_id = str(form.get("client_id") or "") or None

    def create(session: Session) -> str:
        key, _ = service.create_api_key(session, dev, name, client_id)
        return key

    try:
        key = await _run(request, create)
    except service.DashboardError as exc:
        return await _apikeys_page(request, ctx, dev, error=str(exc), status=400)
    return await _apikeys_page(
        request, ctx, dev, new_key=key, flash=STRINGS["apikey_created"], status=201
    )


@router.post("/dashboard/apikeys/{key_id}/revoke", response_model=None)
@developer_page
async def apikeys_revoke(request: Request, key_id: str) -> Response:
    ctx, _ = await _post(request, "dashboard")
    dev = _require_developer(ctx)
    pk = parse_id(key_id, "API key")

    def revoke(session: Session) -> None:
        row = service.owned_api_key(session, dev, pk)
        if row.revoked_at is None:
            apikeys.revoke_api_key(session, row)

    await _run(request, revoke)
    return _redirect(ctx, "/dashboard/apikeys?revoked=1")


# -- connected apps (/account) -------------------------------------------------------------


@router.get("/account", response_model=None)
@page
async def account_home(request: Request) -> Response:
    # Which app the last revocation ended (the flash message), checked before anything else.
    named = request.query_params.get("revoked")
    revoked_id = None if named is None else parse_id(named, "app")
    ctx = await _context(request, "account")
    settings = ctx.state.settings
    if ctx.session_row is None or ctx.account is None:
        failed = request.query_params.get("error") is not None
        return _render(
            ctx,
            "account/signin.html",
            {"error": STRINGS["signin_failed"] if failed else None},
        )
    row = ctx.session_row
    account_id = ctx.account.id

    def load(session: Session) -> tuple[list[account_service.ConnectedApp], str | None]:
        live = session.get(WebSession, row.id)
        if live is not None and live.kind == account_service.PENDING:
            # The first visit after the QR sign-in: a new cookie value, then the real session.
            token = sessions.rotate(session, live, "account")
            live.expires_at = utcnow() + dt.timedelta(seconds=settings.account_session_ttl)
            ctx.session_row = live
            ctx.set_cookie(
                sessions.ACCOUNT_COOKIE,
                token,
                account_service.ACCOUNT_PATH,
                settings.account_session_ttl,
            )
        apps = account_service.connected_apps(session, account_id)
        revoked = None
        if revoked_id is not None:
            g = session.get(Grant, revoked_id)
            if g is not None and g.account_id == account_id and g.status == "revoked":
                revoked = STRINGS["revoked_app"].format(app=g.client.name)
        return apps, revoked

    apps, flash = await _run(request, load)
    return _render(ctx, "account/apps.html", {"apps": apps, "flash": flash})


@router.post("/account/login", response_model=None)
@page
async def account_login(request: Request) -> Response:
    ctx, _ = await _post(request, "account")
    state = ctx.state
    settings = state.settings
    if await state.limiter.hit(state.limiter.account_sign_in(client_address(request))):
        raise PageError(429, STRINGS["too_many_attempts"])
    # The cookie that becomes the /account session once the user confirms on their phone.
    pending = new_secret(sessions.PREFIX)
    params = account_service.new_signin_params(settings, digest(pending))

    def create(session: Session) -> Any:
        return state.logins.create(session, purpose="account", params=params, client_pk=None)

    login = await _run(request, create)
    binding = login_routes.binding_value(login)
    await state.logins.start(login.id, binding, login.csrf_token)
    ctx.set_cookie(
        sessions.ACCOUNT_COOKIE, pending, account_service.ACCOUNT_PATH, settings.login_ttl
    )
    response = _redirect(ctx, f"/tiktok/oauth/login/{login.id}")
    login_routes.set_login_cookie(request, response, login)
    return response


@router.post("/account/apps/{grant_id}/revoke", response_model=None)
@page
async def account_revoke(request: Request, grant_id: str) -> Response:
    ctx, _ = await _post(request, "account")
    if ctx.account is None or ctx.session_row is None or ctx.session_row.kind != "account":
        return _redirect(ctx, "/account")
    account_id, pk = ctx.account.id, parse_id(grant_id, "app")
    await _run(request, lambda s: account_service.revoke_app(s, account_id, pk))
    return _redirect(ctx, f"/account?revoked={pk}")


@router.post("/account/logout", response_model=None)
@page
async def account_logout(request: Request) -> Response:
    ctx, _ = await _post(request, "account")
    token = request.cookies.get(sessions.ACCOUNT_COOKIE)
    await _run(request, lambda s: sessions.end(s, token))
    ctx.clear_cookie(sessions.ACCOUNT_COOKIE, account_service.ACCOUNT_PATH)
    return _redirect(ctx, "/account")
