"""A change counter for the rows that in-memory credential caches depend on.

The webcast API keeps the result of an access-token or API-key check in memory so a warm call
does not need the database (see `api/auth.py`). The cache entries remember the `generation`
they were read under; any write by this process to the tables behind them moves the
generation on, so the next call checks the database again and a revocation takes effect on
the very next call, whatever code path made it.

The generation moves twice per writing connection: when the statement runs, and when the
connection goes back to the pool (after its commit or rollback). A check that read the
database between the write and the commit still saw the old row, but it also recorded the
generation before the second move, so its answer is not reused.
"""

from __future__ import annotations

import itertools
import re
from typing import Any

from sqlalchemy import Engine, event

# Tables whose writes change whether a token or key is usable, or which session it signs with.
_ANY_WRITE = frozenset(
    {"grants", "tiktok_sessions", "session_key_wraps", "oauth_clients", "api_keys"}
)
# New access tokens do not affect cached checks of other tokens; only updates and deletes do.
_CHANGES_ONLY = frozenset({"access_tokens"})
_WRITE = re.compile(r'\s*(INSERT\s+INTO|UPDATE|DELETE\s+FROM)\s+"?(\w+)"?', re.IGNORECASE)
_INFO_KEY = "livegate.credentials_changed"


def _touches_credentials(statement: str) -> bool:
    if statement[:1].upper() not in ("I", "U", "D") and not statement[:1].isspace():
        return False
    match = _WRITE.match(statement)
    if match is None:
        return False
    verb, table = match.group(1)[0].upper(), match.group(2).lower()
    return table in _ANY_WRITE or (table in _CHANGES_ONLY and verb != "I")


class ChangeCounter:
    def __init__(self, engine: Engine) -> None:
        self._counter = itertools.count(1)
        self.generation = 0
        event.listen(engine, "after_cursor_execute", self._after_execute)
        event.listen(engine, "checkin", self._checkin)

    def bump(self) -> None:
        # next() on a count is atomic under the GIL: writers in several threads never
        # leave the generation where a reader saw it.
        self.generation = next(self._counter)

    def _after_execute(
        self,
        conn: Any,
        _cursor: Any,
        statement: str,
        _parameters: Any,
        _context: Any,
        _executemany: bool,
    ) -> None:
        if _touches_credentials(statement):
            conn.info[_INFO_KEY] = True
            self.bump()

    def _checkin(self, _dbapi_conn: Any, record: Any) -> None:
        if record is not None and record.info.pop(_INFO_KEY, False):
            self.bump()
