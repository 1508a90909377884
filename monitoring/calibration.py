"""Calibrate the label-free estimates on the golden sets: the champion end to end, as production runs it.

The champion hears the golden set's redacted audio (its own ASR), the intent model reads its own
transcripts, and each golden turn gives a (confidence, correct) pair for the intent estimate and
(ASR features, word errors, reference words) for the WER estimate, with redacted spans taken out
of both transcripts. Where QA reviews have grown a production golden set (training/reviewed_labels.py:
blind reviews of production calls, never trained on), its turns join the synthetic ones, so the
estimators learn how the champion fares on production's own channels and voices (a new noisy channel
included, once its calls are reviewed). Fitted once per (champion, golden versions) and kept in the
monitoring zone with the golden calls' ids, so an erasure of a golden caller drops it and the next
run refits.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from core.compute import ShardMap, in_process
from core.redacted_text import without_placeholders
from governance.store import GovernedStore
from monitoring.champion import Champion, TurnAudio, hear_with_text
from monitoring.estimation import (
    WER_FEATURES,
    IntentCalibration,
    WerRegressor,
    fit_intent_calibration,
    fit_wer_regressor,
)
from monitoring.signals import HeardTurn
from training.datasets import ASR_GOLDEN, ASR_PRODUCTION_GOLDEN, INTENT_GOLDEN, INTENT_PRODUCTION_GOLDEN, open_version

MIN_TURNS = 30  # fewer golden turns than this: no estimate is better than a wild one
#: Bumped when the estimators change: a calibration kept under an older number is fitted again.
ESTIMATORS = 3
#: (audio set, intent labels of its turns): the synthetic golden set, then the production one where it exists.
GOLDEN_SETS = ((ASR_GOLDEN, INTENT_GOLDEN), (ASR_PRODUCTION_GOLDEN, INTENT_PRODUCTION_GOLDEN))


@dataclass(frozen=True)
class Calibration:
    """The fitted estimators of one champion on one golden version, and how well they did held out."""

    key: str
    bundle: str
    golden: str  # asr-golden@digest
    intent: IntentCalibration | None
    wer: WerRegressor | None
    turns: int

    def to_record(self, call_ids: list[str]) -> dict[str, Any]:
        return {"key": self.key, "bundle": self.bundle, "golden": self.golden, "turns": self.turns,
                "intent": self.intent.to_dict() if self.intent else None,
                "wer": self.wer.to_dict() if self.wer else None, "call_ids": call_ids}

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> Calibration:
        return cls(record["key"], record["bundle"], record["golden"],
                   IntentCalibration.from_dict(record["intent"]) if record.get("intent") else None,
                   WerRegressor.from_dict(record["wer"]) if record.get("wer") else None, record["turns"])


def turn_features(heard: HeardTurn | Any, duration_s: float) -> dict[str, float]:
    """The WER features of one turn (``monitoring.estimation.WER_FEATURES``), NaN where unknown."""
    def number(value: Any) -> float:
        return float(value) if value is not None else math.nan

    words = number(heard.words)
    return {"avg_logprob": number(heard.avg_logprob), "no_speech_prob": number(heard.no_speech_prob),
            "duration_s": duration_s, "words": words,
            "words_per_s": words / duration_s if duration_s > 0 and not math.isnan(words) else math.nan,
            "dbfs": number(heard.dbfs), "snr_db": number(heard.snr_db)}


def _newest(store: GovernedStore, name: str) -> tuple[str, tuple[str, ...]] | None:
    versions = [info for info in store.list_datasets() if info.name == name]
    if not versions:
        return None
    newest = max(versions, key=lambda info: info.published)
    return newest.digest, newest.call_ids


@dataclass(frozen=True)
class GoldenReadings:
    """The champion's end-to-end reading of each golden turn, as the estimators are fitted on it.

    Per turn: ``keys`` (``call_id:turn``), the ASR ``features`` (``WER_FEATURES``), word ``errors`` and
    ``ref_words`` against the reference (redacted spans out of both), the intent ``confidence`` and whether
    the intent was ``correct`` (None where the turn has no intent label or no confidence).
    """

    keys: list[str]
    features: dict[str, np.ndarray]
    errors: list[int]
    ref_words: list[int]
    confidence: list[float | None]
    correct: list[bool | None]

    @classmethod
    def joined(cls, parts: list[GoldenReadings]) -> GoldenReadings:
        """Several sets' readings as one (keys stay unique: they name call and turn)."""
        return cls([k for p in parts for k in p.keys],
                   {name: np.concatenate([p.features[name] for p in parts]) for name in WER_FEATURES},
                   [e for p in parts for e in p.errors], [w for p in parts for w in p.ref_words],
                   [c for p in parts for c in p.confidence], [ok for p in parts for ok in p.correct])

    def intent_rows(self) -> tuple[list[float], list[bool], list[str]]:
        """(confidence, correct, key) of the turns with both."""
        rows = [(c, ok, k) for c, ok, k in zip(self.confidence, self.correct, self.keys, strict=True)
                if c is not None and ok is not None]
        return [r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows]


def read_golden(store: GovernedStore, digest: str, champion: Champion, batch_size: int = 8,
                progress: Callable[[int, int], None] | None = None, audio_set: str = ASR_GOLDEN,
                intent_set: str = INTENT_GOLDEN, min_turns: int = MIN_TURNS,
                shards: ShardMap = in_process) -> GoldenReadings | None:
    """The champion hears version ``digest`` of ``audio_set`` (on ``shards``' workers when they are a cluster
    elsewhere) and reads its own transcripts, scored against the newest ``intent_set``'s labels; None under
    ``min_turns``."""
    from training.asr.finetune import GoldenAudio
    from training.asr.metrics import utterance_errors

    audio = GoldenAudio.load(open_version(store, audio_set, digest), digit_eval=0, clean_speech=False)
    if len(audio.audios) < max(min_turns, 1):
        return None
    labels: dict[tuple[str, int], str] = {}
    intent_golden = _newest(store, intent_set)
    if intent_golden is not None:
        data = open_version(store, intent_set, intent_golden[0]).load()
        labels = {(c, int(t)): y for c, t, y in zip(data["call_id"], data["turn"], data["intent"], strict=True)}
    turns = [TurnAudio(row["call_id"], int(row["turn"]), samples) for row, samples in zip(audio.rows, audio.audios,
                                                                                           strict=True)]
    heard = hear_with_text(champion, turns, batch_size, progress, shards)
    readings = [heard[(t.call_id, t.index)] for t in turns]
    errors = utterance_errors([without_placeholders(r) for r in audio.references],
                              [without_placeholders(text) for _h, text in readings])
    features = [turn_features(h, t.samples.size / 16000) for t, (h, _text) in zip(turns, readings, strict=True)]
    expected = [labels.get((t.call_id, t.index)) for t in turns]
    return GoldenReadings(
        [f"{t.call_id}:{t.index}" for t in turns],
        {name: np.array([f[name] for f in features]) for name in WER_FEATURES},
        [e.errors for e in errors], [e.ref_words for e in errors],
        [h.confidence for h, _text in readings],
        [None if y is None or h.confidence is None else h.intent == y for (h, _text), y in zip(readings, expected,
                                                                                               strict=True)])


def fit_estimators(readings: GoldenReadings) -> tuple[IntentCalibration | None, WerRegressor]:
    """The intent calibration (None under MIN_TURNS labelled turns) and the WER regressor, fitted on ``readings``."""
    wer = fit_wer_regressor(readings.features, readings.errors, readings.ref_words, readings.keys)
    confidence, correct, keys = readings.intent_rows()
    if len(keys) < MIN_TURNS or len(set(correct)) < 2:
        return None, wer
    row = {key: i for i, key in enumerate(readings.keys)}
    rows = [row[key] for key in keys]
    features = {name: values[rows] for name, values in readings.features.items()}
    return fit_intent_calibration(confidence, correct, keys, features), wer


def calibration_for(store: GovernedStore, version: str, champion: Callable[[], Champion], batch_size: int = 8,
                    progress: Callable[[int, int], None] | None = None,
                    shards: ShardMap = in_process) -> Calibration | None:
    """The calibration of champion ``version`` on the newest golden version: kept from an earlier run, or fitted
    now (``champion()`` loads the models only then; Whisper hears the golden turns on ``shards``' workers).

    None when there is no golden set with audio, or too few turns (the production golden set adds to the
    synthetic one, whatever its size); ``store`` acts for monitoring.
    """
    found = {name: newest for name, _ in GOLDEN_SETS if (newest := _newest(store, name)) is not None}
    if ASR_GOLDEN not in found:
        return None
    key = "-".join([version, *(found[name][0][:16] for name, _ in GOLDEN_SETS if name in found)]) + f"-e{ESTIMATORS}"
    kept = store.read_monitoring("calibration", [key])
    if key in kept:
        return Calibration.from_record(kept[key])
    heard_by = champion()
    parts = [read_golden(store, found[audio][0], heard_by, batch_size, progress, audio, intent,
                         MIN_TURNS if audio == ASR_GOLDEN else 1, shards)
             for audio, intent in GOLDEN_SETS if audio in found]
    if parts[0] is None:
        return None
    readings = GoldenReadings.joined([part for part in parts if part is not None])
    intent_fit, wer = fit_estimators(readings)
    golden = ", ".join(f"{name}@{found[name][0][:12]}" for name, _ in GOLDEN_SETS if name in found)
    calibration = Calibration(key, version, golden, intent_fit, wer, len(readings.keys))
    call_ids = sorted({c for name, _ in GOLDEN_SETS if name in found for c in found[name][1]})
    store.write_monitoring("calibration", {key: calibration.to_record(call_ids)})
    return calibration
