"""Clients as the OAuth endpoints show them (registration itself: `oauth/clients.py`)."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from livegate.oauth import clients
from livegate.oauth.service.base import ServiceBase


class ClientService(ServiceBase):
    def public_info(self, client_id: str) -> dict[str, Any] | None:
        """What a consent screen may show of a client; None for an unknown one."""

        def run(db: Session) -> dict[str, Any] | None:
            row = clients.get_client(db, client_id)
            return clients.public_info(row) if row else None

        return self.transaction(run)
