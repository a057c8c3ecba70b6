"""The simulator's control API shared by every feature: accounts, sessions, faults."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel

from livegate.simulator.state import Fault, SimState


class AccountIn(BaseModel):
    unique_id: str
    nickname: str | None = None
    idc: str | None = None


class FaultIn(BaseModel):
    route: str
    status: int | None = None
    delay_ms: int = 0
    empty_body: bool = False
    drop_cookie_header: bool = False
    count: int | None = None
    body_hex: str | None = None


def router(state: SimState) -> APIRouter:
    r = APIRouter(prefix="/_sim")

    @r.post("/accounts")
    def create_account(body: AccountIn) -> dict[str, Any]:
        return state.create_account(body.unique_id, body.nickname, body.idc).public()

    @r.get("/accounts")
    def list_accounts() -> list[dict[str, Any]]:
        with state.lock:
            return [a.public() for a in state.accounts.values()]

    @r.post("/sessions")
    def create_session(body: AccountIn) -> dict[str, Any]:
        """A signed-in cookie jar, as the QR login would leave it, without the phone page."""
        acc = state.create_account(body.unique_id, body.nickname, body.idc)
        sess = state.new_session(acc.uid)
        return {
            "uid": acc.uid,
            "cookies": {
                "sessionid": sess.sessionid,
                "sessionid_ss": sess.sessionid,
                "sid_tt": sess.sessionid,
                "tt-target-idc": acc.idc,
            },
        }

    @r.post("/sessions/{uid}/expire")
    def expire_session(uid: str) -> dict[str, Any]:
        return {"uid": uid, "expired": state.expire_sessions(uid)}

    @r.post("/faults")
    def add_fault(body: FaultIn) -> dict[str, Any]:
        with state.lock:
            state.faults.append(Fault(**body.model_dump()))
        return body.model_dump()

    @r.delete("/faults")
    def clear_faults() -> dict[str, Any]:
        with state.lock:
            n = len(state.faults)
            state.faults.clear()
        return {"cleared": n}

    return r
