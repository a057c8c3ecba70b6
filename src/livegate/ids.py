"""Numeric ids taken from a request's path, query or form, read in one place.

`str.isdigit` and `int()` accept far more than ASCII digits ("²", "١٢٣", " 12", "1_000"), and
a number the database cannot hold fails inside the driver (SQLite: OverflowError; PostgreSQL:
out of range), after the request has been taken for valid. Every id a route reads goes
through here first, so that such input is refused before it reaches a query or TikTok.
"""

from __future__ import annotations

# Every id column is INTEGER: 32-bit on PostgreSQL, so no row can have a larger id on any
# database livegate supports.
MAX_ID = 2**31 - 1
# TikTok's room and user ids are unsigned 64-bit numbers: at most 20 decimal digits.
MAX_TIKTOK_ID_DIGITS = 20


class BadId(ValueError):
    """An id refused before any lookup; `status` is 400 (not a number) or 404 (cannot exist)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def ascii_digits(text: str, max_digits: int) -> bool:
    """Whether `text` is 1 to `max_digits` ASCII digits and nothing else."""
    return 0 < len(text) <= max_digits and text.isascii() and text.isdigit()


def parse_id(text: str | None, what: str = "id") -> int:
    """The row id `text` names. Raises BadId: 400 when it is not a plain decimal number,
    404 when it is one that no row can have (zero, or beyond the id columns' range)."""
    text = text or ""
    if not (text.isascii() and text.isdigit()):
        raise BadId(400, f"The {what} must be a number written in ASCII digits.")
    # Length first: int() of a very long string costs time, and refuses past 4300 digits.
    value = int(text) if len(text.lstrip("0")) <= len(str(MAX_ID)) else MAX_ID + 1
    if not 0 < value <= MAX_ID:
        raise BadId(404, f"No such {what}.")
    return value


def tiktok_id(text: str) -> bool:
    """Whether `text` can be a TikTok room or user id (checked before it goes upstream)."""
    return ascii_digits(text, MAX_TIKTOK_ID_DIGITS)
