"""sealed pending logins: no cookie, QR token, code or binding in the clear

Revision ID: 0004_sealed_pending_logins
Revises: 0003_credential_changes

A pending sign-in kept TikTok's cookie jar and warm-up cookies (`passport_state`), the QR
token and URL, the browser binding (`csrf_token`) and the redirect with its authorization code
(`result_url`) in the clear. Now the binding is a digest, what TikTok would honour is one
sealed blob (`login/sealed.py`) and the code is derived when the browser asks. Pending sign-ins
live fifteen minutes, so the table is replaced rather than converted: whoever was signing in
starts again.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import livegate.db.models

revision: str = "0004_sealed_pending_logins"
down_revision: str | None = "0003_credential_changes"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _drop() -> None:
    if op.get_bind().dialect.name == "sqlite":
        # The old rows held cookies in the clear: zero their pages as the table goes.
        op.execute("PRAGMA secure_delete=ON")
    with op.batch_alter_table("pending_logins", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_pending_logins_expires_at"))
    op.drop_table("pending_logins")


def _common_columns() -> list[sa.schema.SchemaItem]:
    return [
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("purpose", sa.String(length=16), nullable=False),
        sa.Column("client_pk", sa.Integer(), nullable=True),
        sa.Column("request_params", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("qr_expires_at", livegate.db.models.UTCDateTime(timezone=True), nullable=True),
        sa.Column("next_poll_at", livegate.db.models.UTCDateTime(timezone=True), nullable=True),
        sa.Column("account_unique_id", sa.String(length=64), nullable=True),
        sa.Column("result_url", sa.Text(), nullable=True),
        sa.Column("created_at", livegate.db.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("expires_at", livegate.db.models.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["client_pk"], ["oauth_clients.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    ]


def _create(*columns: sa.schema.SchemaItem) -> None:
    op.create_table("pending_logins", *_common_columns(), *columns)
    with op.batch_alter_table("pending_logins", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_pending_logins_expires_at"), ["expires_at"], unique=False
        )


def upgrade() -> None:
    _drop()
    _create(
        sa.Column("binding_digest", sa.String(length=64), nullable=False),
        sa.Column("sealed", sa.LargeBinary(), nullable=True),
        sa.Column("message", sa.String(length=200), nullable=True),
    )


def downgrade() -> None:
    _drop()
    _create(
        sa.Column("csrf_token", sa.String(length=64), nullable=False),
        sa.Column("qr_token", sa.String(length=200), nullable=True),
        sa.Column("qr_url", sa.String(length=2000), nullable=True),
        sa.Column("passport_state", sa.JSON(), nullable=False),
    )
