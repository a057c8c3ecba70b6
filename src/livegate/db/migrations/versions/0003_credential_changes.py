"""credential changes: triggers that tell every gateway process when a credential changed

Revision ID: 0003_credential_changes
Revises: 0002_dashboard

Each gateway process keeps token and API-key checks in memory (`api/auth.py`). These triggers
are how a process learns that another one (a second worker, the CLI, a dashboard) revoked or
changed something behind them, without re-reading every cached credential's row.

- SQLite: a one-row counter, moved in the writing transaction; readers poll it.
- PostgreSQL: `NOTIFY livegate_credentials`, delivered at commit to every listening process.
  Not a counter row: every credential write would then lock that one row until its commit,
  and two transactions writing the same grant in opposite orders could deadlock on it.

Only UPDATE and DELETE: a new row never changes the answer for a credential already checked.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003_credential_changes"
down_revision: str | None = "0002_dashboard"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The tables behind a cached check: kept in step with `db/changes.py`.
TABLES = (
    "access_tokens",
    "grants",
    "tiktok_sessions",
    "session_key_wraps",
    "oauth_clients",
    "api_keys",
)
CHANNEL = "livegate_credentials"


def upgrade() -> None:
    op.create_table(
        "credential_changes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("generation", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.execute("INSERT INTO credential_changes (id, generation) VALUES (1, 0)")
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "CREATE FUNCTION livegate_credentials_changed() RETURNS trigger "
            "LANGUAGE plpgsql AS $$ BEGIN "
            # The schema as payload: listeners of other schemas in the same database skip it.
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


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for table in TABLES:
            op.execute(f"DROP TRIGGER {table}_changed ON {table}")
        op.execute("DROP FUNCTION livegate_credentials_changed()")
    else:
        for table in TABLES:
            for verb in ("update", "delete"):
                op.execute(f"DROP TRIGGER {table}_{verb}d")
    op.drop_table("credential_changes")
