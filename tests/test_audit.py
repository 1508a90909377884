"""The audit trail: append-only hash chain, tamper detection, concurrent writers."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

import pytest
from sqlalchemy import text

from governance.audit import Actor, AuditLog

ACTOR = Actor(role="pipeline", purpose="ingest", user="tester", flow_run_id="run-1")


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
    assert log.verify().ok and log.verify().checked == 5


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
    with log.engine.begin() as conn:
        conn.execute(text(statement))
    result = log.verify()
    assert not result.ok
    assert result.first_bad_id == bad_id


def _writer(url: str, worker: int) -> None:
    log = AuditLog(url)
    for i in range(15):
        log.append(Actor(role="pipeline", purpose="ingest", user=f"w{worker}"), "raw.write", call_ids=[f"{worker}-{i}"])


def test_concurrent_writers_keep_a_valid_chain(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'audit.db'}"
    AuditLog(url)  # create the schema once
    ctx = multiprocessing.get_context("spawn")
    workers = [ctx.Process(target=_writer, args=(url, w)) for w in range(3)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(120)
        assert w.exitcode == 0
    log = AuditLog(url)
    assert log.count() == 45
    assert log.verify().ok
