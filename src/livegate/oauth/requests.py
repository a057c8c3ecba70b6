"""Authlib's request objects, built from data a Starlette route has already read."""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Mapping
from typing import Any

from authlib.oauth2.rfc6749 import OAuth2Payload, OAuth2Request

from livegate.errors import LivegateError, bad_request

# RFC 6749 §5.2: the characters an error_description may hold.
_DESCRIBABLE = re.compile(r"[\x20\x21\x23-\x5b\x5d-\x7e]{1,40}")


def quoted(value: str, otherwise: str = "a parameter") -> str:
    """A value the caller sent, for an error description: quoted, or `otherwise` when it is
    too long or holds characters an error description may not (RFC 6749 §5.2)."""
    return f"'{value}'" if _DESCRIBABLE.fullmatch(value) else otherwise


def repeated_error(name: str) -> LivegateError:
    return bad_request(f"The parameter {quoted(name)} is given more than once.")


def unprintable_error() -> LivegateError:
    return bad_request("The request contains characters that are not allowed.")


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
        # Set while a sign-in completes: the grant's session data key, to wrap for the code.
        self.data_key: bytes | None = None
        self.session_id: int | None = None
        # The code or refresh token presented: it unwraps the data key for the new tokens.
        self.presented_secret: str | None = None

    def check_parameters(self) -> None:
        """Refuse what no endpoint can read: a parameter given more than once (RFC 6749
        §3.1, §3.2), or U+0000, which PostgreSQL text refuses."""
        for key, values in self.payload.datalist.items():
            if "\x00" in key or any(isinstance(v, str) and "\x00" in v for v in values):
                raise unprintable_error()
        name = next((key for key, values in self.payload.datalist.items() if len(values) > 1), None)
        if name is not None:
            raise repeated_error(name)

    @property
    def args(self) -> dict[str, Any]:
        return self.payload.data

    @property
    def form(self) -> dict[str, Any]:
        return self.payload.data
