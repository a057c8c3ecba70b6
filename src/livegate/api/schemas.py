"""Request bodies of the webcast API (JSON); both the Euler SDKs' and the docs' forms."""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from starlette.requests import Request

from livegate.api.errors import bad_request
from livegate.bodies import BadBody, parse_json_object

M = TypeVar("M", bound=BaseModel)
MAX_BULK = 50


class FetchBody(BaseModel):
    model_config = ConfigDict(extra="ignore")
    unique_id: str | None = None
    room_id: str | None = None
    cursor: str = ""
    user_agent: str | None = None

    @field_validator("room_id", mode="before")
    @classmethod
    def _str_id(cls, v: Any) -> Any:
        return str(v) if isinstance(v, int) else v


class BulkLiveCheckBody(BaseModel):
    model_config = ConfigDict(extra="ignore")
    user_numeric_ids: list[str] | None = Field(default=None, max_length=MAX_BULK)
    unique_ids: list[str] | None = Field(default=None, max_length=MAX_BULK)

    @field_validator("user_numeric_ids", mode="before")
    @classmethod
    def _str_ids(cls, v: Any) -> Any:
        if isinstance(v, list):
            return [str(i) if isinstance(i, int) else i for i in v]
        return v


class ChatBody(BaseModel):
    model_config = ConfigDict(extra="ignore")
    content: str = Field(min_length=1, max_length=500)
    target_room_id: str | None = None
    room_id: str | None = None

    @field_validator("target_room_id", "room_id", mode="before")
    @classmethod
    def _str_id(cls, v: Any) -> Any:
        return str(v) if isinstance(v, int) else v


class RankingsBody(BaseModel):
    model_config = ConfigDict(extra="ignore")
    region: str = "US"
    rank_type: str = "DAILY_RANK"


async def json_body(request: Request, model: type[M]) -> M:
    """The request's JSON body as `model`, or a 400 `{code, message}` saying what is wrong."""
    raw = await request.body()
    try:
        data = parse_json_object(raw, empty={})
    except BadBody as exc:
        raise bad_request(str(exc)) from None
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ()))
        message = f"{where}: {first.get('msg', 'invalid')}" if where else "invalid body"
        raise bad_request(message) from None
