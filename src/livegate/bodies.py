"""Request bodies read once, the same way everywhere: JSON objects and form parameters.

Every route that reads a body goes through here, so that the same input is refused the same
way on every endpoint: malformed or non-UTF-8 JSON, nesting deeper than any real request
needs, strings that cannot be encoded (a lone surrogate such as "\\ud800"), and object keys
given twice (RFC 8259 §4 leaves their meaning open; we refuse them rather than guess).
"""

from __future__ import annotations

import json
from typing import Any

# No request livegate accepts nests more than a few levels; this leaves room to spare.
MAX_JSON_DEPTH = 32


class BadBody(ValueError):
    """The body cannot be read as the route needs it; the message says why."""


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj: dict[str, Any] = {}
    for key, value in pairs:
        if key in obj:
            raise BadBody(f"The JSON key '{_printable(key)}' appears more than once.")
        obj[key] = value
    return obj


def _printable(text: str) -> str:
    return text.encode("utf-8", "replace").decode("utf-8")[:40]


def _check(value: Any, depth: int) -> None:
    if depth > MAX_JSON_DEPTH:
        raise BadBody(f"The JSON body nests deeper than {MAX_JSON_DEPTH} levels.")
    if isinstance(value, str):
        _check_text(value)
    elif isinstance(value, dict):
        for key, item in value.items():
            _check_text(key)
            _check(item, depth + 1)
    elif isinstance(value, list):
        for item in value:
            _check(item, depth + 1)


def _check_text(text: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise BadBody("The JSON body holds a string that is not valid Unicode.") from None


def parse_json(raw: bytes) -> Any:
    """Any JSON value, checked as the module docstring says."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise BadBody("The request body is not UTF-8.") from None
    try:
        value = json.loads(text, object_pairs_hook=_no_duplicate_keys)
    except RecursionError:
        raise BadBody(f"The JSON body nests deeper than {MAX_JSON_DEPTH} levels.") from None
    except ValueError as exc:
        if isinstance(exc, BadBody):
            raise
        raise BadBody("The request body is not valid JSON.") from None
    _check(value, 0)
    return value


def parse_json_object(raw: bytes, *, empty: dict[str, Any] | None = None) -> dict[str, Any]:
    """A JSON object; an empty body gives `empty` when the route allows one."""
    if not raw.strip():
        if empty is not None:
            return dict(empty)
        raise BadBody("The request body is empty; send a JSON object.")
    value = parse_json(raw)
    if not isinstance(value, dict):
        raise BadBody("The request body must be a JSON object.")
    return value
