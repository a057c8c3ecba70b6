"""relay tickets: sealed, in the shared database, taken once across instances

Revision ID: 0007_relay_tickets
Revises: 0005_drop_credential_changes

WebSocket relay tickets lived in the memory of the process whose fetch issued them, so the
relay had to open on that process: no fleet without sticky routing. Now a ticket's row holds
what the relay needs sealed under the server key and the ticket (only its digest is the key),
and taking it deletes the row.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import livegate.db.models

revision: str = "0007_relay_tickets"
down_revision: str | None = "0005_drop_credential_changes"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "relay_tickets",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("sealed", sa.LargeBinary(), nullable=False),
        sa.Column("expires_at", livegate.db.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("created_at", livegate.db.models.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("relay_tickets", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_relay_tickets_expires_at"), ["expires_at"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("relay_tickets", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_relay_tickets_expires_at"))
    op.drop_table("relay_tickets")
