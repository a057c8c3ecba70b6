"""What the webcast API reads and answers, as pydantic types: FastAPI validates every query,
path and body field with them and the OpenAPI document describes them.

Each input check bounds the value to what TikTok itself accepts: a 50 MB `unique_id` or a
user agent with a line break is the caller's mistake, answered 400 here, never an upstream
call (nor the upstream's 502 for it).
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, RootModel
from pydantic_core import PydanticCustomError

from livegate.ids import MAX_TIKTOK_ID_DIGITS, tiktok_id

MAX_BULK = 50
# TikTok unique ids are at most 24 letters, digits, '_' and '.'; this leaves room to spare.
MAX_UNIQUE_ID = 64
_UNIQUE_ID = re.compile(rf"[A-Za-z0-9_.]{{1,{MAX_UNIQUE_ID}}}")
MAX_CURSOR = 256
MAX_USER_AGENT = 512
MAX_COOKIE_VALUE = 256
_PRINTABLE_ASCII = re.compile(r"[\x20-\x7e]*")
_WORD = re.compile(r"[A-Za-z0-9_-]{1,32}")  # rankings' region and rank_type


def _refuse(message: str) -> PydanticCustomError:
    # A custom error, not ValueError: the 400's message is then "<field>: <message>", with no
    # "Value error," in front.
    return PydanticCustomError("invalid_value", message)


def check_unique_id(value: str) -> str:
    """A TikTok unique id, '@' and surrounding blanks allowed; blank passes (the route
    says what it needs)."""
    name = value.strip().lstrip("@")
    if name and not _UNIQUE_ID.fullmatch(name):
        raise _refuse(
            f"must be a TikTok unique id: up to {MAX_UNIQUE_ID} letters, digits, '_' or '.'"
        )
    return value


def check_room_id(value: str) -> str:
    """A numeric TikTok room id (or blank)."""
    room = value.strip()
    if room and not tiktok_id(room):
        raise _refuse(f"must be a numeric room id of at most {MAX_TIKTOK_ID_DIGITS} digits")
    return value


def check_user_id(value: str) -> str:
    if not tiktok_id(value.strip()):
        raise _refuse(f"must be a numeric user id of at most {MAX_TIKTOK_ID_DIGITS} digits")
    return value


def _check_text(value: str, limit: int, what: str) -> str:
    # These go into TikTok's query string or headers: printable ASCII only, and short.
    if len(value) > limit or not _PRINTABLE_ASCII.fullmatch(value):
        raise _refuse(f"must be {what}: at most {limit} printable ASCII characters")
    return value


def check_cursor(value: str) -> str:
    return _check_text(value, MAX_CURSOR, "a fetch cursor")


def check_user_agent(value: str) -> str:
    return _check_text(value, MAX_USER_AGENT, "a user agent")


def check_cookie_value(value: str) -> str:
    return _check_text(value, MAX_COOKIE_VALUE, "a cookie value")


def check_word(value: str) -> str:
    if value and not _WORD.fullmatch(value):
        raise _refuse("must be up to 32 letters, digits, '_' or '-'")
    return value


def _str_of_int(v: Any) -> Any:
    # The SDKs send numeric ids as JSON numbers or strings; bool is an int in Python, not here.
    return str(v) if isinstance(v, int) and not isinstance(v, bool) else v


def _flag(value: str) -> bool:
    return value.strip().lower() not in ("0", "false", "no", "")


# -- field types ----------------------------------------------------------------------------

RoomId = Annotated[str, BeforeValidator(_str_of_int), AfterValidator(check_room_id)]
UserId = Annotated[str, BeforeValidator(_str_of_int), AfterValidator(check_user_id)]
UniqueId = Annotated[str, AfterValidator(check_unique_id)]
Cursor = Annotated[str, AfterValidator(check_cursor)]
UserAgent = Annotated[str, AfterValidator(check_user_agent)]
CookieValue = Annotated[str, AfterValidator(check_cookie_value)]
Word = Annotated[str, AfterValidator(check_word)]
Flag = Annotated[bool, BeforeValidator(lambda v: _flag(v) if isinstance(v, str) else v)]


# -- bodies ---------------------------------------------------------------------------------


class FetchBody(BaseModel):
    model_config = ConfigDict(extra="ignore")
    unique_id: UniqueId | None = Field(
        default=None, description="The streamer, when room_id is unknown."
    )
    room_id: RoomId | None = None
    cursor: Cursor = Field(default="", description="The cursor of the previous fetch result.")
    user_agent: UserAgent | None = None


class BulkLiveCheckBody(BaseModel):
    model_config = ConfigDict(extra="ignore")
    user_numeric_ids: list[UserId] | None = Field(
        default=None, max_length=MAX_BULK, description="Users livegate knows (signed in here)."
    )
    unique_ids: list[UniqueId] | None = Field(default=None, max_length=MAX_BULK)


class ChatBody(BaseModel):
    model_config = ConfigDict(extra="ignore")
    content: str = Field(min_length=1, max_length=500)
    target_room_id: RoomId | None = Field(
        default=None, description="The room (POST /webcast/chat)."
    )
    room_id: RoomId | None = Field(default=None, description="Same as target_room_id.")


def _creator(value: str) -> str:
    if not value.strip().lstrip("@"):
        raise _refuse("must be a TikTok unique id, not blank")
    return value


Creator = Annotated[str, AfterValidator(check_unique_id), AfterValidator(_creator)]


class JwtBody(BaseModel):
    model_config = ConfigDict(extra="ignore")
    creators: list[Creator] = Field(
        min_length=1,
        max_length=20,
        description="The streamers (unique ids) whose event streams the token may open.",
    )
    max_sockets: int = Field(
        default=1, ge=1, le=50, description="How many streams the token may hold open at once."
    )
    expires_in: int = Field(
        default=60,
        ge=1,
        le=3600,
        description="Seconds the token may open streams for (never past the access token's "
        "own expiry); a stream once open lives on.",
    )


class RankingsBody(BaseModel):
    model_config = ConfigDict(extra="ignore")
    region: Word = "US"
    rank_type: Word = "DAILY_RANK"


# -- answers --------------------------------------------------------------------------------


def _absent(value: object) -> bool:
    return value is None


class Answer(BaseModel):
    code: int = Field(default=200, description="The HTTP status, repeated.")
    message: str = "ok"


class RoomIdAnswer(Answer):
    ok: bool = True
    routes_attempted: list[str] = Field(description="The TikTok routes livegate asked.")
    is_live: bool | None = Field(description="null: TikTok did not say (never 'offline').")
    live_state: str | None = Field(default=None, exclude_if=_absent)
    room_id: str | None


class RoomInfoAnswer(Answer):
    ok: bool = True
    routes_attempted: list[str]
    data: dict[str, Any] = Field(description="TikTok's room info, as TikTok sent it.")


class LiveEntry(BaseModel):
    is_live: bool | None = Field(description="null: unknown (never 'offline').")
    room_id: str | None
    error: str | None = Field(
        default=None,
        exclude_if=_absent,
        description="unknown_user or unknown, when is_live is null.",
    )


class LiveByUserId(BaseModel):
    data: dict[str, LiveEntry]


class BulkByUserIdAnswer(Answer):
    response: LiveByUserId


class LiveByUniqueId(RootModel[dict[str, bool | None]]):
    """unique_id → live (true), not live (false) or unknown (null)."""


class RankingsAnswer(Answer):
    region: str
    response: dict[str, Any] = Field(description="TikTok's leaderboard, as TikTok sent it.")


class ChatAnswer(Answer):
    data: dict[str, Any] = Field(description="TikTok's answer to the chat message.")


class JwtAnswer(Answer):
    token: str = Field(
        description="The browser token: `jwtKey` on GET /webcast/events (WebSocket) and "
        "GET /webcast/rooms/{unique_id}/events (Server-Sent Events)."
    )
    expires_in: int = Field(description="Seconds left to open streams with it.")
    expires_at: int = Field(description="POSIX time it stops opening streams.")
    creators: list[str] = Field(description="The unique ids it may open, normalized.")
    max_sockets: int
    acts_as_user: bool = Field(
        description="true: streams connect with the user's TikTok session (the access "
        "token's grant); false: anonymously."
    )


class LimitState(BaseModel):
    credential: str = Field(description="token or api_key")
    category: str = Field(description="connect (fetch, connect) or calls (the others)")
    limit: str = Field(description="e.g. 60/minute")
    max: int
    remaining: int
    reset_at: int = Field(description="POSIX time the window ends")


class RateLimitsAnswer(Answer):
    limits: list[LimitState]


# -- errors ---------------------------------------------------------------------------------


class WebcastError(BaseModel):
    """Every /webcast error: the status, what went wrong and what to change, and a code."""

    model_config = ConfigDict(extra="allow")
    code: int = Field(description="The HTTP status, repeated.")
    message: str = Field(description="What went wrong, and what to change.")
    error: str = Field(description="A machine-readable code, e.g. invalid_request.")


class InvalidToken(WebcastError):
    error_description: str | None = Field(
        default=None, description="invalid_token: why (login_required: sign the user in again)."
    )


class Forbidden(WebcastError):
    error_description: str | None = Field(default=None, description="insufficient_scope: why.")
    scope: str | None = Field(
        default=None, description="insufficient_scope: the scope the call needs."
    )


class RateLimited(WebcastError):
    limit_label: str = Field(description="category:credential, e.g. connect:token")
    retry_after: int = Field(description="Seconds to wait (also in Retry-After).")
