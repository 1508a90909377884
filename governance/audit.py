"""Append-only, keyed (HMAC) hash chain of who touched which calls, in which role, and why.

Every entry is MACed with a key that lives outside the database (see
:mod:`governance.audit_chain` for the format), and the chain's last id and MAC are anchored in a
*head file* outside the database too (and in a *head mirror* when ``audit.head_mirror`` names
one). Whoever can write the database but lacks the key cannot edit, delete, insert or reorder
entries, nor cut the tail off, without :meth:`AuditLog.verify` naming the first bad entry.
Caller ids are stored only as keyed pseudonyms, so an erasure request never forces an edit of
the log.

Use :func:`open_audit` in product code (key from ``VOICELOOP_AUDIT_KEY`` or the keys folder,
head file from the settings). ``AuditLog(url)`` alone is a library convenience for SQLite files:
key and head then sit beside the database (``<db>.key``, ``<db>.head``), which is fine for tests
and worthless against someone who can read that folder.
"""

from __future__ import annotations

import getpass
import hashlib
import hmac
import json
import os
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    JSON,
    DateTime,
    Integer,
    String,
    Text,
    cast,
    create_engine,
    event,
    insert,
    or_,
    select,
    text,
)
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from governance import migrations
from governance.audit_chain import (
    GENESIS,
    HEAD_FILE,
    HEAD_MIRROR,
    KEY_FILE,
    LINK_COLUMNS,
    PAYLOAD_COLUMNS,
    REANCHOR_ACTION,
    ROTATION_ACTION,
    SEAL_ACTION,
    AuditKeyError,
    ChainKey,
    ChainTip,
    FileLock,
    Head,
    HeadAccessError,
    HeadCopy,
    HeadError,
    WalkResult,
    audit_key,
    audit_keyring,
    canonical_json,
    entry_mac,
    entry_payload,
    key_from_environment,
    load_key_file,
    local_path,
    plain_hash,
    rotation_target,
    ts_text,
    walk_chain,
)
from governance.crypto import RAW_KEYS_ENV, RAW_KEYS_FILE

if TYPE_CHECKING:
    from core.settings import Settings

__all__ = [
    "GENESIS", "Actor", "AuditEntry", "AuditIntegrityError", "AuditKeyError", "AuditLog", "EntryDraft",
    "VerifyResult", "audit_key", "audit_keyring", "chain_hash", "open_audit", "shared_folder_warning",
]

PSEUDONYM_PREFIX = "cp_"
_SUPPORTED = ("sqlite", "postgresql")


class Base(DeclarativeBase):
    pass


class AuditEntry(Base):
    """One row of the log (read side; rows are written by :class:`AuditLog` only)."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    ts: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    actor: Mapped[str] = mapped_column(String(128))
    role: Mapped[str] = mapped_column(String(64), index=True)
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
    mac: Mapped[str | None] = mapped_column(String(64), nullable=True)  # None: a foundation-era entry
    key_id: Mapped[str | None] = mapped_column(String(16), nullable=True)
    caller: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)  # keyed pseudonym

    @property
    def when(self) -> datetime:
        """The timestamp, always timezone-aware UTC (SQLite hands back naive UTC)."""
        return self.ts.replace(tzinfo=UTC) if self.ts.tzinfo is None else self.ts.astimezone(UTC)

    def content(self) -> dict[str, Any]:
        """The fields the foundation's unkeyed hash covers (kept for :func:`chain_hash` callers)."""
        return {
            "id": self.id,
            "ts": self.when.isoformat(timespec="microseconds"),
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

    def as_dict(self) -> dict[str, Any]:
        """Everything but the chain columns, JSON-ready (CLI and reports)."""
        return {**self.content(), "caller": self.caller, "key_id": self.key_id}


def chain_hash(prev_hash: str, content: dict[str, Any]) -> str:
    """The foundation's unkeyed chain hash (foundation-era rows are still verified with it)."""
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


@dataclass(frozen=True)
class EntryDraft:
    """An entry before it is chained (``caller`` in clear: only its pseudonym is stored)."""

    actor: Actor
    action: str
    zone: str | None = None
    call_ids: Sequence[str] = ()
    outcome: str = "ok"
    detail: dict[str, Any] | None = None
    note: str | None = None
    caller: str | None = None
    ts: datetime | None = None  # None: now (bulk imports pass the original time)


@dataclass
class VerifyResult:
    ok: bool
    checked: int
    first_bad_id: int | None = None  # None with ok=False: a head copy itself is bad
    reason: str = ""  # names the copy (head file, head mirror) that disagrees with the table
    head: str = ""  # how the head file compares, when the chain is intact
    mirror: str = ""  # how the head mirror compares ("" when audit.head_mirror is not set)

    def summary(self) -> str:
        if self.ok:
            return f"{self.checked} entries, chain intact, head {self.head}" + (
                f", mirror {self.mirror}" if self.mirror else "")
        return f"verification FAILED after {self.checked} good entries: {self.reason}"


class AuditIntegrityError(RuntimeError):
    """Writing now would bury evidence of tampering (or chain onto a broken log), or a copy of the head
    could not be kept: refused or reported, never passed over."""


def _system_actor(purpose: str) -> Actor:
    return Actor(role="system", purpose=purpose)


def _public(draft: EntryDraft) -> EntryDraft:
    """Key rotations are written by the log itself: a hand-made one would hijack the chain's key."""
    if draft.action == ROTATION_ACTION:
        raise ValueError(f"{ROTATION_ACTION!r} entries are written by the audit log itself (see rotate_key_files)")
    return draft


def _sqlite_setup(engine: Engine) -> None:
    """WAL, a busy timeout, and BEGIN IMMEDIATE for writers only (readers never block them)."""

    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        dbapi_connection.execute("PRAGMA busy_timeout = 30000")
        dbapi_connection.execute("PRAGMA journal_mode = WAL")

    @event.listens_for(engine, "begin")
    def _begin(conn: Connection) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.get_execution_options().get("audit_write") else "BEGIN")


def _sqlite_file(url: str) -> Path | None:
    parsed = make_url(url)
    database = parsed.database
    if parsed.get_backend_name() != "sqlite" or not database or database == ":memory:":
        return None
    return Path(database)


def _utc(ts: datetime) -> datetime:
    return ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts.astimezone(UTC)


def _mentions(value: Any, needle: str) -> bool:
    """Whether a JSON value names ``needle`` as a string anywhere (dict keys aside)."""
    if isinstance(value, str):
        return value == needle
    if isinstance(value, dict):
        return any(_mentions(v, needle) for v in value.values())
    if isinstance(value, list):
        return any(_mentions(v, needle) for v in value)
    return False


class AuditLog:
    """The single writer of audit entries. Rows are only ever inserted.

    ``key``: the current audit secret (bytes); ``retired_keys``: earlier ones, still needed to
    verify the segments they MACed. ``head_file``: where the chain head is anchored; its
    ``.lock`` sibling serialises writers across processes on this host. ``head_mirror``: a
    second copy of the head (a path or fsspec URL), written after the head file on every append.
    """

    def __init__(self, url: str, *, key: bytes | None = None, head_file: Path | None = None,
                 retired_keys: Iterable[bytes] = (), head_mirror: str | None = None) -> None:
        self.url = url
        db_file = _sqlite_file(url)
        if (key is None or head_file is None) and db_file is None:
            raise ValueError("an audit log outside a SQLite file needs an explicit key and head_file "
                             "(use governance.audit.open_audit(settings))")
        if db_file is not None:
            db_file.parent.mkdir(parents=True, exist_ok=True)
        if key is None:
            key = load_key_file(Path(f"{db_file}.key"))
        self.head_file = Path(head_file) if head_file is not None else Path(f"{db_file}.head")
        try:
            mirror = [HeadCopy.at(HEAD_MIRROR, head_mirror)] if head_mirror else []
        except HeadAccessError as error:
            raise AuditIntegrityError(str(error)) from None
        self.head_copies = [HeadCopy(HEAD_FILE, str(self.head_file), self.head_file), *mirror]
        self._key = ChainKey.of(key)
        self._keys = {self._key.id: self._key}
        for old in retired_keys:
            self._keys.setdefault(ChainKey.of(old).id, ChainKey.of(old))
        self._lock = FileLock(self.head_file.with_name(self.head_file.name + ".lock"))
        self.engine = create_engine(url, json_serializer=canonical_json)
        self.dialect = self.engine.dialect.name
        if self.dialect not in _SUPPORTED:
            raise ValueError(f"audit logs live in SQLite or PostgreSQL, not {self.dialect}")
        if self.dialect == "sqlite":
            _sqlite_setup(self.engine)
        self._writer = self.engine.execution_options(audit_write=True)
        if migrations.needs_upgrade(self.engine):
            with self._lock.exclusive():
                migrations.upgrade(self._writer)
        self._seal_foundation_entries()

    # -- identity --------------------------------------------------------------------------------
    @property
    def key_id(self) -> str:
        """The public id of the current audit key (recorded in every entry it MACs)."""
        return self._key.id

    def pseudonym(self, value: str) -> str:
        """A keyed, stable stand-in for a caller id: linkable by whoever holds the key, nobody else."""
        return self._pseudonym(self._key, value)

    @staticmethod
    def _pseudonym(key: ChainKey, value: str) -> str:
        return PSEUDONYM_PREFIX + hmac.digest(key.pseudonym, value.encode(), "sha256").hex()[:32]

    def sign(self, payload: bytes | dict[str, Any]) -> str:
        """HMAC of ``payload`` (a dict is canonicalised first) for documents that point into the log,
        e.g. erasure certificates. A key derived for signatures only: never valid as an entry MAC."""
        data = canonical_json(payload).encode() if isinstance(payload, dict) else payload
        return hmac.digest(self._key.sign, data, "sha256").hex()

    def verify_signature(self, payload: bytes | dict[str, Any], signature: str) -> bool:
        """Whether ``signature`` came from :meth:`sign` with the current or a retired key."""
        data = canonical_json(payload).encode() if isinstance(payload, dict) else payload
        return any(hmac.compare_digest(hmac.digest(k.sign, data, "sha256").hex().encode(), signature.encode())
                   for k in self._keys.values())

    # -- writing ---------------------------------------------------------------------------------
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
        caller: str | None = None,
    ) -> AuditEntry:
        """Chain one entry; ``caller`` (a caller id in clear) is stored only as :meth:`pseudonym`."""
        draft = EntryDraft(actor, action, zone, tuple(call_ids), outcome, detail, note, caller)
        return AuditEntry(**self._write([_public(draft)])[-1])

    def append_many(self, drafts: Iterable[EntryDraft], *, batch_size: int = 5000) -> int:
        """Chain many entries in one transaction (imports, benchmarks); returns how many."""
        return len(self._write(map(_public, drafts), batch_size=batch_size, keep=False))

    def record_key_rotation(self) -> bool:
        """Write the pending ``audit.key-rotated`` entry now (else the next append does); True if written."""
        return bool(self._write([]))

    def _write(self, drafts: Iterable[EntryDraft], *, batch_size: int = 5000, keep: bool = True,
               when: Callable[[ChainTip], bool] | None = None) -> list[dict[str, Any]]:
        """Under the file lock (and the table lock on PostgreSQL): check the head, chain, insert,
        commit, then move the head. Returns the rows written (empty dicts when ``keep`` is False,
        so a million-row import does not hold a million rows)."""
        written: list[dict[str, Any]] = []
        with self._lock.exclusive():
            with self._writer.begin() as conn:
                if self.dialect == "postgresql":
                    conn.execute(text("LOCK TABLE audit_log IN EXCLUSIVE MODE"))
                tip = self._tip(conn)
                if when is not None and not when(tip):
                    return []
                rotation = self._rotation_draft(tip.key_id) if tip.key_id not in (None, self._key.id) else None
                self._check_head_before_write(conn, tip)
                pending = [self._chain_row(rotation, tip)] if rotation else []
                for draft in drafts:
                    pending.append(self._chain_row(draft, tip))
                    if len(pending) >= batch_size:
                        written.extend(self._insert(conn, pending, keep))
                        pending = []
                if pending:
                    written.extend(self._insert(conn, pending, keep))
            if written and tip.last_mac is not None:
                self._anchor(Head.seal(self._key, tip.last_id, tip.last_mac, tip.last_id))
        return written

    def _anchor(self, head: Head) -> None:
        """Write the head to every copy, head file first; a copy that cannot be written is reported
        (the entries are committed: the next append's check sees the copy lag and names it)."""
        for copy in self.head_copies:
            try:
                copy.write(head)
            except HeadAccessError as error:
                raise AuditIntegrityError(
                    f"entries up to {head.last_id} are written, but {error}: fix access to it, then run "
                    "`voiceloop audit verify` (the next append writes it again)"
                ) from None

    @staticmethod
    def _insert(conn: Connection, rows: list[dict[str, Any]], keep: bool) -> list[dict[str, Any]]:
        conn.execute(insert(AuditEntry), rows)
        return rows if keep else [{}] * len(rows)

    def _rotation_draft(self, old_id: str | None) -> EntryDraft:
        if old_id is None or old_id not in self._keys:
            raise AuditKeyError(
                f"this log is MACed with key {old_id}, but the configured audit key is {self._key.id} and "
                f"{old_id} is not among the retired keys: restore the right key (VOICELOOP_AUDIT_KEY or "
                "keys/audit.key), or keep the old one as a retired key to record a rotation"
            )
        return EntryDraft(_system_actor("audit-key-rotation"), ROTATION_ACTION,
                          detail={"old_key_id": old_id, "new_key_id": self._key.id})

    def _chain_row(self, draft: EntryDraft, tip: ChainTip) -> dict[str, Any]:
        """MAC one draft onto ``tip`` (advancing it). A rotation entry is MACed with the old key."""
        old_id = tip.key_id
        rotating = draft.action == ROTATION_ACTION and old_id is not None and old_id != self._key.id
        key = self._keys[old_id] if rotating and old_id is not None else self._key
        ts = _utc(draft.ts) if draft.ts else datetime.now(UTC)
        call_ids = sorted(set(draft.call_ids))
        detail = draft.detail or {}
        caller = self.pseudonym(draft.caller) if draft.caller else None
        actor = draft.actor
        row_id = tip.last_id + 1
        payload = entry_payload((row_id, ts_text(ts), actor.user, actor.role, actor.purpose, draft.action, draft.zone,
                                 canonical_json(call_ids), actor.flow_run_id, draft.outcome, canonical_json(detail),
                                 draft.note, caller, key.id))
        mac = entry_mac(key, tip.prev_link, payload)
        entry_hash = plain_hash(tip.prev_hash, payload)
        row = {"id": row_id, "ts": ts, "actor": actor.user, "role": actor.role, "purpose": actor.purpose,
               "action": draft.action, "zone": draft.zone, "call_ids": call_ids, "flow_run_id": actor.flow_run_id,
               "outcome": draft.outcome, "detail": detail, "note": draft.note, "prev_hash": tip.prev_hash,
               "entry_hash": entry_hash, "mac": mac, "key_id": key.id, "caller": caller}
        tip.last_id, tip.prev_hash, tip.prev_link, tip.last_mac = row_id, entry_hash, mac, mac
        tip.key_id = self._key.id if rotating else key.id
        return row

    # -- database access -------------------------------------------------------------------------
    def _text(self, column: str) -> str:
        """SQL giving a column exactly as the MAC covers it (PostgreSQL renders ts/JSON differently)."""
        if self.dialect == "postgresql":
            if column == "ts":
                return "to_char(ts AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US')"
            if column in ("call_ids", "detail"):
                return f"CAST({column} AS TEXT)"
        return column

    def _tip(self, conn: Connection) -> ChainTip:
        detail = self._text("detail")
        row = conn.execute(text(
            f"SELECT id, entry_hash, mac, key_id, action, {detail} FROM audit_log ORDER BY id DESC LIMIT 1"
        )).first()
        if row is None:
            return ChainTip()
        kid = rotation_target(row[5]) if row[4] == ROTATION_ACTION and row[2] else row[3]
        return ChainTip(last_id=row[0], prev_hash=row[1], prev_link=row[2] or row[1], key_id=kid, last_mac=row[2])

    def _check_head_before_write(self, conn: Connection, tip: ChainTip) -> None:
        """Refuse to move a head copy that disagrees with the table: that would erase the evidence."""
        for copy in self.head_copies:
            try:
                head = copy.read()
            except (HeadError, HeadAccessError) as error:
                raise AuditIntegrityError(f"refusing to write: {error}; run `voiceloop audit verify`") from None
            if head is None:
                if tip.last_mac is not None:
                    raise AuditIntegrityError(f"refusing to write: {self._missing(copy, tip.last_id)}")
                continue
            problem = self._head_problem(copy, head, tip.last_id,
                                         conn.execute(text("SELECT mac FROM audit_log WHERE id = :id"),
                                                      {"id": head.last_id}).scalar())
            if problem:
                raise AuditIntegrityError(f"refusing to write: {problem[1]}; run `voiceloop audit verify`")

    @staticmethod
    def _missing(copy: HeadCopy, last_id: int) -> str:
        return (f"{copy.named} is missing but the log has keyed entries up to {last_id}. Restore it, or re-anchor "
                "after a clean verify (`voiceloop audit reanchor`; that is also how a newly set audit.head_mirror "
                "is first written)")

    def _head_problem(self, copy: HeadCopy, head: Head, last_id: int,
                      mac_at_head: str | None) -> tuple[int | None, str] | None:
        if not head.authentic(self._keys):
            return None, (f"{copy.named} does not carry a valid MAC: it was forged or damaged "
                          "(or written with a key this verifier does not hold)")
        if head.last_id > last_id:
            return last_id + 1, (f"log ends at entry {last_id} but {copy.label} says {head.last_id}: the tail was "
                                 f"cut ({head.last_id - last_id} entries missing)")
        if mac_at_head != head.last_mac:
            return head.last_id, (f"entry {head.last_id}: its MAC is not the one {copy.label} records: the history "
                                  "up to it was rewritten or the tail replaced, or the head belongs to another log")
        return None

    def _walk(self, last_id: int, watch: Collection[int] = ()) -> WalkResult:
        """Stream rows 1..last_id with a plain SELECT (no ORM objects) through :func:`walk_chain`."""
        columns = ", ".join(self._text(c) for c in (*PAYLOAD_COLUMNS, *LINK_COLUMNS))
        mark = "?" if self.dialect == "sqlite" else "%s"
        sql = f"SELECT {columns} FROM audit_log WHERE id <= {mark} ORDER BY id"
        with self.engine.connect() as conn:
            dbapi: Any = conn.connection.dbapi_connection
            if self.dialect == "postgresql":
                cursor = dbapi.cursor(name="audit_verify")  # server-side: a million rows never sit in memory
                cursor.itersize = 20000
            else:
                cursor = dbapi.cursor()
            try:
                cursor.execute(sql, (last_id,))
                return walk_chain(cursor, self._keys, watch)
            finally:
                cursor.close()

    def _seal_foundation_entries(self) -> None:
        """Anchor foundation-era (unkeyed) entries under the key: one ``audit.sealed`` entry whose MAC
        chains onto their last hash, written once, after checking them (a broken log is never sealed)."""
        with self.engine.connect() as conn:
            last = conn.execute(text("SELECT id, mac, entry_hash FROM audit_log ORDER BY id DESC LIMIT 1")).first()
        if last is None or last[1] is not None:
            return
        walk = self._walk(last[0])
        if walk.bad_id is not None:
            raise AuditIntegrityError(f"the foundation-era audit log fails verification, so it is not sealed: "
                                      f"{walk.reason}")
        draft = EntryDraft(_system_actor("audit-migration"), SEAL_ACTION, detail={
            "legacy_entries": last[0], "legacy_last_hash": last[2],
            "scheme": "from here on every entry carries an HMAC-SHA256 chained onto the entry before",
        })
        self._write([draft], when=lambda tip: tip.last_mac is None and tip.last_id == last[0])

    # -- reading ---------------------------------------------------------------------------------
    def entries(
        self,
        *,
        action: str | None = None,
        since_id: int = 0,
        since: datetime | None = None,
        until: datetime | None = None,
        role: str | None = None,
        call_id: str | None = None,
        caller: str | None = None,
        outcome: str | None = None,
        limit: int | None = None,
        newest_first: bool = False,
    ) -> Iterator[AuditEntry]:
        """Entries in id order (or newest first), filtered.

        ``action`` is exact, or a prefix with ``.*`` (``erasure.*``). ``call_id`` matches entries
        whose call ids include it and entries that name it in their detail or note. ``caller`` is a
        caller id in clear, matched through its pseudonym under every key this log holds.
        """
        query = select(AuditEntry).where(AuditEntry.id > since_id)
        if action:
            query = query.where(AuditEntry.action.startswith(action[:-1], autoescape=True)
                                if action.endswith(".*") else AuditEntry.action == action)
        if since is not None:
            query = query.where(AuditEntry.ts >= _utc(since))
        if until is not None:
            query = query.where(AuditEntry.ts < _utc(until))
        if role:
            query = query.where(AuditEntry.role == role)
        if outcome:
            query = query.where(AuditEntry.outcome == outcome)
        if caller:
            query = query.where(AuditEntry.caller.in_({self._pseudonym(k, caller) for k in self._keys.values()}))
        if call_id:
            quoted = json.dumps(call_id)
            query = query.where(or_(cast(AuditEntry.call_ids, Text).contains(quoted, autoescape=True),
                                    cast(AuditEntry.detail, Text).contains(quoted, autoescape=True),
                                    AuditEntry.note.contains(call_id, autoescape=True)))
        query = query.order_by(AuditEntry.id.desc() if newest_first else AuditEntry.id)
        if limit is not None and not call_id:
            query = query.limit(limit)
        found = 0
        with Session(self.engine) as session:
            for entry in session.scalars(query.execution_options(yield_per=1000)):
                if call_id and not (call_id in entry.call_ids or _mentions(entry.detail, call_id)
                                    or (entry.note is not None and call_id in entry.note)):
                    continue
                yield entry
                found += 1
                if limit is not None and found >= limit:
                    return

    def count(self) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(text("SELECT COUNT(*) FROM audit_log")).scalar_one())

    # -- verifying -------------------------------------------------------------------------------
    def verify(self) -> VerifyResult:
        """Walk the whole chain, then compare its end with each head copy; name the first bad entry and
        the copy (head file, head mirror) that disagrees.

        The copies and the table's last id are read together under the shared lock, so an append
        in flight is never mistaken for tampering; the rows are then streamed without the lock.
        """
        with self._lock.shared():
            copies = [(copy, *self._read_copy(copy)) for copy in self.head_copies]
            with self.engine.connect() as conn:
                last_id = int(conn.execute(text("SELECT COALESCE(MAX(id), 0) FROM audit_log")).scalar_one())
        walk = self._walk(last_id, {head.last_id for _, head, _ in copies if head is not None})
        if walk.bad_id is not None:
            return VerifyResult(False, walk.checked, walk.bad_id, walk.reason)
        judged = [self._judge_copy(walk, *copy) for copy in copies]
        bad = [(first_bad_id, reason) for ok, first_bad_id, reason in judged if not ok]
        if bad:
            return VerifyResult(False, walk.checked, bad[0][0], "; ".join(reason for _, reason in bad))
        return VerifyResult(True, walk.checked, head=judged[0][2], mirror=judged[1][2] if len(judged) > 1 else "")

    @staticmethod
    def _read_copy(copy: HeadCopy) -> tuple[Head | None, str]:
        """The head a copy holds, or the error that stops it being read."""
        try:
            return copy.read(), ""
        except HeadError as error:
            return None, f"{error}: it was damaged or forged"
        except HeadAccessError as error:
            return None, str(error)

    def _judge_copy(self, walk: WalkResult, copy: HeadCopy, head: Head | None,
                    error: str) -> tuple[bool, int | None, str]:
        """(agrees, first bad id, how it compares or why it disagrees) for one head copy."""
        tip = walk.tip
        if error:
            return False, None, error
        if head is None:
            if tip.last_mac is None:
                return True, None, "not needed yet (no keyed entries)"
            seed = (" (a newly set one is first written by `voiceloop audit reanchor`)"
                    if copy.kind == HEAD_MIRROR else "")
            return False, None, (f"{copy.named} is missing but the log has keyed entries up to {tip.last_id}: it was "
                                 f"deleted or moved, so a cut tail cannot be ruled out{seed}")
        problem = self._head_problem(copy, head, tip.last_id, walk.watched.get(head.last_id))
        if problem:
            return False, *problem
        lag = tip.last_id - head.last_id
        if lag == 0:
            if head.key_id != tip.key_id:
                return False, None, (f"{copy.label} is signed with key {head.key_id} but the chain ends under key "
                                     f"{tip.key_id}: forged with a retired key?")
            return True, None, "matches"
        if lag == 1:
            return True, None, (f"lags by one entry ({tip.last_id}): an append was interrupted before it moved "
                                f"{copy.label}; the next append moves it")
        return False, head.last_id + 1, (f"entries {head.last_id + 1}-{tip.last_id} are not covered by {copy.label}, "
                                         f"which says the log ends at entry {head.last_id}: it was rolled back "
                                         "(replaced by an older copy) or could not be written since")

    def reanchor(self, actor: Actor | None = None, reason: str = "") -> VerifyResult:
        """Rewrite lost or distrusted head copies from the table, if the chain itself verifies, and record it.

        The one sanctioned way past :class:`AuditIntegrityError` after a head copy was lost, and how a
        newly configured head mirror is first written. It cannot tell a cut tail from an intact one
        (that is what the head was for): the entry it writes says so, for the auditors, and keeps what
        each copy said before.
        """
        with self._lock.exclusive():
            previous: dict[str, str | None] = {}
            for copy in self.head_copies:
                head, error = self._read_copy(copy)
                previous[copy.kind] = head.to_json() if head else (error or None)
            with self.engine.connect() as conn:
                last_id = int(conn.execute(text("SELECT COALESCE(MAX(id), 0) FROM audit_log")).scalar_one())
            walk = self._walk(last_id)
            if walk.bad_id is not None:
                raise AuditIntegrityError(f"refusing to re-anchor a chain that fails verification: {walk.reason}")
            if walk.tip.last_mac is not None and walk.tip.key_id is not None:
                key = self._keys.get(walk.tip.key_id, self._key)
                self._anchor(Head.seal(key, last_id, walk.tip.last_mac, last_id))
        detail: dict[str, Any] = {"anchored_at": last_id, "previous_head": previous[HEAD_FILE]}
        if HEAD_MIRROR in previous:
            detail["previous_mirror"] = previous[HEAD_MIRROR]
        self.append(actor or _system_actor("audit-reanchor"), REANCHOR_ACTION, note=reason or None, detail=detail)
        return self.verify()

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> AuditLog:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


def open_audit(settings: Settings) -> AuditLog:
    """The product's audit log: key (and retired keys) from the environment or the keys folder,
    the head file and its mirror where the settings put them (off the database host in production)."""
    keys = audit_keyring(settings.keys_dir)
    return AuditLog(settings.audit_url, key=keys[0], retired_keys=keys[1:], head_file=settings.audit_head_file,
                    head_mirror=settings.audit.head_mirror or None)


def _inside(location: str, folder: Path) -> bool:
    path = local_path(location)
    return path is not None and path.resolve().is_relative_to(folder)


def shared_folder_warning(settings: Settings) -> str | None:
    """Why the embedded default is a demo layout, or None once it is not.

    While the audit key and every copy of the chain head sit in the project folder, whoever can copy
    and write that folder can rewrite the history, re-MAC it and re-sign the head: nothing left
    disagrees. A key from ``VOICELOOP_AUDIT_KEY`` or a keys folder elsewhere, or a head copy
    elsewhere (``audit.head_mirror``), ends that. Shown by ``voiceloop status``, ``audit verify`` and
    the retrain summary, not by every command.
    """
    root = settings.root
    key_file = settings.keys_dir / KEY_FILE
    if key_from_environment() or not _inside(str(key_file), root):
        return None
    copies = [str(settings.audit_head_file), *([settings.audit.head_mirror] if settings.audit.head_mirror else [])]
    if not all(_inside(copy, root) for copy in copies):
        return None
    raw_keys = settings.keys_dir / RAW_KEYS_FILE
    raw = "" if os.environ.get(RAW_KEYS_ENV, "").strip() else f", the raw-zone keys ({raw_keys})"
    return (f"the audit key ({key_file}){raw} and the audit head ({', '.join(copies)}) all sit in the project folder "
            f"{root}: whoever can copy and write it can rewrite the audit history undetected. Fine for a demo; in "
            "production take the keys out (VOICELOOP_AUDIT_KEY, VOICELOOP_RAW_KEYS or keys.dir) and set "
            "audit.head_mirror outside it (docs/audit.md, \"Production setup\")")
