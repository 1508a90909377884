"""Schema migrations of the audit log (Alembic), run in code when a log is opened.

No ``alembic.ini`` is needed: :func:`upgrade` builds the Alembic ``Config`` here and hands
Alembic the caller's connection (Alembic's "sharing a connection" recipe), so the same code
migrates SQLite files and PostgreSQL databases. The version is kept in its own table
(``audit_log_version``), so the audit log can share a PostgreSQL database with other
Alembic-managed applications.

A database created by the foundation code (``audit_log`` exists, no version table) is stamped
``0001`` and then upgraded.
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection, Engine

VERSION_TABLE = "audit_log_version"
HEAD = "0002"
_HERE = Path(__file__).resolve().parent
_PG_LOCK_ID = 0x766C6175  # "vlau": serialises migrations across hosts on PostgreSQL


def current_revision(conn: Connection) -> str | None:
    """The schema revision, or None for an empty database or a foundation-era one."""
    if not inspect(conn).has_table(VERSION_TABLE):
        return None
    return conn.execute(text(f"SELECT version_num FROM {VERSION_TABLE}")).scalar()


def needs_upgrade(engine: Engine) -> bool:
    with engine.connect() as conn:
        return current_revision(conn) != HEAD


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the schema to ``revision`` in one transaction (stamping foundation-era databases first).

    Callers serialise concurrent openers on one host with the audit file lock; on PostgreSQL a
    transaction-level advisory lock also serialises hosts.
    """
    from alembic import command
    from alembic.config import Config

    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": _PG_LOCK_ID})
        config = Config()
        config.set_main_option("script_location", str(_HERE))
        config.attributes["connection"] = conn
        inspector = inspect(conn)
        if inspector.has_table("audit_log") and not inspector.has_table(VERSION_TABLE):
            command.stamp(config, "0001")
        command.upgrade(config, revision)
