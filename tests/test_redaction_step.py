"""The redaction step on whole calls: PII removed, planted leaks quarantined, broken redaction stops the batch."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from core.settings import RedactionConfig
from governance.audit import Actor, AuditLog
from governance.ingest import ingest
from governance.redaction.calls import RedactionBroken, redact_calls
from governance.store import GovernedStore
from tests.conftest import write_call

SPOKEN_PHONE = "my number is four one five five five five zero one three four"


def _ingested(tmp_path: Path) -> GovernedStore:
    source = tmp_path / "calls"
    turns = [
        {"speaker": "bot", "start_s": 0.0, "end_s": 0.5, "text": "how can I help"},
        {"speaker": "customer", "start_s": 0.6, "end_s": 1.2, "text": "I am still waiting on my card"},
        {"speaker": "customer", "start_s": 1.3, "end_s": 1.9, "text": SPOKEN_PHONE},
    ]
    write_call(source, "with-pii", turns=turns,
               labels=[{"turn": 1, "transcript": "I am still waiting on my card?", "intent": "card_arrival"},
                       {"turn": 2, "transcript": SPOKEN_PHONE, "intent": None}])
    write_call(source, "clean")
    audit = AuditLog(f"sqlite:///{tmp_path / 'audit.db'}")
    store = GovernedStore(tmp_path / "zones", audit, Actor(role="pipeline", purpose="ingest", user="t"))
    assert len(ingest(store, str(source), "train").ingested) == 2
    return store.as_purpose("redaction")


def test_spoken_pii_is_redacted_and_caller_pseudonymised(tmp_path: Path) -> None:
    store = _ingested(tmp_path)
    report = redact_calls(store, ["clean", "with-pii"], RedactionConfig())
    assert report.leaks == [] and sorted(report.calls) == ["clean", "with-pii"]
    stored = (tmp_path / "zones/redacted/with-pii.json").read_text()
    assert "four one five" not in stored and "caller-with-pii" not in stored
    turn = json.loads(stored)["turns"][2]
    assert "<" in turn["text"] and turn["pii_types"]
    # raw index and redacted document carry the same pseudonym: erasure finds the caller in both zones
    ref = store.caller_ref("caller-with-pii")
    assert json.loads(stored)["caller_ref"] == store.raw_index()["with-pii"].caller_ref == ref
    eraser = GovernedStore(store.root, store.audit, Actor(role="compliance-officer", purpose="erasure", user="t"))
    footprint = eraser.calls_of_caller(ref)
    assert footprint.raw == footprint.redacted == ("with-pii",)
    # the audio went through audio redaction into the redacted zone; the raw audio is untouched
    assert report.audio.calls == ["clean", "with-pii"] and report.audio.quarantined == []
    raw_audio = next(store.read_raw(["with-pii"])).audio
    assert store.as_purpose("training").read_redacted_audio("with-pii")
    assert next(store.read_raw(["with-pii"])).audio == raw_audio


def test_a_planted_leak_is_quarantined_by_the_independent_check(tmp_path: Path) -> None:
    store = _ingested(tmp_path)
    broken = RedactionConfig(entities=["PERSON"], leak_max_share=1.0)  # phone numbers slip through
    report = redact_calls(store, ["clean", "with-pii"], broken)
    assert [(call, turn) for call, turn, _ in report.leaks] == [("with-pii", 2)]
    document = json.loads((tmp_path / "zones/redacted/with-pii.json").read_text())
    assert [t["index"] for t in document["turns"]] == [0, 1] and document["quarantined_turns"] == 1
    [reason] = store.quarantined("redaction")
    assert reason["call_id"] == "with-pii" and "turn 2" in reason["reason"]
    assert "four" not in reason["reason"]  # the reason names the entity type, never the value


def test_too_many_leaks_fail_the_batch_before_anything_is_written(tmp_path: Path) -> None:
    store = _ingested(tmp_path)
    with pytest.raises(RedactionBroken, match="still hold PII"):
        redact_calls(store, ["clean", "with-pii"], RedactionConfig(entities=["PERSON"], leak_max_share=0.0))
    assert store.redacted_call_ids() == set()
