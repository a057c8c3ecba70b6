"""OAuth endpoints: HTTP in, HTTP out. The work happens in the OAuth services; refusals are
raised as LivegateError and answered by the app's error handler in the caller's dialect."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from starlette.responses import HTMLResponse, JSONResponse, Response

from livegate import metrics
from livegate.bodies import BadBody, parse_json_object
from livegate.errors import NO_STORE, LivegateError, bad_request, envelope, is_json_request
from livegate.oauth import schemas
from livegate.oauth.bearer import extract_token, insufficient_scope, token_required
from livegate.oauth.client_auth import presented_client_id
from livegate.oauth.endpoints.metadata import metadata as server_metadata
from livegate.oauth.endpoints.userinfo import SCOPE as USERINFO_SCOPE
from livegate.oauth.endpoints.userinfo import userinfo as userinfo_claims
from livegate.oauth.requests import quoted
from livegate.oauth.service import OAuthService
from livegate.ratelimit import Limiter, client_address
from livegate.web import templates

router = APIRouter(tags=["oauth"])
TOKEN_PATH = "/tiktok/oauth/token"  # noqa: S105  # a path, not a secret

ServiceCall = Callable[[str, dict[str, str], list[tuple[str, str]]], Awaitable[dict[str, Any]]]


def oauth(request: Request) -> OAuthService:
    svc: OAuthService = request.app.state.oauth
    return svc


def _is_json(request: Request) -> bool:
    return is_json_request(request.headers.get("content-type"))


async def read_params(request: Request) -> list[tuple[str, str]]:
    """Form-encoded parameters per RFC 6749, or a JSON object's members (the Euler SDKs)."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if _is_json(request):
        data = parse_json_object(await request.body())
        for key, value in data.items():
            if not isinstance(value, str):
                # A number, object or null has no form-encoded counterpart to mean.
                raise BadBody(f"The value of {quoted(key)} must be a string.")
        return list(data.items())
    if content_type in ("application/x-www-form-urlencoded", ""):
        try:
            form = await request.form()
        except Exception as exc:  # starlette raises several types for unparseable bodies
            raise BadBody("The request body could not be parsed.") from exc
        return [(k, v) for k, v in form.multi_items() if isinstance(v, str)]
    raise BadBody("Use application/x-www-form-urlencoded or application/json.")


def answer(request: Request, body: dict[str, Any]) -> JSONResponse:
    """A success in the request's dialect; no cache keeps it (RFC 6749 §5.1)."""
    return JSONResponse(envelope(200, body) if _is_json(request) else body, headers=NO_STORE)


def too_many(retry: int) -> LivegateError:
    # RFC 6749 §5.2's error codes are a closed list, which RFC 7009 and RFC 7662 reuse: the
    # refusal is of client authentication, and 429 with Retry-After says it is temporary.
    return LivegateError(
        429,
        "invalid_client",
        f"Too many failed client authentications; retry in {retry} s.",
        headers={"Retry-After": str(retry)},
    )


async def _endpoint(request: Request, call: ServiceCall) -> Response:
    """One client-authenticated endpoint: read either dialect, run the service's call.

    Failed client authentications count against the caller's address (and client_id);
    over the limit, a request is refused before its client is looked at.
    """
    try:
        params = await read_params(request)
    except BadBody as exc:
        raise bad_request(str(exc)) from None
    headers = {k.title(): v for k, v in request.headers.items()}
    limiter: Limiter = request.app.state.limiter
    rules = limiter.client_auth(client_address(request), presented_client_id(headers, params))
    retry = await limiter.retry_after(rules)
    if retry is not None:
        raise too_many(retry)
    # Path and query only: the service puts them under the issuer, never under our Host.
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    is_token = request.url.path == TOKEN_PATH
    grant_type = next((v for k, v in params if k == "grant_type"), None)
    try:
        body = await call(target, headers, params)
    except LivegateError as exc:
        if is_token:
            metrics.grant_refused(grant_type, exc.error)
        if exc.error == "invalid_client":
            await limiter.failed(rules)
        raise
    if is_token:
        metrics.grant_issued(grant_type or "")
    return answer(request, body)


def _in_threadpool(method: Callable[..., dict[str, Any]]) -> ServiceCall:
    return partial(run_in_threadpool, method)


# The endpoints where clients authenticate (RFC 6749 §2.3): path, summary, the success
# answer for the OpenAPI document, and the token service's method behind it.
# The token endpoint and introspection take the lean path (oauth/lean/), which hands what it
# does not answer alone to the token service in the threadpool.
CLIENT_ENDPOINTS: list[tuple[str, str, dict[str, Any], Callable[[OAuthService], ServiceCall]]] = [
    (
        TOKEN_PATH,
        "Token endpoint: exchange a code, or refresh (RFC 6749 §4.1.3, §6)",
        {"model": schemas.TokenAnswer},
        lambda svc: svc.lean.token,
    ),
    (
        "/tiktok/oauth/revoke",
        "Revoke a token (RFC 7009); a refresh token takes its access tokens along",
        {"description": "Revoked, or not a token at all: {}"},
        lambda svc: _in_threadpool(svc.tokens.revoke),
    ),
    (
        "/tiktok/oauth/introspect",
        "Introspect one of the client's tokens (RFC 7662)",
        {"model": schemas.IntrospectionAnswer},
        lambda svc: svc.lean.introspect,
    ),
    (
        "/tiktok/oauth/validate-refresh",
        "Whether one of the client's refresh tokens is live, without using it",
        {"model": schemas.RefreshCheck},
        lambda svc: _in_threadpool(svc.tokens.validate_refresh),
    ),
]


def _add_client_endpoint(
    path: str, summary: str, success: dict[str, Any], method: Callable[[OAuthService], ServiceCall]
) -> None:
    async def endpoint(request: Request) -> Response:
        return await _endpoint(request, method(oauth(request)))

    router.add_api_route(
        path,
        endpoint,
        methods=["POST"],
        name=path.rsplit("/", 1)[-1].replace("-", "_"),
        response_model=None,
        summary=summary,
        responses={200: success, **schemas.refusals(400, 401, 429)},
    )


for _entry in CLIENT_ENDPOINTS:
    _add_client_endpoint(*_entry)


@router.get(
    "/tiktok/oauth/userinfo",
    response_model=None,
    summary="The signed-in TikTok user (scope user:info; Bearer token, RFC 6750)",
    responses={200: {"model": schemas.UserInfo}, **schemas.refusals(401, 403)},
)
async def userinfo(request: Request) -> Response:
    token_value = extract_token(request)
    if token_value is None:
        raise token_required()
    caller, _ = await run_in_threadpool(oauth(request).authenticate, token_value)
    if USERINFO_SCOPE not in caller.scopes:
        raise insufficient_scope(USERINFO_SCOPE)
    return JSONResponse(userinfo_claims(caller.account), headers=NO_STORE)


@router.get(
    "/tiktok/oauth/clients/{client_id}",
    response_model=None,
    summary="A client's public information, for consent screens",
    responses=schemas.refusals(404),
)
async def client_info(request: Request, client_id: str) -> Response:
    info = await run_in_threadpool(oauth(request).clients.public_info, client_id)
    if info is None:
        raise LivegateError(
            404, "invalid_client", f"No client {quoted(client_id, 'with that id')} is registered."
        )
    return JSONResponse(info)


@router.get(
    "/.well-known/oauth-authorization-server",
    response_model=None,
    summary="Authorization server metadata (RFC 8414)",
)
async def metadata(request: Request) -> Response:
    return JSONResponse(server_metadata(oauth(request).settings.issuer))


@router.get("/", response_class=HTMLResponse, summary="The landing page (HTML)")
async def home(request: Request) -> Response:
    return templates.TemplateResponse(
        request, "home.html", {"issuer": oauth(request).settings.issuer}
    )
