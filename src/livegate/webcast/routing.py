"""The pipeline around every /webcast route (`WebcastRoute`, the router's route class).

FastAPI solves the route's dependencies (the caller, its scope, the rate limit: see
dependencies.py) and validates its input; around that, this class gives every call one
deadline, turns upstream failures into our answers (reference §4), and counts the call for
the usage page. JSON bodies are read with `bodies.parse_json_object`, as on every other
endpoint. Whatever is refused is a `LivegateError`, rendered by the app's handlers.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from livegate.bodies import BadBody, parse_json_object
from livegate.errors import LivegateError
from livegate.tiktok.errors import UpstreamError, UpstreamTimeout
from livegate.webcast.auth import Principal
from livegate.webcast.dependencies import PRINCIPAL, service
from livegate.webcast.errors import from_upstream

log = logging.getLogger(__name__)

DEADLINE = 3.9  # every call answers or fails within 4 s

Handler = Callable[[Request], Coroutine[Any, Any, Response]]


class WebcastRequest(Request):
    """A request whose JSON body is read as livegate reads every body (bodies.py): nesting,
    duplicate keys and strings that are not Unicode are refused with a message saying so."""

    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            try:
                self._json = parse_json_object(await self.body(), empty={})
            except BadBody as exc:
                # FastAPI passes an HTTPException from the body's parse through unchanged.
                raise HTTPException(400, str(exc)) from None
        return self._json


def _principal(request: Request) -> Principal | None:
    found: Principal | None = request.scope.get(PRINCIPAL)
    return found


class WebcastRoute(APIRoute):
    def get_route_handler(self) -> Handler:
        handle = super().get_route_handler()
        label = f"{min(self.methods or {'GET'})} {self.path}"

        async def run(request: Request) -> Response:
            status = 500
            try:
                async with asyncio.timeout(DEADLINE):
                    response = await handle(WebcastRequest(request.scope, request.receive))
                status = response.status_code
                return response
            except (LivegateError, HTTPException) as exc:
                status = exc.status if isinstance(exc, LivegateError) else exc.status_code
                raise
            except (RequestValidationError, RecursionError, UnicodeError):
                status = 400  # the app's handlers answer them, in the /webcast shape
                raise
            except UpstreamError as exc:
                error = await service(request).upstream_failure(_principal(request), exc)
                status = error.status
                raise error from None
            except TimeoutError:
                error = _late(_principal(request))
                status = error.status
                raise error from None
            except Exception:
                log.exception("webcast %s failed", label)
                raise LivegateError(500, "server_error", "Internal error.") from None
            finally:
                service(request).record(_principal(request), label, status)

        return run


def _late(principal: Principal | None) -> LivegateError:
    if principal is not None:  # the caller passed: the time went upstream
        return from_upstream(UpstreamTimeout())
    return LivegateError(
        503, "temporarily_unavailable", "livegate could not serve the call in time; try again."
    )
