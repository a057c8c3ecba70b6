"""drop credential changes: the triggers, function and counter of 0003 go

Revision ID: 0005_drop_credential_changes
Revises: 0004_sealed_pending_logins

The webcast API no longer keeps credential checks in memory: every call looks its token or
API key up in the database, so no process needs to hear of another's credential writes. What
0003 made for that goes: the UPDATE/DELETE triggers on the credential tables (a counter row
on SQLite, NOTIFY on PostgreSQL), PostgreSQL's trigger function, and the counter table.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005_drop_credential_changes"
down_revision: str | None = "0004_sealed_pending_logins"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# As in 0003.
TABLES = (
    "access_tokens",
    "grants",
    "tiktok_sessions",
    "session_key_wraps",
    "oauth_clients",
    "api_keys",
)
CHANNEL = "livegate_credentials"


def _postgres() -> bool:
    return op.get_bind().dialect.name == "postgresql"


def upgrade() -> None:
    if _postgres():
        for table in TABLES:
            op.execute(f"DROP TRIGGER IF EXISTS {table}_changed ON {table}")
        op.execute("DROP FUNCTION IF EXISTS livegate_credentials_changed()")
    else:
        for table in TABLES:
            for verb in ("update", "delete"):
                op.execute(f"DROP TRIGGER IF EXISTS {table}_{verb}d")
    op.drop_table("credential_changes")


def downgrade() -> None:
    """0003's objects again, as 0003 made them."""
    op.create_table(
        "credential_changes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("generation", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.execute("INSERT INTO credential_changes (id, generation) VALUES (1, 0)")
    if _postgres():
        op.execute(
            "CREATE FUNCTION livegate_credentials_changed() RETURNS trigger "
            "LANGUAGE plpgsql AS $$ BEGIN "
            f"PERFORM pg_notify('{CHANNEL}', current_schema()); RETURN NULL; END $$"
        )
        for table in TABLES:
            op.execute(
                f"CREATE TRIGGER {table}_changed AFTER UPDATE OR DELETE ON {table} "
                "FOR EACH STATEMENT EXECUTE FUNCTION livegate_credentials_changed()"
            )
        return
    for table in TABLES:
        for verb in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER {table}_{verb.lower()}d AFTER {verb} ON {table} BEGIN "  # noqa: S608  # names from TABLES, no input
                "UPDATE credential_changes SET generation = generation + 1 WHERE id = 1; END"
            )
