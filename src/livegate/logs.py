"""Logging set-up. Every record passes a redaction filter: no token, code, secret, cookie or
session id reaches a log line, even from libraries that log URLs (uvicorn's access log)."""

from __future__ import annotations

import logging
import re
import sys
from typing import TextIO

from livegate.requestid import RequestIdFilter

# Query/form parameters whose values are secret, wherever they appear (names, not secrets).
_SECRET_PARAMS = (
    "code|access_token|refresh_token|token|client_secret|session_id|sessionid|sessionid_ss|"  # noqa: S105  # names
    "sid_tt|sid_guard|apiKey|api_key|code_verifier|csrf_token|x-oauth-token|msToken|ttwid|"
    "verifyFp|s_v_web_id|odin_tt|passport_csrf_token|tt_csrf_token|X-Bogus|X-Gnarly"
)
_PATTERNS = [
    # A value that is an object's repr (`code=<CloseCode.NORMAL_CLOSURE: 1000>`, as
    # websockets writes a close frame) or a number of up to four digits (a WebSocket close
    # code, an HTTP status) is no secret: redacting it only garbles the line.
    (
        re.compile(rf"(?i)\b({_SECRET_PARAMS})=(?!<|\d{{1,4}}(?![^&\s\"';,]))([^&\s\"';,]+)"),
        r"\1=[redacted]",
    ),
    (re.compile(r"\blg_(at|rt|ac|cs|ak)_[A-Za-z0-9_\-]+"), r"lg_\1_[redacted]"),
    # Pending-login ids are bearer-like: whoever holds one (and the cookie) drives the sign-in.
    (re.compile(r"(/tiktok/oauth/login/)[A-Za-z0-9_\-]+"), r"\1[redacted]"),
    (re.compile(r"(/_sim/phone\?token=)[^&\s\"]+"), r"\1[redacted]"),
    # WebSocket proxy tickets are single-use bearer capabilities.
    (re.compile(r"(/webcast/ws/)[A-Za-z0-9_\-]+"), r"\1[redacted]"),
    (re.compile(r"(?i)\b(bearer)\s+[A-Za-z0-9._~+/\-]+=*"), r"\1 [redacted]"),
]


def redact(text: str) -> str:
    for pattern, repl in _PATTERNS:
        text = pattern.sub(repl, text)
    return text


class RedactingFormatter(logging.Formatter):
    """Redacts the whole formatted record, tracebacks included."""

    def __init__(self, inner: logging.Formatter) -> None:
        super().__init__()
        self.inner = inner

    def format(self, record: logging.LogRecord) -> str:
        return redact(self.inner.format(record))


def _json_formatter() -> logging.Formatter:
    import structlog

    return structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[
            structlog.stdlib.add_log_level,
            structlog.stdlib.add_logger_name,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            # Which worker wrote the line, and the request it served (requestid.py).
            structlog.processors.CallsiteParameterAdder(
                [structlog.processors.CallsiteParameter.PROCESS]
            ),
            structlog.stdlib.ExtraAdder(allow=("request_id",)),
        ],
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(),
        ],
    )


def setup_logging(
    level: str = "info", stream: TextIO | None = None, json_lines: bool = False
) -> None:
    handler = logging.StreamHandler(stream or sys.stderr)
    inner = (
        _json_formatter()
        if json_lines
        else logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    )
    handler.setFormatter(RedactingFormatter(inner))
    handler.addFilter(RequestIdFilter())
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(level.upper())
    # httpx logs every request URL at INFO; upstream URLs carry fingerprints and tokens.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("httpcore").setLevel(logging.WARNING)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        lg = logging.getLogger(name)
        lg.handlers = []
        lg.propagate = True


def uvicorn_log_config() -> dict[str, object]:
    """uvicorn's own config would replace our handlers; this keeps them."""
    return {"version": 1, "disable_existing_loggers": False}
