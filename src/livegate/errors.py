"""One error for everything livegate refuses, and the one place that renders it.

Routes and services raise `LivegateError` (Authlib's `OAuth2Error` is rendered the same way);
`install_error_handlers` answers it in the dialect of the route that was called:

- OAuth endpoints: RFC 6749 §5.2 `{error, error_description}`, or, for a JSON request (the
  Euler SDKs), their envelope `{code, message, data: null, error: {...}}`;
- `/webcast/*`: `{code, message, error}`;
- browser pages (`/`, `/dashboard`, `/account`, the consent and QR pages): an HTML page.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from authlib.oauth2.rfc6749.errors import OAuth2Error
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from sqlalchemy.exc import DataError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import HTMLResponse, JSONResponse, Response

from livegate.web import templates

log = logging.getLogger(__name__)

NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}

# Pages a browser opens; everything else under /tiktok/oauth answers JSON.
BROWSER_PATHS = ("/dashboard", "/account", "/tiktok/oauth/login/", "/tiktok/oauth/authorize")

# Browser areas with an error page of their own, by path prefix: its template and what else
# it needs to render (set by the area's `install`, see `use_error_page`).
_ERROR_PAGES: dict[str, tuple[str, dict[str, Any]]] = {}


class LivegateError(Exception):
    """A refusal: HTTP status, a machine-readable code, a message that says what to fix."""

    def __init__(
        self,
        status: int,
        error: str,
        message: str,
        *,
        headers: Mapping[str, str] | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.error = error
        self.message = message
        self.headers = dict(headers or {})
        self.extra = dict(extra or {})

    @classmethod
    def from_oauth(cls, exc: OAuth2Error) -> LivegateError:
        return cls(
            exc.status_code or 400,
            exc.error or "invalid_request",
            exc.get_error_description() or exc.error or "invalid request",
            # Not its Content-Type: the renderer picks it (an error page is HTML).
            headers={k: v for k, v in exc.get_headers() if k.lower() != "content-type"},
        )


def use_error_page(prefix: str, template: str, context: Mapping[str, Any]) -> None:
    """Render errors under `prefix` with `template` (it gets `error`, `description`, `status`
    and `context`) instead of the generic error.html."""
    _ERROR_PAGES[prefix] = (template, dict(context))


def _error_page(path: str, status: int, error: str, message: str) -> str:
    template, context = next(
        (page for prefix, page in _ERROR_PAGES.items() if path.startswith(prefix)),
        ("error.html", {}),
    )
    data = {**context, "error": error, "description": message, "status": status}
    return templates.get_template(template).render(data)


def bad_request(message: str) -> LivegateError:
    return LivegateError(400, "invalid_request", message)


def envelope(status: int, body: dict[str, Any]) -> dict[str, Any]:
    """The Euler SDKs' response shape around an RFC-shaped body."""
    if "error" in body and isinstance(body["error"], str):
        return {
            "code": status,
            "message": body.get("error_description") or body["error"],
            "data": None,
            "error": {"error": body["error"], "error_description": body.get("error_description")},
        }
    data = dict(body)
    if "scope" in data and "access_token" in data:
        data["scopes"] = str(data.pop("scope") or "").split()
    return {"code": status, "message": "OK", "data": data, "error": None}


def is_json_request(content_type: str | None) -> bool:
    return (content_type or "").split(";")[0].strip().lower() == "application/json"


def error_response(
    path: str,
    json_request: bool,
    status: int,
    error: str,
    message: str,
    headers: Mapping[str, str] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> Response:
    """An error in the dialect of the route at `path` (see the module docstring). Takes the
    path rather than a Request so that ASGI middleware, which has none, answers alike."""
    all_headers = {**NO_STORE, **(headers or {})}
    if path.startswith("/webcast"):
        body: dict[str, Any] = {"code": status, "message": message, "error": error}
        body.update(extra or {})
        return JSONResponse(body, status_code=status, headers=all_headers)
    if path == "/" or path.startswith(BROWSER_PATHS):
        page = _error_page(path, status, error, message)
        return HTMLResponse(page, status_code=status, headers=all_headers)
    body = {"error": error, "error_description": message, **(extra or {})}
    return JSONResponse(
        envelope(status, body) if json_request else body, status_code=status, headers=all_headers
    )


def render(request: Request, exc: LivegateError) -> Response:
    return error_response(
        request.url.path,
        is_json_request(request.headers.get("content-type")),
        exc.status,
        exc.error,
        exc.message,
        exc.headers,
        exc.extra,
    )


def _validation_message(exc: RequestValidationError) -> str:
    errors = exc.errors()
    first = errors[0] if errors else {}
    where = ".".join(str(p) for p in first.get("loc", ()) if p not in ("body", "query", "path"))
    msg = str(first.get("msg", "invalid value"))
    return f"{where}: {msg}" if where else msg


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(LivegateError)
    async def livegate_error(request: Request, exc: LivegateError) -> Response:
        return render(request, exc)

    @app.exception_handler(OAuth2Error)
    async def oauth_error(request: Request, exc: OAuth2Error) -> Response:
        return render(request, LivegateError.from_oauth(exc))

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> Response:
        return render(request, bad_request(_validation_message(exc)))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        error = "not_found" if exc.status_code == 404 else "invalid_request"
        err = LivegateError(exc.status_code, error, str(exc.detail), headers=exc.headers)
        return render(request, err)

    @app.exception_handler(DataError)
    async def refused_data(request: Request, exc: DataError) -> Response:
        # The database refused a value the request carried (PostgreSQL: a NUL character,
        # a number out of range): the request was bad, not the server.
        log.info("database refused request data on %s: %s", request.url.path, type(exc.orig))
        return render(request, bad_request("The request contains a value that cannot be stored."))

    @app.exception_handler(RecursionError)
    @app.exception_handler(UnicodeError)
    async def unreadable_input(request: Request, exc: Exception) -> Response:
        # A backstop: input nested too deep, or text that cannot be encoded, is refused where
        # it is read (bodies.py, ids.py, the webcast schemas). Should a path still let some
        # through, that is the request's fault, not the server's; the log keeps the trace.
        log.warning("%s from input on %s", type(exc).__name__, request.url.path, exc_info=exc)
        return render(request, bad_request("The request holds a value livegate cannot read."))

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> Response:
        # Never a traceback to the caller; the log has it, redacted by the formatter.
        log.exception("unhandled %s on %s", type(exc).__name__, request.url.path)
        return render(request, LivegateError(500, "server_error", "Internal error."))
