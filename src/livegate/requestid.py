"""The id of the request being served, for every log line written while serving it.

`observability.Observe` sets it for each request (and returns it as `X-Request-Id`); the
filter that `logs.setup_logging` puts on the log handler copies it onto each record, so the
JSON log lines of one request share one `request_id`. A contextvar: it follows the request
into the threadpool (anyio copies the context) and into uvicorn's access log line, which is
written from inside the request's `send`.
"""

from __future__ import annotations

import logging
import os
import re
from contextvars import ContextVar

REQUEST_ID: ContextVar[str | None] = ContextVar("livegate_request_id", default=None)

# What an id from a trusted proxy may look like: enough for UUIDs and the ids load balancers
# make, nothing that could break a log line or a header.
_VALID = re.compile(r"[A-Za-z0-9._:\-]{1,128}")


def new_request_id() -> str:
    return os.urandom(12).hex()


def valid_request_id(value: str) -> bool:
    return _VALID.fullmatch(value) is not None


def current_request_id() -> str | None:
    return REQUEST_ID.get()


class RequestIdFilter(logging.Filter):
    """Puts the current request's id on each record as `request_id` (absent outside one)."""

    def filter(self, record: logging.LogRecord) -> bool:
        request_id = REQUEST_ID.get()
        if request_id is not None:
            record.request_id = request_id
        return True
