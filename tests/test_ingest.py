"""Ingest: incremental, idempotent, consent-aware, and every bad call quarantined with its reason."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from governance.access import AccessDenied
from governance.audit import Actor, AuditLog
from governance.ingest import ingest
from governance.store import GovernedStore
from tests.conftest import write_call


def _store(tmp_path: Path, purpose: str = "ingest") -> GovernedStore:
    audit = AuditLog(f"sqlite:///{tmp_path / 'audit.db'}")
    return GovernedStore(tmp_path / "zones", audit, Actor(role="pipeline", purpose=purpose, user="tester"))


def test_second_run_pulls_nothing_and_late_calls_are_picked_up(tmp_path: Path) -> None:
    source = tmp_path / "calls"
    write_call(source, "call-1", started_at="2026-11-20T10:00:00+00:00")
    write_call(source, "call-2", started_at="2026-11-21T10:00:00+00:00")
    store = _store(tmp_path)
    first = ingest(store, str(source), "train")
    assert sorted(first.ingested) == ["call-1", "call-2"]
    assert first.watermark == "2026-11-21T10:00:00+00:00"

    again = ingest(store, str(source), "train")
    assert again.ingested == [] and again.already_seen == 2

    write_call(source, "call-late", started_at="2026-11-19T08:00:00+00:00")  # older than the watermark
    late = ingest(store, str(source), "train")
    assert late.ingested == ["call-late"]
    assert store.raw_call_ids() == {"call-1", "call-2", "call-late"}
    [raw] = store.as_purpose("redaction").read_raw_documents(["call-1"])
    assert raw["_ingest"]["audio"]["sample_rate"] == 16000 and raw["audio"] == "audio.wav"


def test_no_consent_calls_are_counted_not_stored(tmp_path: Path) -> None:
    source = tmp_path / "calls"
    write_call(source, "yes")
    write_call(source, "no", consent=False)
    store = _store(tmp_path)
    report = ingest(store, str(source), "train")
    assert report.ingested == ["yes"] and report.no_consent == ["no"]
    assert store.raw_call_ids() == {"yes"}
    assert [e.call_ids for e in store.audit.entries(action="ingest.no_consent")] == [["no"]]


BAD_CALLS = {
    "malformed": "malformed JSON",
    "missing-audio": "is missing from the call store",
    "unreadable-audio": "audio is unreadable",
    "empty-audio": "audio file is empty",
    "bad-times": "end_s (1.0) must be after start_s (2.0)",
    "past-audio": "turn 0 ends at 9.00 s but the audio lasts 2.00 s",
    "escape": "audio must be a path relative to the call JSON, inside the store",
    "no-tz": "started_at needs a timezone",
    "wrong-name": "file name must be '<call_id>.json'",
    "unsafe_id": "call_id may hold only letters",
    "string-consent": "consent.training: Input should be a valid boolean",
}


def _write_bad_calls(source: Path) -> None:
    (source / "malformed.json").write_text('{"call_id": "malformed", ')
    write_call(source, "missing-audio")
    (source / "audio" / "missing-audio.wav").unlink()
    write_call(source, "unreadable-audio", audio_bytes=b"RIFF not really a wav file")
    write_call(source, "empty-audio", audio_bytes=b"")
    write_call(source, "bad-times", turns=[{"speaker": "customer", "start_s": 2.0, "end_s": 1.0, "text": "hi"}])
    write_call(source, "past-audio", turns=[{"speaker": "customer", "start_s": 0.0, "end_s": 9.0, "text": "hi"}])
    path = write_call(source, "escape")
    doc = json.loads(path.read_text())
    path.write_text(json.dumps({**doc, "audio": "../../etc/passwd"}))
    path = write_call(source, "no-tz")
    path.write_text(json.dumps({**json.loads(path.read_text()), "started_at": "2026-11-20T10:00:00"}))
    path = write_call(source, "wrong-name")
    path.write_text(json.dumps({**json.loads(path.read_text()), "call_id": "someone-else"}))
    path = write_call(source, "unsafe_id")
    path.write_text(json.dumps({**json.loads(path.read_text()), "call_id": "../../x; DROP TABLE"}))
    path = write_call(source, "string-consent")
    path.write_text(json.dumps({**json.loads(path.read_text()), "consent": {"training": "yes"}}))


def test_each_kind_of_bad_call_is_quarantined_with_its_reason(tmp_path: Path) -> None:
    source = tmp_path / "calls"
    write_call(source, "good")
    _write_bad_calls(source)
    store = _store(tmp_path)
    report = ingest(store, str(source), "train")
    assert report.ingested == ["good"]
    reasons = dict(report.quarantined)
    assert len(reasons) == len(BAD_CALLS)
    for name, expected in BAD_CALLS.items():
        assert expected in reasons[f"{name}.json"], (name, reasons[f"{name}.json"])
    kept = {item["item"] for item in store.quarantined("ingest")}
    assert kept == {f"{name}.json" for name in BAD_CALLS}
    # the original document is kept in quarantine (encrypted like raw data): nothing is lost
    reviewer = GovernedStore(store.root, store.audit, Actor(role="ml-engineer", purpose="qa-review", user="qa"))
    kept_file = reviewer.read_quarantined("ingest/malformed.json").files["malformed.json"]
    assert kept_file.startswith(b'{"call_id"')
    assert not (tmp_path / "zones/quarantine/ingest/malformed.json/malformed.json").exists()
    # a re-run does not quarantine the same files again
    assert ingest(store, str(source), "train").quarantined == []


def test_a_fixed_call_is_ingested_on_the_next_run(tmp_path: Path) -> None:
    source = tmp_path / "calls"
    write_call(source, "later-fixed", audio_bytes=b"")
    store = _store(tmp_path)
    assert ingest(store, str(source), "train").quarantined
    write_call(source, "later-fixed", started_at="2026-11-20T10:00:01+00:00")
    assert ingest(store, str(source), "train").ingested == ["later-fixed"]


def test_training_can_never_read_raw_and_the_denial_is_audited(tmp_path: Path) -> None:
    source = tmp_path / "calls"
    write_call(source, "c1")
    store = _store(tmp_path)
    ingest(store, str(source), "train")
    trainer = store.as_purpose("training")
    with pytest.raises(AccessDenied, match="may not read zone 'raw'"):
        list(trainer.read_raw(["c1"]))
    denied = [e for e in store.audit.entries() if e.outcome == "denied"]
    assert len(denied) == 1 and denied[0].purpose == "training" and denied[0].zone == "raw"
    assert store.audit.verify().ok
