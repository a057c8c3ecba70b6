"""A request's query string as a plain dict, parsed once per request."""

from __future__ import annotations

from urllib.parse import parse_qsl

from starlette.requests import HTTPConnection

_CACHED = "livegate.query"  # scope key: auth and the route read the same parse


def query_params(conn: HTTPConnection) -> dict[str, str]:
    """The values Starlette's `QueryParams.get` would give (blank values kept, the last of a
    repeated name wins), as a dict: the fetch route reads seven names on every poll, and a
    multi-dict read through `Mapping.get` cost more than the parse itself."""
    scope = conn.scope
    found: dict[str, str] | None = scope.get(_CACHED)
    if found is None:
        text = scope["query_string"].decode("latin-1")
        found = scope[_CACHED] = dict(parse_qsl(text, keep_blank_values=True))
    return found
