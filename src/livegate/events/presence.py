"""`features.syntheticPresence`: a `SyntheticJoinMessage` the first time a user shows up in a
room's events, a `SyntheticLeaveMessage` once they were quiet for `leave_after` seconds; the
SDK's `PresenceRecord` shape (`{user: {userId, uniqueId, nickname, profilePicture}, firstSeen,
lastSeen}`, times in ms)."""

from __future__ import annotations

import time
from collections import OrderedDict
from typing import Any

MAX_USERS = 10_000  # users tracked per subscriber; the longest-quiet one is forgotten first


def _user_of(event: dict[str, Any]) -> dict[str, Any] | None:
    user = event.get("data", {}).get("user")
    if not isinstance(user, dict) or not user.get("id"):
        return None
    return {
        "userId": str(user["id"]),
        "uniqueId": user.get("display_id", ""),
        "nickname": user.get("nickname", ""),
        "profilePicture": user.get("avatar_thumb", {}),
    }


class Presence:
    def __init__(self, leave_after: float) -> None:
        self.leave_after_ms = int(leave_after * 1000)
        self.records: OrderedDict[str, dict[str, Any]] = OrderedDict()  # quietest first

    def seen(self, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Join messages for the users new in `events`, after their leave messages if due."""
        now = int(time.time() * 1000)
        out = self.leaves(now)
        for event in events:
            user = _user_of(event)
            if user is None:
                continue
            record = self.records.pop(user["userId"], None)
            if record is None:
                record = {"user": user, "firstSeen": now, "lastSeen": now}
                out.append({"type": "SyntheticJoinMessage", "data": dict(record)})
            record["lastSeen"] = now
            self.records[user["userId"]] = record
            if len(self.records) > MAX_USERS:
                self.records.popitem(last=False)
        return out

    def leaves(self, now: int | None = None) -> list[dict[str, Any]]:
        now = now if now is not None else int(time.time() * 1000)
        out = []
        while self.records:
            uid, record = next(iter(self.records.items()))
            if now - record["lastSeen"] < self.leave_after_ms:
                break
            del self.records[uid]
            out.append({"type": "SyntheticLeaveMessage", "data": record})
        return out
