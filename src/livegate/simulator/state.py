"""The simulator's in-memory world: accounts, sessions, QR logins, rooms, faults."""

from __future__ import annotations

import itertools
import secrets
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from starlette.requests import HTTPConnection


@dataclass
class Account:
    uid: str
    unique_id: str
    nickname: str
    idc: str = "useast1a"
    region: str = "US"
    sec_uid: str = ""
    avatar_url: str = ""
    is_private: bool = False

    def public(self) -> dict[str, Any]:
        return {
            "uid": self.uid,
            "unique_id": self.unique_id,
            "nickname": self.nickname,
            "idc": self.idc,
            "region": self.region,
            "sec_uid": self.sec_uid,
        }


@dataclass
class Session:
    sessionid: str
    uid: str
    created_at: float
    max_age: int
    valid: bool = True


@dataclass
class QRLogin:
    token: str
    created_at: float
    expire_time: int
    status: str = "new"  # new | scanned | confirmed | expired | refused | verify
    uid: str | None = None
    last_poll: float = 0.0
    # Set once confirmed: the sessionid handed out on the confirmed poll.
    sessionid: str | None = None


@dataclass
class Fault:
    route: str
    status: int | None = None
    delay_ms: int = 0
    empty_body: bool = False
    drop_cookie_header: bool = False
    count: int | None = None
    body_hex: str | None = None  # answer these bytes instead (200, application/x-protobuf)


@dataclass
class SimState:
    accounts: dict[str, Account] = field(default_factory=dict)  # by uid
    sessions: dict[str, Session] = field(default_factory=dict)  # by sessionid
    qr_logins: dict[str, QRLogin] = field(default_factory=dict)  # by token
    faults: list[Fault] = field(default_factory=list)
    # Free-form per-feature state (rooms, comments...) owned by the feature modules.
    extra: dict[str, Any] = field(default_factory=dict)
    lock: threading.RLock = field(default_factory=threading.RLock)
    qr_lifetime: int = 60
    min_poll_interval: float = 0.5
    session_max_age: int = 5_184_000
    _uids: itertools.count[int] = field(
        default_factory=lambda: itertools.count(7_400_000_000_000_000_001)
    )

    def new_uid(self) -> str:
        return str(next(self._uids))

    def create_account(
        self, unique_id: str, nickname: str | None = None, idc: str | None = None
    ) -> Account:
        with self.lock:
            for acc in self.accounts.values():
                if acc.unique_id == unique_id:
                    return acc
            uid = self.new_uid()
            acc = Account(
                uid=uid,
                unique_id=unique_id,
                nickname=nickname or unique_id,
                idc=idc or "useast1a",
                sec_uid="MS4wLjABAAAA" + secrets.token_urlsafe(24),
            )
            self.accounts[uid] = acc
            return acc

    def account_by_unique_id(self, unique_id: str) -> Account | None:
        with self.lock:
            return next((a for a in self.accounts.values() if a.unique_id == unique_id), None)

    def new_session(self, uid: str) -> Session:
        sess = Session(
            sessionid=secrets.token_hex(16),
            uid=uid,
            created_at=time.time(),
            max_age=self.session_max_age,
        )
        with self.lock:
            self.sessions[sess.sessionid] = sess
        return sess

    def session_account(self, sessionid: str | None) -> Account | None:
        """The account a valid sessionid belongs to, or None."""
        if not sessionid:
            return None
        with self.lock:
            sess = self.sessions.get(sessionid)
            if sess is None or not sess.valid:
                return None
            return self.accounts.get(sess.uid)

    def expire_sessions(self, uid: str) -> int:
        with self.lock:
            n = 0
            for sess in self.sessions.values():
                if sess.uid == uid and sess.valid:
                    sess.valid = False
                    n += 1
            return n

    def take_fault(self, path: str) -> Fault | None:
        with self.lock:
            for fault in self.faults:
                if fault.route in path:
                    if fault.count is not None:
                        fault.count -= 1
                        if fault.count <= 0:
                            self.faults.remove(fault)
                    return fault
            return None


def state_of(conn: HTTPConnection) -> SimState:
    """The world of the simulator app that `conn` reached."""
    state: SimState = conn.app.state.sim
    return state
