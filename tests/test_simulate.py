"""The demo-corpus simulator, end to end: espeak-ng + sox + FSDD + real faster-whisper, no mocks."""

from __future__ import annotations

import csv
import json
from datetime import UTC, datetime
from pathlib import Path

import soundfile as sf

from core.corpus import SAMPLE_DIR
from governance.contract import parse_call
from voiceloop.simulate.calls import build_calls
from voiceloop.simulate.plan import GOLDEN_VOICE, TRAIN_VOICES, plan_calls

RATES = {"clean16k": 16000, "telephone8k": 8000}


def _texts(split: str) -> set[str]:
    with (SAMPLE_DIR / "banking77" / f"{split}.csv").open(newline="", encoding="utf-8") as handle:
        return {" ".join(row["text"].split()) for row in csv.DictReader(handle)}


def _intents() -> set[str]:
    return set(json.loads((SAMPLE_DIR / "banking77" / "categories.json").read_text()))


def _check_store(store: Path, split: str) -> list[dict]:
    documents = []
    for path in sorted(store.glob("*.json")):
        document = json.loads(path.read_text())
        record = parse_call(document, str(path))
        audio = store / record.audio
        assert audio.is_file()
        info = sf.info(audio)
        meta = document["meta"]
        assert info.samplerate == RATES[meta["channel"]] == meta["sample_rate"]
        assert info.channels == 1 and info.subtype == "PCM_16"
        assert meta["split"] == split and meta["source"] == "voiceloop-simulator"
        assert (meta["snr_db"] is None) == (meta["channel"] == "clean16k")
        assert isinstance(document["consent"]["training"], bool)
        assert record.turns[0].speaker == "bot"
        previous_end = 0.0
        for turn in record.turns:
            assert previous_end <= turn.start_s < turn.end_s <= info.duration
            previous_end = turn.end_s
        customer = [i for i, t in enumerate(record.turns) if t.speaker == "customer"]
        assert customer and sorted(label.turn for label in record.labels) == customer
        for label, raw in zip(record.labels, document["labels"], strict=True):
            assert label.transcript
            assert label.intent is None or label.intent in _intents()
            for span in raw["pii"]:
                assert 0 <= span["start"] < span["end"] <= len(label.transcript)
        assert any(label.intent for label in record.labels)
        documents.append(document)
    return documents


def test_train_and_golden_calls(tmp_path: Path) -> None:
    seen: list[tuple[int, ...]] = []
    train_report = build_calls(
        tmp_path / "train", 1, split="train", seed=7, telephone_rate=1.0, progress=lambda *p: seen.append(p)
    )
    golden_report = build_calls(tmp_path / "golden", 1, split="golden", seed=7, telephone_rate=0.0, workers=1)
    assert seen[-1] == (1, 1)
    assert train_report.calls == golden_report.calls == 1
    assert train_report.customer_turns >= 1 and train_report.audio_seconds > 0

    train = _check_store(tmp_path / "train", "train")
    golden = _check_store(tmp_path / "golden", "golden")
    assert [d["meta"]["channel"] for d in train] == ["telephone8k"]
    assert [d["meta"]["channel"] for d in golden] == ["clean16k"]
    assert all(d["call_id"].startswith("call-train-s7-") for d in train)
    assert all(d["call_id"].startswith("call-golden-s7-") for d in golden)

    # Golden: BANKING77 test utterances only, and a voice that train never uses.
    test_texts, train_texts = _texts("test"), _texts("train")
    for documents, split, texts in ((golden, "test", test_texts), (train, "train", train_texts)):
        for document in documents:
            for label in document["labels"]:
                if label["intent"]:
                    assert label["source"].startswith(f"banking77/{split}.csv#")
                    assert any(label["transcript"].startswith(t) for t in texts)
    golden_voices = {d["meta"]["voice"] for d in golden}
    assert golden_voices == {GOLDEN_VOICE}
    assert golden_voices.isdisjoint(TRAIN_VOICES)
    assert golden_voices.isdisjoint(d["meta"]["voice"] for d in train)
    assert GOLDEN_VOICE.split("+")[0] not in {v.split("+")[0] for v in TRAIN_VOICES}


def test_plans_are_deterministic_and_cover_intents() -> None:
    now = datetime(2026, 11, 23, tzinfo=UTC)
    first = plan_calls(6, split="train", seed=3, now=now)
    assert first == plan_calls(6, split="train", seed=3, now=now)
    other = plan_calls(6, split="train", seed=4, now=now)
    assert {p.call_id for p in first}.isdisjoint(p.call_id for p in other)
    starts = [datetime.fromisoformat(p.started_at) for p in first]
    assert starts == sorted(starts) and all(s < now for s in starts)

    golden = plan_calls(0, split="golden", seed=0, per_intent=2, now=now)
    counts: dict[str, int] = {}
    for plan in golden:
        assert plan.voice == GOLDEN_VOICE and plan.digit_speaker == "nicolas"
        for turn in plan.turns:
            if turn.intent:
                assert turn.source is not None and turn.source.startswith("banking77/test.csv#")
                counts[turn.intent] = counts.get(turn.intent, 0) + 1
    assert set(counts) == _intents() and min(counts.values()) >= 2
