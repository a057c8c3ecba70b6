"""Input of the webcast API: JSON bodies (the Euler SDKs' and the docs' forms) and the checks
every body field and query parameter goes through before anything is sent to TikTok.

Each check bounds the value to what TikTok itself accepts: a 50 MB `unique_id` or a
user agent with a line break is the caller's mistake, answered 400 here, never an upstream
call (nor the upstream's 502 for it).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from starlette.exceptions import HTTPException
from starlette.requests import Request

from livegate.api.errors import ApiError, bad_request
from livegate.bodies import BadBody, parse_json_object
from livegate.ids import MAX_TIKTOK_ID_DIGITS, tiktok_id

M = TypeVar("M", bound=BaseModel)
MAX_BULK = 50
# TikTok unique ids are at most 24 letters, digits, '_' and '.'; this leaves room to spare.
MAX_UNIQUE_ID = 64
_UNIQUE_ID = re.compile(rf"[A-Za-z0-9_.]{{1,{MAX_UNIQUE_ID}}}")
MAX_CURSOR = 256
MAX_USER_AGENT = 512
MAX_COOKIE_VALUE = 256
_PRINTABLE_ASCII = re.compile(r"[\x20-\x7e]*")
_WORD = re.compile(r"[A-Za-z0-9_-]{1,32}")  # rankings' region and rank_type


def check_unique_id(value: str) -> str:
    """A TikTok unique id, '@' and surrounding blanks allowed; blank passes (the route
    says what it needs)."""
    name = value.strip().lstrip("@")
    if name and not _UNIQUE_ID.fullmatch(name):
        raise ValueError(
            f"must be a TikTok unique id: up to {MAX_UNIQUE_ID} letters, digits, '_' or '.'"
        )
    return value


def check_room_id(value: str) -> str:
    """A numeric TikTok room id (or blank)."""
    room = value.strip()
    if room and not tiktok_id(room):
        raise ValueError(f"must be a numeric room id of at most {MAX_TIKTOK_ID_DIGITS} digits")
    return value


def check_user_id(value: str) -> str:
    if not tiktok_id(value.strip()):
        raise ValueError(f"must be a numeric user id of at most {MAX_TIKTOK_ID_DIGITS} digits")
    return value


def _check_text(value: str, limit: int, what: str) -> str:
    # These go into TikTok's query string or headers: printable ASCII only, and short.
    if len(value) > limit or not _PRINTABLE_ASCII.fullmatch(value):
        raise ValueError(f"must be {what}: at most {limit} printable ASCII characters")
    return value


def check_cursor(value: str) -> str:
    return _check_text(value, MAX_CURSOR, "a fetch cursor")


def check_user_agent(value: str) -> str:
    return _check_text(value, MAX_USER_AGENT, "a user agent")


def check_cookie_value(value: str) -> str:
    return _check_text(value, MAX_COOKIE_VALUE, "a cookie value")


def check_word(value: str) -> str:
    if value and not _WORD.fullmatch(value):
        raise ValueError("must be up to 32 letters, digits, '_' or '-'")
    return value


def _str_of_int(v: Any) -> Any:
    # The SDKs send numeric ids as JSON numbers or strings; bool is an int in Python, not here.
    return str(v) if isinstance(v, int) and not isinstance(v, bool) else v


class FetchBody(BaseModel):
    model_config = ConfigDict(extra="ignore")
    unique_id: str | None = None
    room_id: str | None = None
    cursor: str = ""
    user_agent: str | None = None

    @field_validator("room_id", mode="before")
    @classmethod
    def _str_id(cls, v: Any) -> Any:
        return _str_of_int(v)

    @field_validator("unique_id")
    @classmethod
    def _unique_id(cls, v: str | None) -> str | None:
        return None if v is None else check_unique_id(v)

    @field_validator("room_id")
    @classmethod
    def _room_id(cls, v: str | None) -> str | None:
        return None if v is None else check_room_id(v)

    @field_validator("cursor")
    @classmethod
    def _cursor(cls, v: str) -> str:
        return check_cursor(v)

    @field_validator("user_agent")
    @classmethod
    def _user_agent(cls, v: str | None) -> str | None:
        return None if v is None else check_user_agent(v)


class BulkLiveCheckBody(BaseModel):
    model_config = ConfigDict(extra="ignore")
    user_numeric_ids: list[str] | None = Field(default=None, max_length=MAX_BULK)
    unique_ids: list[str] | None = Field(default=None, max_length=MAX_BULK)

    @field_validator("user_numeric_ids", mode="before")
    @classmethod
    def _str_ids(cls, v: Any) -> Any:
        return [_str_of_int(i) for i in v] if isinstance(v, list) else v

    @field_validator("user_numeric_ids")
    @classmethod
    def _user_ids(cls, v: list[str] | None) -> list[str] | None:
        return None if v is None else [check_user_id(i) for i in v]

    @field_validator("unique_ids")
    @classmethod
    def _unique_ids(cls, v: list[str] | None) -> list[str] | None:
        return None if v is None else [check_unique_id(i) for i in v]


class ChatBody(BaseModel):
    model_config = ConfigDict(extra="ignore")
    content: str = Field(min_length=1, max_length=500)
    target_room_id: str | None = None
    room_id: str | None = None

    @field_validator("target_room_id", "room_id", mode="before")
    @classmethod
    def _str_id(cls, v: Any) -> Any:
        return _str_of_int(v)

    @field_validator("target_room_id", "room_id")
    @classmethod
    def _room_id(cls, v: str | None) -> str | None:
        return None if v is None else check_room_id(v)


class RankingsBody(BaseModel):
    model_config = ConfigDict(extra="ignore")
    region: str = "US"
    rank_type: str = "DAILY_RANK"

    @field_validator("region", "rank_type")
    @classmethod
    def _word(cls, v: str) -> str:
        return check_word(v)


def checked(value: str | None, check: Callable[[str], str], name: str) -> str | None:
    """A query or path parameter through its check; a 400 `{code, message}` naming it."""
    if value is None:
        return None
    try:
        return check(value)
    except ValueError as exc:
        raise bad_request(f"{name} {exc}.") from None


async def json_body(request: Request, model: type[M]) -> M:
    """The request's JSON body as `model`, or a 4xx `{code, message}` saying what is wrong."""
    try:
        raw = await request.body()
    except HTTPException as exc:  # over the size limit (limits.py), which has answered 413
        raise ApiError(exc.status_code, str(exc.detail)) from None
    try:
        data = parse_json_object(raw, empty={})
    except BadBody as exc:
        raise bad_request(str(exc)) from None
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ()))
        msg = str(first.get("msg", "invalid")).removeprefix("Value error, ")
        raise bad_request(f"{where}: {msg}" if where else "invalid body") from None
