"""The developer's pages: OAuth clients, their usage, API keys. HTTP only.

Every POST that changes something answers 303 to a page (POST-redirect-GET): refreshing that
page creates nothing and rotates nothing. A new secret or key reaches that page once, sealed
in a cookie (`once.py`). A refused form is shown again with what to fix (400).
"""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Form, Query
from fastapi.responses import HTMLResponse
from starlette.responses import Response

from livegate.dashboard import service, usage
from livegate.dashboard.browser import Browser
from livegate.dashboard.dependencies import (
    ApiKeyPk,
    Db,
    DeveloperBrowser,
    SignedIn,
    Transactions,
    developer_csrf,
)
from livegate.dashboard.once import Shown
from livegate.dashboard.schemas import ApiKeyForm, ClientForm
from livegate.dashboard.strings import STRINGS
from livegate.db.models import Developer, OAuthClient, utcnow
from livegate.errors import NO_STORE
from livegate.oauth import scopes

router = APIRouter(
    tags=["dashboard"],
    default_response_class=HTMLResponse,
    dependencies=[Depends(developer_csrf)],
)

CLIENTS = "/dashboard/clients"
APIKEYS = "/dashboard/apikeys"

Window = Annotated[str, Query(description="The period: 24h or 30d.")]
Flag = Annotated[bool, Query(description="Say on the page what the last POST did.")]


def client_page_url(client_id: str) -> str:
    return f"{CLIENTS}/{quote(client_id, safe='')}"


def _form_data(**extra: Any) -> dict[str, Any]:
    return {"catalogue": list(scopes.CATALOGUE.values()), "themes": service.THEMES, **extra}


def _grace_text(seconds: int) -> str:
    if seconds % 3600 == 0:
        hours = seconds // 3600
        return f"{hours} hour" + ("s" if hours != 1 else "")
    if seconds % 60 == 0:
        return f"{seconds // 60} minutes"
    return f"{seconds} seconds"


def _client_page(
    browser: Browser,
    row: OAuthClient,
    *,
    shown: Shown | None = None,
    flash: str | None = None,
    error: str | None = None,
    form: ClientForm | None = None,
    status: int = 200,
) -> Response:
    until = row.previous_secret_expires_at
    data = _form_data(
        client=row,
        form=form or ClientForm.from_row(row),
        secret=shown.secret if shown else None,
        flash=STRINGS[shown.flash] if shown else flash,
        error=error,
        grace=_grace_text(browser.settings.secret_grace_period),
        grace_until=until if until is not None and until > utcnow() else None,
    )
    return browser.render("dashboard/client.html", data, status=status)


# -- OAuth clients -------------------------------------------------------------------------


@router.get(CLIENTS, summary="The developer's OAuth clients (an admin's: every client)")
async def clients_list(
    dev: SignedIn, browser: DeveloperBrowser, db: Db, deleted: Flag = False
) -> Response:
    views = await db(service.client_views, dev)
    flash = STRINGS["deleted"] if deleted else None
    return browser.render("dashboard/clients.html", {"clients": views, "flash": flash})


@router.get(f"{CLIENTS}/new", summary="The form that creates a client")
async def client_new(dev: SignedIn, browser: DeveloperBrowser) -> Response:
    form = ClientForm(scope=["webcast:fetch"])
    return browser.render("dashboard/client_new.html", _form_data(form=form, error=None))


@router.post(CLIENTS, status_code=303, summary="Create a client; its page shows the secret once")
async def client_create(
    dev: SignedIn, form: Annotated[ClientForm, Form()], browser: DeveloperBrowser, db: Db
) -> Response:
    try:
        new = await db(service.create_client, dev, form)
    except service.DashboardError as exc:
        data = _form_data(form=form, error=exc.message)
        return browser.render("dashboard/client_new.html", data, status=exc.status)
    url = client_page_url(new.row.client_id)
    browser.show_once(url, Shown(new.client_secret or "", "client_created"))
    return browser.redirect(url)


@router.get(f"{CLIENTS}/{{client_id}}", summary="A client: its settings, secret rotation, deletion")
async def client_show(
    client_id: str, dev: SignedIn, browser: DeveloperBrowser, db: Db, saved: Flag = False
) -> Response:
    row = await db(service.owned_client, dev, client_id)
    flash = STRINGS["client_saved"] if saved else None
    return _client_page(browser, row, shown=browser.take_once(), flash=flash)


@router.post(f"{CLIENTS}/{{client_id}}", status_code=303, summary="Save a client's settings")
async def client_update(
    client_id: str,
    dev: SignedIn,
    form: Annotated[ClientForm, Form()],
    browser: DeveloperBrowser,
    db: Db,
) -> Response:
    try:
        await db(service.save_client, dev, client_id, form)
    except service.DashboardError as exc:
        # Nothing was changed: the values are checked before any is assigned.
        row = await db(service.owned_client, dev, client_id)
        return _client_page(browser, row, error=exc.message, form=form, status=exc.status)
    return browser.redirect(client_page_url(client_id) + "?saved=1")


@router.post(
    f"{CLIENTS}/{{client_id}}/rotate",
    status_code=303,
    summary="Issue a new client secret (the old one works for the grace period)",
)
async def client_rotate(
    client_id: str, dev: SignedIn, browser: DeveloperBrowser, db: Db
) -> Response:
    grace = browser.settings.secret_grace_period
    secret = await db(service.rotate_client_secret, dev, client_id, grace)
    url = client_page_url(client_id)
    browser.show_once(url, Shown(secret, "rotated"))
    return browser.redirect(url)


@router.post(
    f"{CLIENTS}/{{client_id}}/delete",
    status_code=303,
    summary="Delete a client, revoking every grant and token it holds",
)
async def client_delete(
    client_id: str, dev: SignedIn, browser: DeveloperBrowser, db: Db
) -> Response:
    await db(service.delete_client, dev, client_id)
    return browser.redirect(f"{CLIENTS}?deleted=1")


# -- usage ---------------------------------------------------------------------------------


def _window(window: str) -> str:
    return window if window in usage.WINDOWS else "24h"


@router.get(f"{CLIENTS}/{{client_id}}/usage", summary="A client's usage: figures and a chart")
async def client_usage(
    client_id: str, dev: SignedIn, browser: DeveloperBrowser, db: Db, window: Window = "24h"
) -> Response:
    window = _window(window)
    row, figures = await db(service.client_usage, dev, client_id, window)
    window_name = STRINGS["window_24h" if window == "24h" else "window_30d"]
    title = STRINGS["chart_title"].format(window=window_name.lower())
    data = {
        "client": row,
        "usage": figures,
        "window": window,
        "window_name": window_name,
        "chart": usage.svg_chart(figures, title, STRINGS),
        "counters": usage.COUNTERS,
    }
    return browser.render("dashboard/usage.html", data)


@router.get(
    f"{CLIENTS}/{{client_id}}/usage.csv",
    summary="A client's usage as CSV",
    response_class=Response,
    responses={200: {"content": {"text/csv": {}}, "description": "Usage per period and route"}},
)
async def client_usage_csv(
    client_id: str, dev: SignedIn, browser: DeveloperBrowser, db: Db, window: Window = "24h"
) -> Response:
    window = _window(window)
    _, figures = await db(service.client_usage, dev, client_id, window)
    filename = f"usage-{quote(client_id, safe='')}-{window}.csv"
    response = Response(
        usage.to_csv(figures),
        media_type="text/csv; charset=utf-8",
        headers={**NO_STORE, "Content-Disposition": f'attachment; filename="{filename}"'},
    )
    return browser.finish(response)


# -- API keys ------------------------------------------------------------------------------


async def _apikeys_page(
    browser: Browser,
    db: Transactions,
    dev: Developer,
    *,
    shown: Shown | None = None,
    flash: str | None = None,
    error: str | None = None,
    status: int = 200,
) -> Response:
    keys, clients = await db(service.api_keys_page, dev)
    data = {
        "keys": keys,
        "clients": clients,
        "client_of": {c.id: c for c in clients},
        "new_key": shown.secret if shown else None,
        "flash": STRINGS[shown.flash] if shown else flash,
        "error": error,
    }
    return browser.render("dashboard/apikeys.html", data, status=status)


@router.get(APIKEYS, summary="The developer's API keys")
async def apikeys_list(
    dev: SignedIn, browser: DeveloperBrowser, db: Db, revoked: Flag = False
) -> Response:
    flash = STRINGS["apikey_revoked"] if revoked else None
    return await _apikeys_page(browser, db, dev, shown=browser.take_once(), flash=flash)


@router.post(APIKEYS, status_code=303, summary="Create an API key; the keys page shows it once")
async def apikeys_create(
    dev: SignedIn, form: Annotated[ApiKeyForm, Form()], browser: DeveloperBrowser, db: Db
) -> Response:
    try:
        key, _ = await db(service.create_api_key, dev, form.name, form.client_id or None)
    except service.DashboardError as exc:
        return await _apikeys_page(browser, db, dev, error=exc.message, status=exc.status)
    browser.show_once(APIKEYS, Shown(key, "apikey_created"))
    return browser.redirect(APIKEYS)


@router.post(f"{APIKEYS}/{{key_id}}/revoke", status_code=303, summary="Revoke an API key")
async def apikeys_revoke(
    dev: SignedIn, key: ApiKeyPk, browser: DeveloperBrowser, db: Db
) -> Response:
    await db(service.revoke_api_key, dev, key)
    return browser.redirect(f"{APIKEYS}?revoked=1")
