"""`create_simulator_app()`: the fake TikTok as one ASGI app under one base URL."""

from __future__ import annotations

from fastapi import FastAPI

from livegate.simulator import control, passport, webcast
from livegate.simulator.faults import FaultMiddleware
from livegate.simulator.state import SimState


def create_simulator_app(state: SimState | None = None) -> FastAPI:
    state = state or SimState()
    app = FastAPI(
        title="livegate TikTok simulator", docs_url=None, redoc_url=None, openapi_url=None
    )
    app.state.sim = state
    app.include_router(control.router(state))
    app.include_router(passport.router(state))
    app.include_router(webcast.router(state))
    app.add_middleware(FaultMiddleware, state=state)
    return app
