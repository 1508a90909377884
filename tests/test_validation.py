"""The Great Expectations suite on rows that break it: each expectation, alone, quarantines its row by name.

Every expectation of :func:`governance.validation.build_suite` has a case here (a test checks the
cases cover the suite, so an expectation added later without one fails), first on turn rows, then
end to end through the store: a redacted call per broken rule, validated, quarantined with the
expectation's name, and only the good call left for the datasets.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import soundfile as sf

from core.audio import SILENCE_DBFS
from core.corpus import intent_names
from core.settings import RedactionConfig, ValidationConfig
from governance.audit import Actor, AuditLog
from governance.ingest import ingest
from governance.redaction.calls import redact_calls
from governance.store import GovernedStore
from governance.validation import ROW_ID, build_suite, expectation_name, validate_redacted, validate_turns
from tests.conftest import write_call

CONFIG = ValidationConfig()
GOOD_TURN = {"index": 1, "speaker": "customer", "start_s": 0.5, "end_s": 1.5, "text": "my card has not arrived",
             "transcript": "my card has not arrived", "intent": "card_arrival", "speech_dbfs": -24.0}
GOOD_AUDIO = {"sample_rate": 16000, "channels": 1, "duration_s": 2.0}

# expectation name -> how a turn row breaks it (row fields), and whether a redacted call can carry it
BREAKS: dict[str, dict[str, Any]] = {
    "expect_column_values_to_not_be_null(call_id)": {"call_id": None},
    "expect_column_values_to_not_be_null(speaker)": {"speaker": None},
    "expect_column_values_to_not_be_null(text)": {"text": None},
    "expect_column_values_to_not_be_null(sample_rate)": {"sample_rate": None},
    "expect_column_values_to_not_be_null(duration_s)": {"duration_s": None},
    "expect_column_values_to_be_in_set(speaker)": {"speaker": "robot"},
    "expect_column_values_to_be_in_set(sample_rate)": {"sample_rate": 44100},
    "expect_column_values_to_be_between(channels)": {"channels": 6},
    "expect_column_values_to_be_between(duration_s)": {"duration_s": 0.1, "end_s": 0.09, "start_s": 0.0},
    "expect_column_pair_values_a_to_be_greater_than_b(end_s>start_s)": {"start_s": 1.5, "end_s": 1.0},
    "expect_column_values_to_be_between(audio_end_margin_s)": {"end_s": 9.0},
    "expect_column_value_lengths_to_be_between(text)": {"text": "x" * (CONFIG.max_chars + 1)},
    "expect_column_values_to_be_in_set(intent)": {"intent": "order_pizza"},
    "expect_column_values_to_be_between(speech_dbfs)": {"speech_dbfs": -120.0},  # text over digital silence
    "expect_column_values_to_be_in_set(split)": {"split": "dev"},
}


def _row(name: str, **changes: Any) -> dict[str, Any]:
    turn = {**GOOD_TURN, **{k: v for k, v in changes.items() if k in GOOD_TURN}}
    audio = {**GOOD_AUDIO, **{k: v for k, v in changes.items() if k in GOOD_AUDIO}}
    return {"call_id": changes.get("call_id", name), "turn": turn["index"], "speaker": turn["speaker"],
            "text": turn["text"], "transcript": turn["transcript"], "intent": turn["intent"],
            "start_s": turn["start_s"], "end_s": turn["end_s"], "speech_dbfs": turn["speech_dbfs"], **audio,
            "audio_end_margin_s": audio["duration_s"] + 0.5 - turn["end_s"] if audio["duration_s"] else 0.5,
            "split": changes.get("split", "train"), "voice": None, "channel": None, "snr_db": None}


def _suite_names() -> set[str]:
    return {expectation_name(e.configuration) for e in build_suite(CONFIG, list(intent_names()))}


def test_every_expectation_of_the_suite_has_a_breaking_case() -> None:
    assert set(BREAKS) == _suite_names()


def test_each_broken_row_fails_its_expectation_and_the_good_row_passes() -> None:
    rows = [_row("good")] + [_row(f"row-{i}", **change) for i, change in enumerate(BREAKS.values())]
    frame = pd.DataFrame(rows)
    frame[ROW_ID] = range(len(frame))
    report = validate_turns(frame, CONFIG, list(intent_names()))
    assert list(report.passed["call_id"]) == ["good"]
    for row_id, name in enumerate(BREAKS, start=1):
        assert name in report.failures[row_id], (name, report.failures.get(row_id))


def _document(call_id: str, change: dict[str, Any]) -> dict[str, Any]:
    turn = {**GOOD_TURN, **{k: v for k, v in change.items() if k in GOOD_TURN}}
    audio = {**GOOD_AUDIO, **{k: v for k, v in change.items() if k in GOOD_AUDIO}}
    return {"call_id": call_id, "started_at": "2026-11-20T10:00:00+00:00", "caller_ref": "ref", "split":
            change.get("split", "train"), "consent_training": True, "meta": {}, "audio": audio,
            "raw_digest": "d", "turns": [turn]}


def test_through_the_store_each_broken_call_is_quarantined_with_the_expectation_name(tmp_path: Path) -> None:
    audit = AuditLog(f"sqlite:///{tmp_path / 'audit.db'}")
    store = GovernedStore(tmp_path / "zones", audit, Actor(role="pipeline", purpose="redaction", user="t"))
    carried = {name: change for name, change in BREAKS.items() if "call_id" not in change}  # names the file
    names = {f"broken-{i}": name for i, name in enumerate(carried)}
    store.write_redacted([_document("good", {})] + [_document(cid, carried[name]) for cid, name in names.items()])

    report = validate_redacted(store.as_purpose("validation"), CONFIG)
    assert list(report.passed["call_id"]) == ["good"]
    reasons = {item["item"]: item["reason"] for item in store.quarantined("validation")}
    assert set(reasons) == {f"{cid}.turn1" for cid in names}
    for call_id, name in names.items():
        assert name in reasons[f"{call_id}.turn1"], (name, reasons[f"{call_id}.turn1"])
    # a re-run quarantines nothing twice
    validate_redacted(store.as_purpose("validation"), CONFIG)
    assert len(store.quarantined("validation")) == len(names)


def test_a_customer_turn_with_text_over_silence_is_quarantined(tmp_path: Path) -> None:
    """3 s of digital silence under a customer turn with text: measured at ingest on the raw audio, kept on the
    redacted turn, quarantined by validation; the loud turn of the same call goes on."""
    rate = 16000
    tone = 0.1 * np.sin(2 * np.pi * 440 * np.arange(rate) / rate)
    buffer = io.BytesIO()
    sf.write(buffer, np.concatenate([tone, np.zeros(3 * rate)]), rate, format="WAV", subtype="PCM_16")
    turns = [{"speaker": "customer", "start_s": 0.0, "end_s": 0.9, "text": "hello there"},
             {"speaker": "customer", "start_s": 1.0, "end_s": 4.0, "text": "my card has not arrived"}]
    write_call(tmp_path / "calls", "silent", turns=turns, audio_bytes=buffer.getvalue())
    audit = AuditLog(f"sqlite:///{tmp_path / 'audit.db'}")
    store = GovernedStore(tmp_path / "zones", audit, Actor(role="pipeline", purpose="ingest", user="t"))
    assert ingest(store, str(tmp_path / "calls"), "train").ingested == ["silent"]
    redact_calls(store.as_purpose("redaction"), ["silent"], RedactionConfig(audio={"enabled": False}))

    validator = store.as_purpose("validation")
    [document] = validator.read_redacted(["silent"])
    loud, silent = (turn["speech_dbfs"] for turn in document["turns"])
    assert loud > CONFIG.min_speech_dbfs and silent == SILENCE_DBFS
    report = validate_redacted(validator, CONFIG)
    assert list(report.passed["turn"]) == [0]
    [item] = store.quarantined("validation")
    assert item["item"] == "silent.turn1" and "expect_column_values_to_be_between(speech_dbfs)" in item["reason"]
