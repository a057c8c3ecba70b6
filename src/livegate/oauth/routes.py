"""OAuth endpoints: HTTP in, HTTP out. The work happens in OAuthService."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from authlib.oauth2.rfc6749.util import extract_basic_authorization
from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from starlette.responses import HTMLResponse, JSONResponse, Response

from livegate.bodies import BadBody, parse_json_object
from livegate.errors import NO_STORE, envelope
from livegate.oauth.bearer import bearer_error, extract_token
from livegate.oauth.server import OAuthResult
from livegate.oauth.service import OAuthService, TokenRejected
from livegate.ratelimit import Limiter, client_address
from livegate.web import templates

router = APIRouter()


async def read_params(request: Request) -> tuple[list[tuple[str, str]], bool]:
    """(parameters, is_json): form-encoded per RFC 6749, or a JSON object (the Euler SDKs)."""
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype == "application/json":
        data = parse_json_object(await request.body())
        return [
            (str(k), v if isinstance(v, str) else json.dumps(v))
            for k, v in data.items()
            if v is not None
        ], True
    if ctype in ("application/x-www-form-urlencoded", ""):
        try:
            form = await request.form()
        except Exception as exc:  # starlette raises several types for unparseable bodies
            raise BadBody("The request body could not be parsed.") from exc
        return [(k, v) for k, v in form.multi_items() if isinstance(v, str)], False
    raise BadBody("Use application/x-www-form-urlencoded or application/json.")


def oauth_response(result: OAuthResult, as_json: bool) -> Response:
    headers = {k: v for k, v in result.headers if k.lower() not in ("content-type",)}
    headers.update(NO_STORE)
    body = result.body if isinstance(result.body, dict) else {}
    if as_json:
        body = envelope(result.status, body)
    return JSONResponse(body, status_code=result.status, headers=headers)


def bad_request(message: str, as_json: bool) -> Response:
    return oauth_response(
        OAuthResult(400, {"error": "invalid_request", "error_description": message}), as_json
    )


def service(request: Request) -> OAuthService:
    svc: OAuthService = request.app.state.oauth
    return svc


def _headers(request: Request) -> dict[str, str]:
    return {k.title(): v for k, v in request.headers.items()}


EndpointCall = Callable[[str, dict[str, str], list[tuple[str, str]]], OAuthResult]


def _client_id(headers: dict[str, str], params: list[tuple[str, str]]) -> str:
    try:
        basic_id, _ = extract_basic_authorization(headers)
    except ValueError:  # not UTF-8: Authlib refuses it as invalid_client later
        basic_id = None
    return basic_id or next((v for k, v in params if k == "client_id"), "")


def _too_many(retry: int) -> OAuthResult:
    # RFC 6749 §5.2's error codes are a closed list, which RFC 7009 and RFC 7662 reuse: the
    # refusal is of client authentication, and 429 with Retry-After says it is temporary.
    description = f"Too many failed client authentications; retry in {retry} s."
    body = {"error": "invalid_client", "error_description": description}
    return OAuthResult(429, body, [("Retry-After", str(retry))])


async def _endpoint(request: Request, call: EndpointCall) -> Response:
    """One Authlib endpoint: read either dialect, run it in the threadpool, answer in kind.

    Failed client authentications count against the caller's address (and client_id);
    over the limit, a request is refused before its client is looked at.
    """
    try:
        params, as_json = await read_params(request)
    except BadBody as exc:
        return bad_request(str(exc), False)
    headers = _headers(request)
    limiter: Limiter = request.app.state.limiter
    rules = limiter.client_auth(client_address(request), _client_id(headers, params))
    retry = await limiter.retry_after(rules)
    if retry is not None:
        return oauth_response(_too_many(retry), as_json)
    result = await run_in_threadpool(call, str(request.url), headers, params)
    if isinstance(result.body, dict) and result.body.get("error") == "invalid_client":
        await limiter.failed(rules)
    return oauth_response(result, as_json)


@router.post("/tiktok/oauth/token", response_model=None)
async def token(request: Request) -> Response:
    return await _endpoint(request, service(request).token)


@router.post("/tiktok/oauth/revoke", response_model=None)
async def revoke(request: Request) -> Response:
    return await _endpoint(request, service(request).revoke)


@router.post("/tiktok/oauth/introspect", response_model=None)
async def introspect(request: Request) -> Response:
    return await _endpoint(request, service(request).introspect)


@router.post("/tiktok/oauth/validate-refresh", response_model=None)
async def validate_refresh(request: Request) -> Response:
    try:
        params, as_json = await read_params(request)
    except BadBody as exc:
        return bad_request(str(exc), False)
    data = dict(params)
    if not data.get("refresh_token") or not data.get("client_id"):
        return bad_request("'refresh_token' and 'client_id' are required.", as_json)
    result = await run_in_threadpool(
        service(request).validate_refresh, data["refresh_token"], data["client_id"]
    )
    body: dict[str, Any] = envelope(200, result) if as_json else result
    return JSONResponse(body, headers=NO_STORE)


@router.get("/tiktok/oauth/userinfo", response_model=None)
async def userinfo(request: Request) -> Response:
    token_value = extract_token(request)
    if token_value is None:
        return bearer_error(401, "invalid_request", "An access token is required.")
    try:
        caller, _ = await run_in_threadpool(service(request).authenticate, token_value)
    except TokenRejected as exc:
        return bearer_error(401, exc.error, exc.description)
    if "user:info" not in caller.scopes:
        return bearer_error(
            403, "insufficient_scope", "This call needs the 'user:info' scope.", scope="user:info"
        )
    acc = caller.account
    return JSONResponse(
        {
            "sub": acc.uid,
            "uid": acc.uid,
            "secUid": acc.sec_uid,
            "nickName": acc.nickname,
            "uniqueId": acc.unique_id,
            "region": acc.region,
            "avatarUrl": acc.avatar_url,
            "roomId": acc.room_id or None,
            "hasLivePermission": acc.has_live_permission,
            "isPrivateAccount": acc.is_private_account,
        },
        headers=NO_STORE,
    )


@router.get("/tiktok/oauth/clients/{client_id}", response_model=None)
async def client_info(request: Request, client_id: str) -> Response:
    info = await run_in_threadpool(service(request).client_public_info, client_id)
    if info is None:
        return JSONResponse(
            {"error": "invalid_client", "error_description": "No such client."}, status_code=404
        )
    return JSONResponse(info)


@router.get("/.well-known/oauth-authorization-server", response_model=None)
async def metadata(request: Request) -> Response:
    return JSONResponse(service(request).metadata())


@router.get("/", response_class=HTMLResponse, include_in_schema=False)
async def home(request: Request) -> Response:
    return templates.TemplateResponse(
        request, "home.html", {"issuer": service(request).settings.issuer}
    )
