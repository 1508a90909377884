"""Alembic environment: runs on the connection that :func:`governance.migrations.upgrade` passes in.

There is no ``alembic.ini`` and no URL here on purpose: opening an audit log migrates it, so
the schema can never lag behind the code that writes it.
"""

from __future__ import annotations

from alembic import context

from governance.migrations import VERSION_TABLE

connection = context.config.attributes.get("connection")
if connection is None:
    raise SystemExit("audit log migrations run in code: open the log (governance.audit.AuditLog / open_audit)")

context.configure(connection=connection, target_metadata=None, version_table=VERSION_TABLE)
with context.begin_transaction():
    context.run_migrations()
