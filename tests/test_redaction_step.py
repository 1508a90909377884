"""The redaction step on whole calls: PII removed, planted leaks quarantined, broken redaction stops the batch."""

from __future__ import annotations

import hashlib
import io
import json
import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from core.settings import RedactionConfig
from governance.audit import Actor, AuditLog
from governance.ingest import ingest
from governance.redaction.calls import RedactionBroken, redact_calls, redact_pending
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


def test_a_changed_call_is_redacted_again_and_a_touched_one_is_not(tmp_path: Path) -> None:
    """A fixed transcript or a corrected recording replaces the redacted call made from the old version."""
    source = tmp_path / "calls"
    path = write_call(source, "fixed")
    audit = AuditLog(f"sqlite:///{tmp_path / 'audit.db'}")
    store = GovernedStore(tmp_path / "zones", audit, Actor(role="pipeline", purpose="ingest", user="t"))
    redactor = store.as_purpose("redaction")
    config = RedactionConfig()
    assert ingest(store, str(source), "train").ingested == ["fixed"]
    assert redact_pending(redactor, config).calls == ["fixed"]
    assert redact_pending(redactor, config).calls == []

    document = json.loads(path.read_text())
    document["turns"][1]["text"] = "my new card has still not arrived"
    path.write_text(json.dumps(document))
    assert ingest(store, str(source), "train").ingested == ["fixed"]
    assert redact_pending(redactor, config).calls == ["fixed"]
    [redacted] = store.as_purpose("validation").read_redacted(["fixed"])
    assert redacted["turns"][1]["text"] == "my new card has still not arrived"

    audio = source / "audio" / "fixed.wav"  # corrected recording, same JSON
    t = np.arange(32000) / 16000
    buffer = io.BytesIO()
    sf.write(buffer, 0.2 * np.sin(2 * np.pi * 220 * t), 16000, format="WAV", subtype="PCM_16")
    audio.write_bytes(buffer.getvalue())
    assert ingest(store, str(source), "train").ingested == ["fixed"]
    assert redact_pending(redactor, config).calls == ["fixed"]
    [redacted] = store.as_purpose("validation").read_redacted(["fixed"])
    assert redacted["audio"]["sha256"] == hashlib.sha256(buffer.getvalue()).hexdigest()

    stat = audio.stat()  # touched, not changed: read once more, recognised, nothing rewritten or redone
    os.utime(audio, (stat.st_atime + 60, stat.st_mtime + 60))
    again = ingest(store, str(source), "train")
    assert again.ingested == [] and again.already_seen == 1
    assert redact_pending(redactor, config).calls == []
