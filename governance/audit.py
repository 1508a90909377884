"""Append-only, hash-chained audit trail (SQLAlchemy; SQLite by default).

Each entry stores the hash of the previous entry and a hash over its own canonical content,
so editing, deleting or reordering rows breaks the chain and :meth:`AuditLog.verify` names the
first bad entry. The chain hash is computed by :func:`chain_hash`, the one place a keyed
(HMAC) chain and an external head anchor plug in later.
"""

from __future__ import annotations

import getpass
import hashlib
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    DateTime,
    Integer,
    String,
    Text,
    create_engine,
    event,
    select,
    text,
)
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

GENESIS = "0" * 64


class Base(DeclarativeBase):
    pass


class AuditEntry(Base):
    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    ts: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    actor: Mapped[str] = mapped_column(String(128))
    role: Mapped[str] = mapped_column(String(64))
    purpose: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(64), index=True)
    zone: Mapped[str | None] = mapped_column(String(32), nullable=True)
    call_ids: Mapped[list[str]] = mapped_column(JSON)
    flow_run_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    outcome: Mapped[str] = mapped_column(String(16), default="ok")
    detail: Mapped[dict[str, Any]] = mapped_column(JSON)
    prev_hash: Mapped[str] = mapped_column(String(64))
    entry_hash: Mapped[str] = mapped_column(String(64), unique=True)
    note: Mapped[str | None] = mapped_column(Text, nullable=True)

    def content(self) -> dict[str, Any]:
        """The fields the hash covers, in a stable form."""
        ts = self.ts if self.ts.tzinfo else self.ts.replace(tzinfo=UTC)
        return {
            "id": self.id,
            "ts": ts.astimezone(UTC).isoformat(timespec="microseconds"),
            "actor": self.actor,
            "role": self.role,
            "purpose": self.purpose,
            "action": self.action,
            "zone": self.zone,
            "call_ids": list(self.call_ids),
            "flow_run_id": self.flow_run_id,
            "outcome": self.outcome,
            "detail": self.detail,
            "note": self.note,
        }


def chain_hash(prev_hash: str, content: dict[str, Any]) -> str:
    payload = json.dumps(content, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256((prev_hash + payload).encode()).hexdigest()


@dataclass(frozen=True)
class Actor:
    """Who is acting, in which role, for which purpose; the OS user is always recorded."""

    role: str
    purpose: str
    user: str = field(default_factory=getpass.getuser)
    flow_run_id: str | None = None

    def for_purpose(self, purpose: str) -> Actor:
        return Actor(role=self.role, purpose=purpose, user=self.user, flow_run_id=self.flow_run_id)


@dataclass
class VerifyResult:
    ok: bool
    checked: int
    first_bad_id: int | None = None
    reason: str = ""


def _sqlite_immediate(engine: Engine) -> None:
    """Make SQLite writers take the write lock at BEGIN, so concurrent appenders serialise."""

    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        dbapi_connection.execute("PRAGMA busy_timeout = 30000")
        dbapi_connection.execute("PRAGMA journal_mode = WAL")

    @event.listens_for(engine, "begin")
    def _begin(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")


class AuditLog:
    """The single writer of audit entries. Rows are only ever inserted."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = create_engine(url, future=True)
        if self.engine.dialect.name == "sqlite":
            _sqlite_immediate(self.engine)
        Base.metadata.create_all(self.engine)

    def append(
        self,
        actor: Actor,
        action: str,
        *,
        zone: str | None = None,
        call_ids: Iterable[str] = (),
        outcome: str = "ok",
        detail: dict[str, Any] | None = None,
        note: str | None = None,
    ) -> AuditEntry:
        with Session(self.engine) as session, session.begin():
            if self.engine.dialect.name == "postgresql":
                session.execute(text("LOCK TABLE audit_log IN EXCLUSIVE MODE"))
            last = session.execute(
                select(AuditEntry.id, AuditEntry.entry_hash).order_by(AuditEntry.id.desc()).limit(1)
            ).first()
            prev_id, prev_hash = (last[0], last[1]) if last else (0, GENESIS)
            entry = AuditEntry(
                id=prev_id + 1,
                ts=datetime.now(UTC),
                actor=actor.user,
                role=actor.role,
                purpose=actor.purpose,
                action=action,
                zone=zone,
                call_ids=sorted(set(call_ids)),
                flow_run_id=actor.flow_run_id,
                outcome=outcome,
                detail=detail or {},
                note=note,
                prev_hash=prev_hash,
                entry_hash="",
            )
            entry.entry_hash = chain_hash(prev_hash, entry.content())
            session.add(entry)
        return entry

    def entries(self, *, action: str | None = None, since_id: int = 0) -> Iterator[AuditEntry]:
        with Session(self.engine) as session:
            query = select(AuditEntry).where(AuditEntry.id > since_id).order_by(AuditEntry.id)
            if action:
                query = query.where(AuditEntry.action == action)
            for (entry,) in session.execute(query):
                yield entry

    def count(self) -> int:
        with Session(self.engine) as session:
            return int(session.execute(text("SELECT COUNT(*) FROM audit_log")).scalar_one())

    def verify(self) -> VerifyResult:
        """Walk the chain from the start; report the first entry whose link or hash is wrong."""
        prev_hash, expected_id, checked = GENESIS, 1, 0
        for entry in self.entries():
            if entry.id != expected_id:
                return VerifyResult(False, checked, entry.id, f"entry {expected_id} is missing")
            if entry.prev_hash != prev_hash:
                return VerifyResult(False, checked, entry.id, "link to the previous entry is broken")
            if chain_hash(prev_hash, entry.content()) != entry.entry_hash:
                return VerifyResult(False, checked, entry.id, "content does not match its hash")
            prev_hash, expected_id, checked = entry.entry_hash, expected_id + 1, checked + 1
        return VerifyResult(True, checked)
