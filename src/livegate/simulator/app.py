"""`create_simulator_app()`: the fake TikTok as one ASGI app under one base URL."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from livegate.heap import freeze_startup_objects
from livegate.simulator import activity, control, passport, phone, push, webcast
from livegate.simulator.faults import FaultMiddleware
from livegate.simulator.rooms import world_of
from livegate.simulator.state import SimState


def create_simulator_app(state: SimState | None = None) -> FastAPI:
    state = state or SimState()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        freeze_startup_objects()
        yield
        await activity.stop_all(world_of(state))

    app = FastAPI(
        title="livegate TikTok simulator",
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
        lifespan=lifespan,
    )
    app.state.sim = state
    # Webcast first: routes match in order, and im/fetch is what load hits. Every route
    # reaches `state` through app.state.sim (state.state_of).
    app.include_router(webcast.router)
    app.include_router(push.router)
    app.include_router(passport.router)
    app.include_router(phone.router)
    app.include_router(control.router)
    app.add_middleware(FaultMiddleware, state=state)
    return app
