"""Authlib's request objects, built from data a Starlette route has already read."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from typing import Any

from authlib.oauth2.rfc6749 import OAuth2Payload, OAuth2Request


class DictPayload(OAuth2Payload):
    def __init__(self, data: Mapping[str, Any], datalist: Mapping[str, list[Any]]) -> None:
        self._data = dict(data)
        self._datalist: defaultdict[str, list[Any]] = defaultdict(list, datalist)

    @property
    def data(self) -> dict[str, Any]:
        return self._data

    @property
    def datalist(self) -> defaultdict[str, list[Any]]:
        return self._datalist


class LivegateRequest(OAuth2Request):
    """One OAuth request: query (authorize) or body (token, revoke, introspect) parameters.

    The JSON dialect lands here too: its body is just another parameter source.
    """

    def __init__(
        self,
        method: str,
        uri: str,
        headers: Mapping[str, str],
        params: list[tuple[str, str]] | Mapping[str, Any],
    ) -> None:
        super().__init__(method, uri, headers=dict(headers))
        pairs = list(params.items()) if isinstance(params, Mapping) else list(params)
        datalist: dict[str, list[Any]] = defaultdict(list)
        for key, value in pairs:
            datalist[key].append(value)
        # The first value of each parameter; duplicates stay visible in datalist for validation.
        data = {key: values[0] for key, values in datalist.items()}
        self.payload = DictPayload(data, datalist)
        self.data_key: bytes | None = None
        self.presented_secret: str | None = None
        self.session_id: int | None = None

    def has_nul(self) -> bool:
        """Whether a parameter name or value holds U+0000, which PostgreSQL text refuses."""
        return any(
            "\x00" in key or any(isinstance(v, str) and "\x00" in v for v in values)
            for key, values in self.payload.datalist.items()
        )

    @property
    def args(self) -> dict[str, Any]:
        return self.payload.data

    @property
    def form(self) -> dict[str, Any]:
        return self.payload.data
