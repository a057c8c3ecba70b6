"""What can go wrong upstream, as types the gateway maps to its own error answers."""

from __future__ import annotations


class UpstreamError(Exception):
    """TikTok answered in a way we cannot use. `code` is the gateway's error code."""

    code = "upstream_error"
    status = 502

    def __init__(self, message: str = "") -> None:
        super().__init__(message or self.code)
        self.message = message or self.code


class UpstreamBlocked(UpstreamError):
    code = "upstream_blocked"


class UpstreamEmpty(UpstreamError):
    code = "upstream_empty"


class UpstreamTimeout(UpstreamError):
    code = "upstream_timeout"
    status = 504


class SessionExpired(UpstreamError):
    """TikTok no longer accepts the user's session: the grant needs a new QR sign-in."""

    code = "login_required"
    status = 401


class AgeRestricted(UpstreamError):
    code = "age_restricted"
    status = 403


class PrivateRoom(UpstreamError):
    code = "private_room"
    status = 403


class UserOffline(UpstreamError):
    code = "user_offline"
    status = 404


class UserNotFound(UpstreamError):
    code = "user_not_found"
    status = 404


class RoomNotFound(UpstreamError):
    code = "room_not_found"
    status = 404


class UpstreamUnreachable(UpstreamError):
    """No answer could be had from the host: refused, reset or (`timed_out`) never accepted."""

    def __init__(self, message: str = "", *, timed_out: bool = False) -> None:
        super().__init__(message)
        self.timed_out = timed_out


class PushLost(UpstreamError):
    """TikTok's push WebSocket kept closing, and reconnecting with the cursor did not work."""

    code = "push_lost"
