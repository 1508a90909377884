"""Ingest reads what changed, not the store's history: listing signatures, date folders, the sweep, erasure."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import fsspec

from governance.audit import Actor, AuditLog
from governance.consent import ConsentLedger
from governance.ingest import ingest, tombstone
from governance.ingest_listing import ListingWindow, folder_date
from governance.store import GovernedStore
from tests.conftest import write_call

T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
WEEK = ListingWindow(lateness_days=2, sweep_days=7)


def _store(tmp_path: Path) -> GovernedStore:
    audit = AuditLog(f"sqlite:///{tmp_path / 'audit.db'}")
    return GovernedStore(tmp_path / "zones", audit, Actor(role="pipeline", purpose="ingest", user="tester"))


def _dated(source: Path, day: str, call_id: str, **fields: object) -> Path:
    """One call in the date folder ``day`` (its recording in ``day/audio/``), started that day."""
    started = str(fields.pop("started_at", f"{day}T10:00:00+00:00"))
    return write_call(source / day, call_id, started_at=started, **fields)  # type: ignore[arg-type]


def _withdraw_consent(path: Path) -> None:
    document = json.loads(path.read_text())
    path.write_text(json.dumps({**document, "consent": {"training": False}}))


def test_an_unchanged_store_is_not_read_again_and_new_calls_alone_are_read(tmp_path: Path) -> None:
    source = tmp_path / "calls"
    for index in range(3):
        write_call(source, f"call-{index}")
    store = _store(tmp_path)
    first = ingest(store, str(source), "train")
    assert first.documents_read == 3 and sorted(first.ingested) == ["call-0", "call-1", "call-2"]

    again = ingest(store, str(source), "train")
    assert (again.documents_read, again.listed, again.already_seen, again.ingested) == (0, 3, 3, [])

    write_call(source, "call-3")
    write_call(source, "call-4", started_at="2026-11-01T08:00:00+00:00")  # late: older than the watermark
    more = ingest(store, str(source), "train")
    assert more.documents_read == 2 and sorted(more.ingested) == ["call-3", "call-4"]
    assert ingest(store, str(source), "train").documents_read == 0


def test_a_touched_file_is_read_once_and_a_replaced_recording_is_ingested_again(tmp_path: Path) -> None:
    source = tmp_path / "calls"
    path = write_call(source, "touched")
    write_call(source, "re-recorded")
    store = _store(tmp_path)
    ingest(store, str(source), "train")

    later = path.stat().st_mtime + 60
    os.utime(path, (later, later))  # the same bytes, a new modification time
    touched = ingest(store, str(source), "train")
    assert (touched.documents_read, touched.already_seen, touched.ingested) == (1, 2, [])
    assert ingest(store, str(source), "train").documents_read == 0  # its new signature was recorded

    [before] = [entry.audio_sha256 for entry in store.raw_index().values() if entry.call_id == "re-recorded"]
    write_call(source, "re-recorded", seconds=1.5)  # the same JSON, a corrected recording
    fixed = ingest(store, str(source), "train")
    assert fixed.documents_read == 1 and fixed.ingested == ["re-recorded"]
    assert store.raw_index()["re-recorded"].audio_sha256 != before


def test_consent_withdrawn_in_an_old_document_is_noticed_and_handled(tmp_path: Path) -> None:
    source = tmp_path / "calls"
    old = write_call(source, "old-call", started_at="2026-10-01T10:00:00+00:00")
    for index in range(3):
        write_call(source, f"newer-{index}", started_at="2026-11-20T10:00:00+00:00")
    store = _store(tmp_path)
    ingest(store, str(source), "train")

    _withdraw_consent(old)
    report = ingest(store, str(source), "train")
    assert report.documents_read == 1 and report.withdrawn == ["old-call"] and report.ingested == []
    assert ConsentLedger.load(store).withdrawn_call_ids() == {"old-call"}  # recorded for the retrain to carry out
    [raw] = store.as_purpose("redaction").read_raw_documents(["old-call"])
    assert raw["consent"]["training"] is False  # the raw copy follows its document
    assert ingest(store, str(source), "train").documents_read == 0


def test_a_date_partitioned_store_lists_the_lateness_window_and_reads_only_what_is_new(tmp_path: Path) -> None:
    source = tmp_path / "calls"
    days = [f"2026-11-0{day}" for day in range(1, 7)]
    for day in days:
        for index in range(2):
            _dated(source, day, f"call-{day}-{index}")
    store = _store(tmp_path)
    first = ingest(store, str(source), "train", window=WEEK, now=T0)
    assert (first.folders_listed, first.folders_skipped, first.documents_read) == (6, 0, 12)
    assert first.watermark == "2026-11-06T10:00:00+00:00"

    # the watermark's day is 11-06: with 2 days' lateness, 11-04..11-06 are listed, the older ones are not
    again = ingest(store, str(source), "train", window=WEEK, now=T0 + timedelta(minutes=1))
    assert (again.folders_listed, again.folders_skipped, again.listed, again.documents_read) == (3, 3, 6, 0)

    _dated(source, "2026-11-07", "call-new")  # a new day
    _dated(source, "2026-11-05", "call-late")  # a late call inside the window
    _dated(source, "2025-01-01", "call-backfill")  # a folder never listed: listed whatever its date
    more = ingest(store, str(source), "train", window=WEEK, now=T0 + timedelta(minutes=2))
    assert sorted(more.ingested) == ["call-backfill", "call-late", "call-new"] and more.documents_read == 3
    assert store.raw_call_ids() >= {"call-new", "call-late", "call-backfill", "call-2026-11-01-0"}


def test_a_rewritten_document_in_an_old_date_folder_is_noticed_by_the_sweep(tmp_path: Path) -> None:
    source = tmp_path / "calls"
    old = _dated(source, "2026-11-01", "call-old")
    for day in ("2026-11-09", "2026-11-10"):
        _dated(source, day, f"call-{day}")
    store = _store(tmp_path)
    ingest(store, str(source), "train", window=WEEK, now=T0)

    _withdraw_consent(old)
    soon = ingest(store, str(source), "train", window=WEEK, now=T0 + timedelta(minutes=1))
    assert soon.folders_skipped == 1 and soon.withdrawn == [] and soon.documents_read == 0  # not due yet

    swept = ingest(store, str(source), "train", window=WEEK, now=T0 + timedelta(days=7, minutes=1))
    assert swept.folders_listed == 3 and swept.documents_read == 1 and swept.withdrawn == ["call-old"]
    assert ConsentLedger.load(store).withdrawn_call_ids() == {"call-old"}
    after = ingest(store, str(source), "train", window=WEEK, now=T0 + timedelta(days=7, minutes=2))
    assert after.folders_skipped == 1 and after.documents_read == 0  # listed again only a week later

    every_run = ListingWindow(lateness_days=2, sweep_days=0)
    full = ingest(store, str(source), "train", window=every_run, now=T0 + timedelta(days=7, minutes=3))
    assert full.folders_skipped == 0 and full.documents_read == 0


def test_a_call_dated_in_the_future_does_not_hide_the_days_before_today(tmp_path: Path) -> None:
    source = tmp_path / "calls"
    for day in ("2026-11-20", "2026-11-29", "2026-12-01"):
        _dated(source, day, f"call-{day}")
    write_call(source, "wrong-clock", started_at="2099-01-01T00:00:00+00:00")
    store = _store(tmp_path)
    assert ingest(store, str(source), "train", window=WEEK, now=T0).watermark == "2099-01-01T00:00:00+00:00"

    _dated(source, "2026-11-29", "call-late")  # today is 12-01 (T0): 11-29 is within the 2 days' lateness
    report = ingest(store, str(source), "train", window=WEEK, now=T0 + timedelta(minutes=1))
    assert report.ingested == ["call-late"] and (report.folders_listed, report.folders_skipped) == (2, 1)


def test_a_malformed_new_file_in_a_date_folder_is_quarantined_and_not_read_again(tmp_path: Path) -> None:
    source = tmp_path / "calls"
    _dated(source, "2026-11-01", "good")
    store = _store(tmp_path)
    ingest(store, str(source), "train", window=WEEK, now=T0)

    (source / "2026-11-02").mkdir()
    (source / "2026-11-02" / "broken.json").write_text('{"call_id": "broken", ')
    _dated(source, "2026-11-02", "fine")
    report = ingest(store, str(source), "train", window=WEEK, now=T0)
    assert report.documents_read == 2 and report.ingested == ["fine"]
    [(name, reason)] = report.quarantined
    assert name == "2026-11-02/broken.json" and reason.startswith("2026-11-02/broken.json: malformed JSON")
    assert [item["reason"] for item in store.quarantined("ingest")] == [reason]
    rerun = ingest(store, str(source), "train", window=WEEK, now=T0)
    assert rerun.documents_read == 0 and rerun.quarantined == []


def test_erasure_leaves_no_record_of_the_call_in_any_ingest_state(tmp_path: Path) -> None:
    source = tmp_path / "calls"
    _dated(source, "2026-11-01", "erase-me")
    _dated(source, "2026-11-01", "keep-me")
    write_call(source, "flat-erase-me", consent=False, started_at="2026-11-01T11:00:00+00:00")  # waits for the monitor
    store = _store(tmp_path)
    ingest(store, str(source), "train", window=WEEK, now=T0)
    states = store.root / "state"
    assert any("erase-me" in path.read_text() for path in states.glob("ingest-*.json"))

    tombstone(store, ["erase-me", "flat-erase-me"], "request-1")
    holding = [path.name for path in states.glob("*.json") if "erase-me" in path.read_text()]
    assert holding == ["erased.json"]  # the tombstone alone
    assert any("keep-me" in path.read_text() for path in states.glob("ingest-*.json"))
    report = ingest(store, str(source), "train", window=WEEK, now=T0)
    assert sorted(report.erased) == ["erase-me", "flat-erase-me"] and report.documents_read == 0


def test_state_from_code_before_signatures_is_read_once_then_not_again(tmp_path: Path) -> None:
    source = tmp_path / "calls"
    write_call(source, "c1")
    write_call(source, "c2")
    store = _store(tmp_path)
    ingest(store, str(source), "train")
    fs, root = fsspec.core.url_to_fs(str(source))
    state = store.read_state("ingest-train")
    store.write_state("ingest-train", {  # what the code before listing signatures kept
        "watermark": state["watermark"], "seen": state["seen"], "monitor_pending": {},
        "audio_seen": {name: str(fs.ukey(f"{root}/audio/{name[:-5]}.wav")) for name in state["seen"]}})
    write_call(source, "c2", seconds=1.5)  # its recording replaced before the upgrade's first run

    migrated = ingest(store, str(source), "train")
    assert (migrated.documents_read, migrated.already_seen, migrated.ingested) == (2, 1, ["c2"])
    assert store.read_state("ingest-train")["audio_seen"] == {}  # replaced by the signatures
    assert ingest(store, str(source), "train").documents_read == 0


def test_folder_dates() -> None:
    assert folder_date("2026-11-02") == folder_date("date=2026-11-02") == datetime(2026, 11, 2).date()
    assert folder_date("audio") is None and folder_date("2026-13-40") is None and folder_date("2026-11") is None
