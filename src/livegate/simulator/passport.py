"""Simulator: TikTok's passport endpoints (placeholder, to be built)."""

from __future__ import annotations

from fastapi import APIRouter

from livegate.simulator.state import SimState


def router(state: SimState) -> APIRouter:
    return APIRouter()
