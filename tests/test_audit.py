"""The audit trail: keyed chain, head anchor, tamper detection, keys, migrations, concurrent writers.

Tampering is done the way an attacker with database access would do it: raw SQL (after dropping
the append-only triggers), optionally recomputing the plain SHA-256 columns or the MACs with a
key of their own. Most tests run on SQLite and on a real PostgreSQL server (tests/pg_server.py).
"""

from __future__ import annotations

import json
import multiprocessing
import os
import stat
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy import text

from core.settings import load_settings
from governance import migrations
from governance.audit import Actor, AuditIntegrityError, AuditKeyError, AuditLog, EntryDraft, chain_hash, open_audit
from governance.audit_chain import (
    GENESIS,
    LINK_COLUMNS,
    PAYLOAD_COLUMNS,
    ChainKey,
    Head,
    audit_key,
    audit_keyring,
    entry_mac,
    entry_payload,
    plain_hash,
    read_head,
    rotate_key_files,
    write_head,
)

ACTOR = Actor(role="pipeline", purpose="ingest", user="tester", flow_run_id="run-1")
KEY = bytes.fromhex("11" * 32)
WRONG_KEY = bytes.fromhex("22" * 32)


# -- helpers --------------------------------------------------------------------------------------
@dataclass
class Backend:
    url: str
    head: Path
    name: str

    def open(self, key: bytes = KEY, **kwargs: Any) -> AuditLog:
        return AuditLog(self.url, key=key, head_file=self.head, **kwargs)


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    url = f"sqlite:///{tmp_path / 'audit.db'}" if request.param == "sqlite" else request.getfixturevalue("fresh_pg_url")
    return Backend(url, tmp_path / "anchor" / "audit.head", request.param)


@pytest.fixture()
def sqlite_backend(tmp_path: Path) -> Backend:
    return Backend(f"sqlite:///{tmp_path / 'audit.db'}", tmp_path / "anchor" / "audit.head", "sqlite")


def _filled(backend: Backend, n: int = 8) -> AuditLog:
    log = backend.open()
    for i in range(1, n + 1):
        log.append(ACTOR, "raw.write", zone="raw", call_ids=[f"c{i}"], detail={"i": i})
    return log


def tamper(log: AuditLog, *statements: str, params: list[dict[str, Any]] | None = None) -> None:
    """Raw SQL as the table owner: drop the append-only triggers first, as an attacker would."""
    drops = (["DROP TRIGGER IF EXISTS audit_log_no_update ON audit_log",
              "DROP TRIGGER IF EXISTS audit_log_no_truncate ON audit_log"] if log.dialect == "postgresql"
             else ["DROP TRIGGER IF EXISTS audit_log_no_update", "DROP TRIGGER IF EXISTS audit_log_no_delete"])
    with log.engine.begin() as conn:
        for statement in drops:
            conn.execute(text(statement))
        for i, statement in enumerate(statements):
            conn.execute(text(statement), (params or [{}] * len(statements))[i])


def _rows(log: AuditLog) -> list[list[Any]]:
    columns = ", ".join(log._text(c) for c in (*PAYLOAD_COLUMNS, *LINK_COLUMNS))
    with log.engine.connect() as conn:
        return [list(r) for r in conn.execute(text(f"SELECT {columns} FROM audit_log ORDER BY id"))]


def forge_chain(log: AuditLog, start: int, key: bytes | None, *, rekey: bool = False) -> None:
    """Recompute the plain hashes (and, given a key, the MACs) of rows >= start, as an attacker would."""
    forger = ChainKey.of(key) if key else None
    rows = _rows(log)
    by_id = {r[0]: r for r in rows}
    prev_hash = by_id[start - 1][15] if start > 1 else GENESIS
    prev_link = by_id[start - 1][16] if start > 1 else GENESIS
    updates = []
    for row in rows:
        if row[0] < start:
            continue
        if rekey and forger:
            row[13] = forger.id
        payload = entry_payload(row[:14])
        entry_hash = plain_hash(prev_hash, payload)
        mac = entry_mac(forger, prev_link, payload) if forger else row[16]
        updates.append({"id": row[0], "p": prev_hash, "h": entry_hash, "m": mac, "k": row[13]})
        prev_hash, prev_link = entry_hash, mac
    statements = ["UPDATE audit_log SET prev_hash = :p, entry_hash = :h, mac = :m, key_id = :k WHERE id = :id"] * len(
        updates)
    # entry_hash is UNIQUE: move every row to a temporary hash first
    tamper(log, *(f"UPDATE audit_log SET entry_hash = 'tmp{u['id']}' WHERE id = {u['id']}" for u in updates))
    tamper(log, *statements, params=updates)


def swap_ids(log: AuditLog, a: int, b: int) -> None:
    tamper(log, f"UPDATE audit_log SET id = -1 WHERE id = {a}", f"UPDATE audit_log SET id = {a} WHERE id = {b}",
           f"UPDATE audit_log SET id = {b} WHERE id = -1")


def insert_forged_at(log: AuditLog, at: int) -> None:
    """Shift rows at >= ``at`` up by one and put a copy of the previous row (new actor) in the gap."""
    last = log.count()
    tamper(log, *(f"UPDATE audit_log SET id = {i + 1} WHERE id = {i}" for i in range(last, at - 1, -1)))
    tamper(log, "INSERT INTO audit_log (id, ts, actor, role, purpose, action, zone, call_ids, flow_run_id, outcome, "
                "detail, prev_hash, entry_hash, note, mac, key_id, caller) "
                f"SELECT {at}, ts, 'mallory', role, purpose, action, zone, call_ids, flow_run_id, outcome, detail, "
                f"prev_hash, 'forged', note, mac, key_id, caller FROM audit_log WHERE id = {at - 1}")


# -- the basics -----------------------------------------------------------------------------------
def _log(tmp_path: Path, entries: int = 5) -> AuditLog:
    log = AuditLog(f"sqlite:///{tmp_path / 'audit.db'}")
    for i in range(entries):
        log.append(ACTOR, "raw.write", zone="raw", call_ids=[f"c{i}"], detail={"i": i})
    return log


def test_entries_carry_who_what_why_and_verify(tmp_path: Path) -> None:
    log = _log(tmp_path)
    entries = list(log.entries())
    assert [e.call_ids for e in entries] == [[f"c{i}"] for i in range(5)]
    first = entries[0]
    assert (first.actor, first.role, first.purpose, first.flow_run_id) == ("tester", "pipeline", "ingest", "run-1")
    assert entries[1].prev_hash == first.entry_hash
    assert all(e.mac and e.key_id == log.key_id for e in entries)
    result = log.verify()
    assert result.ok and result.checked == 5 and result.head == "matches"
    assert result.summary() == "5 entries, chain intact, head matches"
    # the library default keeps key and head beside the SQLite file (the product passes its own)
    assert (tmp_path / "audit.db.key").exists() and read_head(tmp_path / "audit.db.head").last_id == 5  # type: ignore[union-attr]
    assert stat.S_IMODE((tmp_path / "audit.db.key").stat().st_mode) == 0o600


@pytest.mark.parametrize(
    ("statement", "bad_id"),
    [
        ("UPDATE audit_log SET call_ids = '[\"other\"]' WHERE id = 3", 3),
        ("DELETE FROM audit_log WHERE id = 2", 3),
        ("UPDATE audit_log SET prev_hash = 'x' WHERE id = 4", 4),
    ],
)
def test_tampering_names_the_first_bad_entry(tmp_path: Path, statement: str, bad_id: int) -> None:
    log = _log(tmp_path)
    tamper(log, statement)
    result = log.verify()
    assert not result.ok
    assert result.first_bad_id == bad_id


def test_the_table_refuses_updates_and_deletes(backend: Backend) -> None:
    log = _filled(backend, 2)
    for statement in ("UPDATE audit_log SET actor = 'x' WHERE id = 1", "DELETE FROM audit_log WHERE id = 2"):
        with pytest.raises(sa.exc.DBAPIError, match="append-only"), log.engine.begin() as conn:
            conn.execute(text(statement))
    assert log.verify().ok
    assert migrations.needs_upgrade(log.engine) is False


# -- tampering, on SQLite and PostgreSQL ------------------------------------------------------------
Step = Callable[[AuditLog], None]


def _sql(statement: str) -> Step:
    return lambda log: tamper(log, statement)


def _forge(start: int, key: bytes | None, rekey: bool = False) -> Step:
    return lambda log: forge_chain(log, start, key, rekey=rekey)


TAMPERING: dict[str, tuple[list[Step], int, str]] = {
    "edited": ([_sql("UPDATE audit_log SET actor = 'mallory' WHERE id = 3")],
               3, "entry 3: content does not match its MAC"),
    "edited, plain hashes recomputed": (
        [_sql("UPDATE audit_log SET outcome = 'denied' WHERE id = 3"), _forge(3, None)],
        3, "entry 3: content does not match its MAC"),
    "edited, MACs recomputed with a wrong key": (
        [_sql("UPDATE audit_log SET note = 'nothing to see' WHERE id = 3"), _forge(3, WRONG_KEY)],
        3, "entry 3: content does not match its MAC"),
    "whole chain re-keyed by the attacker": (
        [_sql("UPDATE audit_log SET role = 'admin' WHERE id = 5"), _forge(1, WRONG_KEY, rekey=True)],
        1, "which this verifier does not hold"),
    "deleted": ([_sql("DELETE FROM audit_log WHERE id = 4")], 5, "entry 4 is missing: the log jumps from entry 3 to 5"),
    "two deleted": ([_sql("DELETE FROM audit_log WHERE id IN (4, 5)")], 6, "entries 4-5 are missing"),
    "inserted": ([lambda log: insert_forged_at(log, 5)], 5, "entry 5: does not link to entry 4"),
    "inserted, chain recomputed with a wrong key": (
        [lambda log: insert_forged_at(log, 5), _forge(5, WRONG_KEY)], 5, "entry 5: content does not match its MAC"),
    "reordered": ([lambda log: swap_ids(log, 3, 4)], 3, "entry 3: does not link to entry 2"),
    "reordered, plain hashes recomputed": (
        [lambda log: swap_ids(log, 3, 4), _forge(3, None)], 3, "entry 3: content does not match its MAC"),
    "tail cut": ([_sql("DELETE FROM audit_log WHERE id >= 7")],
                 7, "log ends at entry 6 but the head file says 8: the tail was cut"),
    "everything deleted": ([_sql("DELETE FROM audit_log")], 1, "log ends at entry 0 but the head file says 8"),
    "last entry replaced": (
        [_sql("UPDATE audit_log SET detail = '{\"i\": 0}' WHERE id = 8"), _forge(8, WRONG_KEY)],
        8, "entry 8: content does not match its MAC"),
    "unkeyed entry appended": (
        [lambda log: insert_forged_at(log, 9), _sql("UPDATE audit_log SET mac = NULL WHERE id = 9"), _forge(9, None)],
        9, "has no MAC although keyed entries precede it"),
    "MAC column garbled": ([_sql("UPDATE audit_log SET mac = 'ü' WHERE id = 2")],
                           2, "entry 2: content does not match its MAC"),
    "entry signed with another key id": (
        [_sql(f"UPDATE audit_log SET key_id = '{ChainKey.of(WRONG_KEY).id}' WHERE id = 6")], 6, "claims key"),
}


@pytest.mark.parametrize("kind", list(TAMPERING))
def test_each_kind_of_tampering_is_named(backend: Backend, kind: str) -> None:
    log = _filled(backend)
    assert log.verify().ok
    steps, bad_id, reason = TAMPERING[kind]
    for step in steps:
        step(log)
    result = log.verify()
    assert not result.ok, kind
    assert result.first_bad_id == bad_id, result
    assert reason in result.reason, result.reason


# -- the head file ------------------------------------------------------------------------------------
def test_a_forged_head_file_is_caught(sqlite_backend: Backend) -> None:
    log = _filled(sqlite_backend)
    honest = sqlite_backend.head.read_text()
    data = json.loads(honest)
    data["last_id"], data["count"] = 6, 6  # hide a cut tail: edit the head, keep its MAC
    sqlite_backend.head.write_text(json.dumps(data))
    result = log.verify()
    assert (result.ok, result.first_bad_id) == (False, None)
    assert "does not carry a valid MAC" in result.reason
    # the same, with the head re-MACed under the attacker's own key
    write_head(sqlite_backend.head, Head.seal(ChainKey.of(WRONG_KEY), 6, data["last_mac"], 6))
    assert "does not carry a valid MAC" in log.verify().reason
    sqlite_backend.head.write_text("{not json")
    assert "unreadable" in log.verify().reason
    sqlite_backend.head.unlink()
    assert "head file" in log.verify().reason and "is missing" in log.verify().reason
    sqlite_backend.head.write_text(honest)
    assert log.verify().ok


def test_a_rolled_back_head_file_is_caught(sqlite_backend: Backend) -> None:
    log = _filled(sqlite_backend, 5)
    old_head = sqlite_backend.head.read_text()
    for _ in range(3):
        log.append(ACTOR, "raw.read")
    sqlite_backend.head.write_text(old_head)
    result = log.verify()
    assert (result.ok, result.first_bad_id) == (False, 6)
    assert "entries 6-8 are not covered by the head file" in result.reason and "rolled back" in result.reason


def test_a_head_from_another_log_is_caught(sqlite_backend: Backend, tmp_path: Path) -> None:
    """Same key, same length, different history: the head's copy of the last MAC tells them apart."""
    log = _filled(sqlite_backend, 4)
    other = Backend(f"sqlite:///{tmp_path / 'other.db'}", tmp_path / "other.head", "sqlite")
    other_log = other.open()
    for i in range(4):
        other_log.append(ACTOR, "raw.read", call_ids=[f"x{i}"])
    sqlite_backend.head.write_text(other.head.read_text())
    result = log.verify()
    assert (result.ok, result.first_bad_id) == (False, 4)
    assert "its MAC is not the one the head file records" in result.reason


def test_a_head_one_entry_behind_is_an_interrupted_append(sqlite_backend: Backend) -> None:
    """A crash between the commit and the head write leaves the head one entry behind: not tampering."""
    log = _filled(sqlite_backend, 5)
    old_head = sqlite_backend.head.read_text()
    log.append(ACTOR, "raw.read")
    sqlite_backend.head.write_text(old_head)
    result = log.verify()
    assert result.ok and result.head.startswith("lags by one entry")
    log.append(ACTOR, "raw.read")  # the next append moves the head again
    assert log.verify().head == "matches"


def test_what_it_cannot_catch_a_cut_tail_with_a_rolled_back_head(sqlite_backend: Backend) -> None:
    """The documented limit: the head must live where the database's attacker cannot roll it back."""
    log = _filled(sqlite_backend, 5)
    old_head = sqlite_backend.head.read_text()
    log.append(ACTOR, "raw.read", call_ids=["evidence"])
    tamper(log, "DELETE FROM audit_log WHERE id = 6")
    sqlite_backend.head.write_text(old_head)
    assert log.verify().ok


def test_appends_refuse_to_bury_a_cut_tail(sqlite_backend: Backend) -> None:
    log = _filled(sqlite_backend)
    tamper(log, "DELETE FROM audit_log WHERE id >= 7")
    head_before = sqlite_backend.head.read_text()
    with pytest.raises(AuditIntegrityError, match="the tail was cut"):
        log.append(ACTOR, "raw.read")
    assert sqlite_backend.head.read_text() == head_before and log.count() == 6


def test_a_lost_head_blocks_appends_until_reanchored(sqlite_backend: Backend) -> None:
    log = _filled(sqlite_backend, 4)
    sqlite_backend.head.unlink()
    with pytest.raises(AuditIntegrityError, match="is missing"):
        log.append(ACTOR, "raw.read")
    result = log.reanchor(Actor("compliance-officer", "audit", user="alice"), reason="head lost in a disk swap")
    assert result.ok and result.checked == 5 and result.head == "matches"
    last = list(log.entries())[-1]
    assert (last.action, last.note, last.detail["anchored_at"]) == (
        "audit.head-reanchored", "head lost in a disk swap", 4)
    tamper(log, "UPDATE audit_log SET actor = 'x' WHERE id = 2")
    with pytest.raises(AuditIntegrityError, match="entry 2"):
        log.reanchor()


# -- keys ---------------------------------------------------------------------------------------------
def test_audit_key_is_created_private_and_the_environment_wins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("VOICELOOP_AUDIT_KEY", raising=False)
    keys = tmp_path / "keys"
    key = audit_key(keys)
    assert len(key) == 32 and audit_key(keys) == key
    assert stat.S_IMODE(keys.stat().st_mode) == 0o700
    assert stat.S_IMODE((keys / "audit.key").stat().st_mode) == 0o600
    monkeypatch.setenv("VOICELOOP_AUDIT_KEY", "ab" * 32 + ",cd" + "cd" * 31)
    assert audit_keyring(keys) == [bytes.fromhex("ab" * 32), bytes.fromhex("cd" * 32)]
    monkeypatch.setenv("VOICELOOP_AUDIT_KEY", "not-hex")
    with pytest.raises(AuditKeyError, match="not a hex string"):
        audit_key(keys)


def test_the_wrong_key_can_neither_verify_nor_append(sqlite_backend: Backend) -> None:
    _filled(sqlite_backend, 3)
    intruder = sqlite_backend.open(key=WRONG_KEY)
    result = intruder.verify()
    assert (result.ok, result.first_bad_id) == (False, 1) and "does not hold" in result.reason
    with pytest.raises(AuditKeyError, match="restore the right key"):
        intruder.append(ACTOR, "raw.read")
    assert sqlite_backend.open().verify().ok


def test_key_rotation_starts_a_new_segment(backend: Backend) -> None:
    _filled(backend, 3)
    rotated = backend.open(key=WRONG_KEY, retired_keys=[KEY])
    rotated.append(ACTOR, "raw.read", call_ids=["c9"])
    entries = list(rotated.entries())
    rotation = entries[3]
    old_id, new_id = ChainKey.of(KEY).id, ChainKey.of(WRONG_KEY).id
    assert (rotation.action, rotation.key_id, rotation.detail) == (
        "audit.key-rotated", old_id, {"old_key_id": old_id, "new_key_id": new_id})
    assert entries[4].key_id == new_id
    assert rotated.verify().ok and rotated.verify().checked == 5
    # the retired key is still needed for the old segment ...
    result = backend.open(key=WRONG_KEY).verify()
    assert (result.ok, result.first_bad_id) == (False, 1)
    # ... and a leaked retired key cannot extend the new segment
    leaked = ChainKey.of(KEY)
    tamper(rotated, "INSERT INTO audit_log (id, ts, actor, role, purpose, action, zone, call_ids, flow_run_id, "
                    "outcome, detail, prev_hash, entry_hash, note, mac, key_id, caller) "
                    f"SELECT 6, ts, actor, role, purpose, action, zone, call_ids, flow_run_id, outcome, detail, "
                    f"entry_hash, 'x', note, mac, '{leaked.id}', caller FROM audit_log WHERE id = 5")
    forge_chain(rotated, 6, KEY)
    result = rotated.verify()
    assert result.first_bad_id == 6 and "claims key" in result.reason


def test_rotating_key_files_records_the_rotation(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("VOICELOOP_AUDIT_KEY", raising=False)
    settings = load_settings(tmp_path / "none.yaml", project_dir=str(tmp_path / "state"))
    log = open_audit(settings)
    log.append(ACTOR, "raw.read")
    old_id, new_id = rotate_key_files(settings.keys_dir)
    assert (settings.keys_dir / f"audit.{old_id}.key").exists()
    log = open_audit(settings)
    assert log.key_id == new_id and log.record_key_rotation() and not log.record_key_rotation()
    assert [e.action for e in log.entries()] == ["raw.read", "audit.key-rotated"]
    assert log.verify().ok and read_head(settings.audit_head_file).key_id == new_id  # type: ignore[union-attr]
    with pytest.raises(ValueError, match="written by the audit log itself"):
        log.append(ACTOR, "audit.key-rotated", detail={"new_key_id": "0" * 16})


# -- pseudonyms, signatures, queries -------------------------------------------------------------------
def test_callers_are_pseudonymised(sqlite_backend: Backend, tmp_path: Path) -> None:
    log = sqlite_backend.open()
    log.append(ACTOR, "erasure.request", caller="+15550001234", detail={"request_id": "r1"})
    log.append(ACTOR, "raw.read", call_ids=["c1"])
    pseudonym = log.pseudonym("+15550001234")
    assert pseudonym.startswith("cp_") and pseudonym == log.pseudonym("+15550001234")
    assert pseudonym != sqlite_backend.open(key=WRONG_KEY, retired_keys=[KEY]).pseudonym("+15550001234")
    assert [e.caller for e in log.entries()] == [pseudonym, None]
    log.close()
    raw = b"".join(p.read_bytes() for p in tmp_path.glob("audit.db*"))
    assert b"+15550001234" not in raw and pseudonym.encode() in raw
    # found after a key rotation too (the pseudonym changes with the key)
    rotated = sqlite_backend.open(key=WRONG_KEY, retired_keys=[KEY])
    rotated.append(ACTOR, "erasure.completed", caller="+15550001234", detail={"request_id": "r1"})
    assert [e.action for e in rotated.entries(caller="+15550001234")] == ["erasure.request", "erasure.completed"]


def test_sign_is_canonical_and_keyed(sqlite_backend: Backend) -> None:
    log = sqlite_backend.open()
    certificate = {"request_id": "r1", "calls": ["a", "b"], "erased_at": "2026-05-01"}
    signature = log.sign(certificate)
    assert signature == log.sign(dict(reversed(list(certificate.items()))))
    assert log.verify_signature(certificate, signature)
    assert not log.verify_signature({**certificate, "calls": ["a"]}, signature)
    assert not sqlite_backend.open(key=WRONG_KEY).verify_signature(certificate, signature)
    assert sqlite_backend.open(key=WRONG_KEY, retired_keys=[KEY]).verify_signature(certificate, signature)
    assert log.sign(b"raw bytes") != log.sign(b"raw bytez")


def test_query_helpers(backend: Backend) -> None:
    log = backend.open()
    now = datetime.now(UTC)
    analyst = Actor("analyst", "qa-review", user="bob")
    log.append_many([
        EntryDraft(ACTOR, "raw.write", zone="raw", call_ids=["c1", "c2"], ts=now - timedelta(days=30)),
        EntryDraft(analyst, "raw.read", zone="raw", call_ids=["c2"], outcome="denied", ts=now - timedelta(days=3)),
        EntryDraft(ACTOR, "erasure.request", detail={"calls": ["c2"], "request_id": "r1"}, ts=now - timedelta(days=2)),
        EntryDraft(ACTOR, "erasure.completed", detail={"request_id": "r1"}, note="erased c1",
                   ts=now - timedelta(hours=1)),
        EntryDraft(ACTOR, "raw.read", call_ids=["c1%"], detail={"c2": "a key, not a mention"}, ts=now),
    ])
    def ids(**filters: Any) -> list[int]:
        return [e.id for e in log.entries(**filters)]

    assert ids(since=now - timedelta(days=7)) == [2, 3, 4, 5]
    assert ids(since=now - timedelta(days=7), until=now - timedelta(minutes=5)) == [2, 3, 4]
    assert ids(role="analyst") == [2]
    assert ids(outcome="denied") == [2]
    assert ids(call_id="c2") == [1, 2, 3]
    assert ids(call_id="c1") == [1, 4]
    assert ids(call_id="c1%") == [5]
    assert ids(action="erasure.*") == [3, 4]
    assert ids(action="raw.read", limit=1, newest_first=True) == [5]
    assert ids(call_id="c2", limit=2, newest_first=True) == [3, 2]
    assert ids(since_id=4) == [5]
    assert all(e.when.tzinfo is not None for e in log.entries())
    assert log.verify().ok and log.count() == 5


# -- migrations of a foundation-era database ---------------------------------------------------------
def _foundation_log(url: str, n: int) -> None:
    """What the foundation code left behind: schema 0001, no version table, unkeyed SHA-256 chain."""
    engine = sa.create_engine(url)
    migrations.upgrade(engine, "0001")
    table = sa.Table("audit_log", sa.MetaData(), autoload_with=engine)
    prev = GENESIS
    with engine.begin() as conn:
        conn.execute(text(f"DROP TABLE {migrations.VERSION_TABLE}"))
        for i in range(1, n + 1):
            ts = datetime(2026, 3, 1, tzinfo=UTC) + timedelta(minutes=i)
            content = {"id": i, "ts": ts.isoformat(timespec="microseconds"), "actor": "old", "role": "pipeline",
                       "purpose": "ingest", "action": "raw.write", "zone": "raw", "call_ids": [f"c{i}"],
                       "flow_run_id": None, "outcome": "ok", "detail": {"i": i, "nested": {"b": 1, "a": [1, 2]}},
                       "note": None}
            entry_hash = chain_hash(prev, content)
            conn.execute(table.insert().values(**{**content, "ts": ts}, prev_hash=prev, entry_hash=entry_hash))
            prev = entry_hash
    engine.dispose()


def test_a_foundation_era_log_is_migrated_and_sealed(backend: Backend) -> None:
    _foundation_log(backend.url, 6)
    log = backend.open()
    with log.engine.connect() as conn:
        assert migrations.current_revision(conn) == migrations.HEAD
    entries = list(log.entries())
    seal = entries[-1]
    assert len(entries) == 7 and all(e.mac is None for e in entries[:6])
    assert (seal.action, seal.role, seal.detail["legacy_entries"]) == ("audit.sealed", "system", 6)
    assert seal.detail["legacy_last_hash"] == entries[5].entry_hash == seal.prev_hash
    log.append(ACTOR, "raw.read", call_ids=["c1"])
    result = log.verify()
    assert result.ok and result.checked == 8 and result.head == "matches"
    assert len(list(backend.open().entries())) == 8  # opening again neither migrates nor seals again
    tamper(log, "UPDATE audit_log SET actor = 'mallory' WHERE id = 2")
    result = log.verify()
    assert result.first_bad_id == 2 and result.reason == "entry 2: content does not match its hash (edited?)"


def test_rewriting_the_whole_foundation_chain_breaks_the_seal(sqlite_backend: Backend) -> None:
    _foundation_log(sqlite_backend.url, 4)
    log = sqlite_backend.open()
    tamper(log, "UPDATE audit_log SET actor = 'mallory' WHERE id = 2")
    rows = _rows(log)
    prev = GENESIS
    for row in rows[:4]:  # recompute the unkeyed chain: possible without a key
        content = {"id": row[0], "ts": row[1].replace(" ", "T") + "+00:00", "actor": row[2], "role": row[3],
                   "purpose": row[4], "action": row[5], "zone": row[6], "call_ids": json.loads(row[7]),
                   "flow_run_id": row[8], "outcome": row[9], "detail": json.loads(row[10]), "note": row[11]}
        new = chain_hash(prev, content)
        tamper(log, f"UPDATE audit_log SET prev_hash = '{prev}', entry_hash = '{new}' WHERE id = {row[0]}")
        prev = new
    tamper(log, f"UPDATE audit_log SET prev_hash = '{prev}' WHERE id = 5")
    result = log.verify()
    assert result.first_bad_id == 5 and "does not match its MAC" in result.reason


def test_a_foundation_row_with_broken_json_is_reported_not_raised(sqlite_backend: Backend) -> None:
    _foundation_log(sqlite_backend.url, 3)
    log = sqlite_backend.open()
    tamper(log, "UPDATE audit_log SET detail = '{broken' WHERE id = 2")
    result = log.verify()
    assert (result.ok, result.first_bad_id) == (False, 2)


def test_a_broken_foundation_log_is_not_sealed(sqlite_backend: Backend) -> None:
    _foundation_log(sqlite_backend.url, 3)
    engine = sa.create_engine(sqlite_backend.url)
    with engine.begin() as conn:
        conn.execute(text("UPDATE audit_log SET actor = 'x' WHERE id = 2"))
    with pytest.raises(AuditIntegrityError, match="entry 2: content does not match its hash"):
        sqlite_backend.open()


# -- concurrency --------------------------------------------------------------------------------------
def _writer(url: str, worker: int, key: bytes | None, head: str | None) -> None:
    log = AuditLog(url, key=key, head_file=Path(head) if head else None)
    for i in range(15):
        log.append(Actor(role="pipeline", purpose="ingest", user=f"w{worker}"), "raw.write", call_ids=[f"{worker}-{i}"])


def _run_writers(url: str, key: bytes | None, head: Path | None, n: int = 3) -> None:
    ctx = multiprocessing.get_context("spawn")
    workers = [ctx.Process(target=_writer, args=(url, w, key, str(head) if head else None)) for w in range(n)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(120)
        assert w.exitcode == 0


def test_concurrent_writers_keep_a_valid_chain(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'audit.db'}"
    _run_writers(url, None, None)  # each process creates the schema and the key on its own: they must agree
    log = AuditLog(url)
    assert log.count() == 45
    result = log.verify()
    assert result.ok and result.head == "matches"


def test_concurrent_writers_on_postgresql(fresh_pg_url: str, tmp_path: Path) -> None:
    head = tmp_path / "anchor" / "audit.head"
    _run_writers(fresh_pg_url, KEY, head)
    log = AuditLog(fresh_pg_url, key=KEY, head_file=head)
    assert log.count() == 45 and sorted(e.actor for e in log.entries())[::15] == ["w0", "w1", "w2"]
    result = log.verify()
    assert result.ok and result.checked == 45 and result.head == "matches"


def test_postgresql_needs_an_explicit_key_and_head(fresh_pg_url: str) -> None:  # noqa: F811
    with pytest.raises(ValueError, match="explicit key and head_file"):
        AuditLog(fresh_pg_url)


def test_open_audit_uses_the_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VOICELOOP_AUDIT_KEY", KEY.hex())
    settings = load_settings(tmp_path / "none.yaml", project_dir=str(tmp_path / "state"))
    log = open_audit(settings)
    log.append(ACTOR, "raw.read")
    assert log.key_id == ChainKey.of(KEY).id and settings.audit_head_file.exists()
    assert not (settings.keys_dir / "audit.key").exists()  # the environment's key was used
    assert os.path.exists(str(settings.audit_head_file) + ".lock") and log.verify().ok
