"""The keyed chain: per-entry HMAC, the key that made it, pseudonymised caller; append-only triggers.

Existing (foundation-era) rows keep ``mac = NULL`` and stay verifiable by their plain hash
chain. Rows are never rewritten here: the log itself seals them when it is next opened, with
an ``audit.sealed`` entry whose MAC chains onto the last unkeyed hash (see docs/audit.md).

The triggers make UPDATE and DELETE (and TRUNCATE on PostgreSQL) fail: a guard against
mistakes and low-privilege tampering. They are no defence against the table's owner, who can
drop them; the MACs and the head file are.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

_SQLITE_TRIGGERS = [
    f"CREATE TRIGGER audit_log_no_{verb.lower()} BEFORE {verb} ON audit_log "
    "BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END"
    for verb in ("UPDATE", "DELETE")
]
_PG_TRIGGERS = [
    "CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS "
    "$$ BEGIN RAISE EXCEPTION 'audit_log is append-only'; END $$",
    "CREATE TRIGGER audit_log_no_update BEFORE UPDATE OR DELETE ON audit_log "
    "FOR EACH ROW EXECUTE FUNCTION audit_log_append_only()",
    "CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log "
    "FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only()",
]


def upgrade() -> None:
    op.add_column("audit_log", sa.Column("mac", sa.String(64), nullable=True))
    op.add_column("audit_log", sa.Column("key_id", sa.String(16), nullable=True))
    op.add_column("audit_log", sa.Column("caller", sa.String(64), nullable=True))
    op.create_index("ix_audit_log_ts", "audit_log", ["ts"])
    op.create_index("ix_audit_log_caller", "audit_log", ["caller"])
    op.create_index("ix_audit_log_role", "audit_log", ["role"])
    dialect = op.get_bind().dialect.name
    for statement in _PG_TRIGGERS if dialect == "postgresql" else _SQLITE_TRIGGERS if dialect == "sqlite" else []:
        op.execute(statement)


def downgrade() -> None:
    raise NotImplementedError(
        "0002 is irreversible: dropping the MACs would leave a keyed chain nobody can verify. "
        "Restore a backup taken before the upgrade instead."
    )
