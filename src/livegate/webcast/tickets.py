"""Relay tickets: what a session-signed fetch hands the client instead of TikTok's push server.

`push_server` in such a fetch result is rewritten to `ws(s)://<public host>/webcast/ws/<ticket>/`
(webcast/relay.py serves it). A ticket is random, single use, valid `TICKET_TTL` seconds to
start, and bound to the grant and the access token whose fetch issued it.

Any instance sharing the database may receive the relay's handshake, so a ticket is kept in
the database (`relay_tickets`): the row is keyed by the ticket's digest and holds the upstream
URL, grant, token digest and session jar sealed under HKDF(server key || ticket)
(`Vault.seal`). The cookies never leave livegate: the URL, which proxies log, carries only the
ticket, and a dump of the table opens nothing without it. Taking a ticket deletes its row in
the same statement that reads it, so it opens once across every instance.
"""

from __future__ import annotations

import datetime as dt
import json
import secrets
import time
from dataclasses import dataclass, field

from sqlalchemy import delete, insert
from sqlalchemy.orm import Session

from livegate.db.engine import Database
from livegate.db.models import RelayTicket, utcnow
from livegate.secrets import digest
from livegate.vault import Vault, VaultError

TICKET_TTL = 60.0
KIND = "relay-ticket"
PRUNE_EVERY = 10.0  # seconds between deletions of tickets nobody opened


@dataclass(frozen=True)
class Ticket:
    upstream: str  # the push_server TikTok named
    grant_id: int
    token_digest: str  # the access token whose fetch issued the ticket
    cookies: dict[str, str] = field(repr=False)  # the session jar the fetch was signed with


TICKET_BYTES = 32


class TicketStore:
    def __init__(self, database: Database, vault: Vault, ttl: float = TICKET_TTL) -> None:
        self.db = database
        self.vault = vault
        self.ttl = ttl
        self._pruned = 0.0

    def seal(
        self, upstream: str, grant_id: int, token_digest: str, cookies: dict[str, str]
    ) -> tuple[str, dict[str, object]]:
        """A new ticket and its row, not yet saved: sealing needs no database, so a fetch's
        push servers are sealed while its answer is rewritten and saved in one statement."""
        ticket = secrets.token_hex(TICKET_BYTES)
        row_id = digest(ticket)
        plain = json.dumps([upstream, grant_id, token_digest, cookies]).encode()
        # The row id as associated data: a blob copied onto another row does not open there.
        sealed = self.vault.seal(ticket, KIND, plain, row_id.encode())
        expires = utcnow() + dt.timedelta(seconds=self.ttl)
        return ticket, {
            "id": row_id,
            "sealed": sealed,
            "expires_at": expires,
            "created_at": utcnow(),
        }

    def save(self, rows: list[dict[str, object]]) -> None:
        if not rows:
            return
        with self.db.session() as db:
            db.execute(insert(RelayTicket), rows)
            self._prune(db)

    def issue(
        self, upstream: str, grant_id: int, token_digest: str, cookies: dict[str, str]
    ) -> str:
        ticket, row = self.seal(upstream, grant_id, token_digest, cookies)
        self.save([row])
        return ticket

    def take(self, ticket: str) -> Ticket | None:
        """The ticket's contents, once; None if unknown, taken, expired or not opening."""
        row_id = digest(ticket)
        with self.db.session() as db:
            taken = db.execute(
                delete(RelayTicket)
                .where(RelayTicket.id == row_id)
                .returning(RelayTicket.sealed, RelayTicket.expires_at)
            ).first()
        if taken is None or taken.expires_at <= utcnow():
            return None
        try:
            plain = self.vault.unseal(ticket, KIND, taken.sealed, row_id.encode())
        except VaultError:
            return None
        upstream, grant_id, token_digest, cookies = json.loads(plain)
        return Ticket(upstream, int(grant_id), token_digest, dict(cookies))

    def _prune(self, db: Session) -> None:
        now = time.monotonic()
        if now - self._pruned < PRUNE_EVERY:
            return
        self._pruned = now
        db.execute(delete(RelayTicket).where(RelayTicket.expires_at <= utcnow()))


def ws_base(public_url: str) -> str:
    if public_url.startswith("https://"):
        return "wss://" + public_url[len("https://") :]
    return "ws://" + public_url.removeprefix("http://")
