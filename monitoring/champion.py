"""The champion as the monitor runs it: what it hears and understands in calls that carry no bot log.

The serving bundle's own path (transcribe in short windows, redact, understand the redacted text),
batched over every customer turn of many calls, keeping what label-free estimates read: Whisper's
confidence (average log-probability, no-speech probability), the word count, and the intent model's
top probability. Texts live only in memory here; :class:`~monitoring.signals.HeardTurn` holds none.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from core.asr_shards import engine_model, on_workers, transcribe_shards
from core.audio import SAMPLE_RATE, rms_dbfs
from core.compute import ShardMap, in_process
from monitoring.signals import HeardTurn

if TYPE_CHECKING:
    from core.settings import Settings
    from governance.redaction.redactor import Redactor
    from training.bundle import ServedBundle

BASE_BUNDLE = "base"  # no champion yet: the bundled Whisper alone, no intent model
_FRAME_S = 0.03
_DIGITAL_SILENCE_DBFS = -90.0


@dataclass
class Champion:
    bundle: ServedBundle
    redactor: Redactor

    @property
    def version(self) -> str:
        return self.bundle.version or BASE_BUNDLE


def champion_version(settings: Settings) -> str:
    """The bundle version the champion alias names (``base`` when there is none), without loading a model."""
    from training.registry import CHAMPION, Registry

    bundle = Registry(settings).by_alias(CHAMPION)
    return bundle.version if bundle else BASE_BUNDLE


def load_champion(settings: Settings, device: str | None = None) -> Champion:
    """The bundle the champion alias names, loaded as serving loads it (the base Whisper when there is none).

    ``device``: where Whisper transcribes (cpu or cuda; None: ``compute.device`` resolved for CTranslate2).
    """
    from core.device import ct2_device
    from governance.redaction.redactor import Redactor
    from training.bundle import load_bundle
    from training.registry import CHAMPION, Registry

    registry = Registry(settings)
    where = ct2_device(device or settings.compute.device).device
    bundle = load_bundle(registry, registry.by_alias(CHAMPION), settings.root / "work", settings.asr.window_s,
                         device=where)
    return Champion(bundle, Redactor(settings.redaction, entities=settings.redaction.entities))


@dataclass(frozen=True)
class TurnAudio:
    """One customer turn to hear: where it comes from (call, turn index) and its 16 kHz samples."""

    call_id: str
    index: int
    samples: np.ndarray


def turn_audio(call: dict[str, Any], samples: np.ndarray, before_s: float = float("inf")) -> list[TurnAudio]:
    """The customer turns of a call (16 kHz samples of the whole call) that start before ``before_s``."""
    return [TurnAudio(call["call_id"], turn["index"],
                      samples[int(turn["start_s"] * SAMPLE_RATE):int(turn["end_s"] * SAMPLE_RATE)])
            for turn in call["turns"] if turn["speaker"] == "customer" and turn["start_s"] < before_s]


def hear(champion: Champion, turns: list[TurnAudio], batch_size: int = 8,
         progress: Callable[[int, int], None] | None = None,
         shards: ShardMap = in_process) -> dict[tuple[str, int], HeardTurn]:
    """The champion's reading of each turn, by (call id, turn index); turns without speech are read as silent.
    Whisper hears them on ``shards``' workers when they are a cluster elsewhere (core/asr_shards.py), with the
    same results."""
    return {key: heard for key, (heard, _text) in hear_with_text(champion, turns, batch_size, progress,
                                                                 shards).items()}


def hear_with_text(champion: Champion, turns: list[TurnAudio], batch_size: int = 8,
                   progress: Callable[[int, int], None] | None = None,
                   shards: ShardMap = in_process) -> dict[tuple[str, int], tuple[HeardTurn, str]]:
    """:func:`hear` plus each turn's redacted transcript, for calibration on the golden set (memory only)."""
    from training.bundle import has_speech

    spoken = [t for t in turns if has_speech(t.samples)]
    asr = champion.bundle.asr
    audios = [t.samples for t in spoken]
    heard = (transcribe_shards(shards, engine_model(asr), audios, batch_size, asr.window_s, asr.compute_type, progress)
             if on_workers(shards, asr.device) else
             asr.transcribe_scored_batch(audios, batch_size=batch_size, progress=progress))
    redacted = [champion.redactor.redact(h.text).redacted if h.text.strip() else "" for h in heard]
    intents: list[tuple[str | None, float | None]] = [(None, None)] * len(spoken)
    model = champion.bundle.intent
    texts = [i for i, text in enumerate(redacted) if text.strip()]
    if model is not None and texts:
        probabilities = model.predict_proba([redacted[i] for i in texts])
        for i, row in zip(texts, probabilities, strict=True):
            best = int(np.argmax(row))
            intents[i] = (model.labels[best], round(float(row[best]), 5))
    out = {(t.call_id, t.index): (HeardTurn(None, None, 0.0, 1.0, 0, champion.version, *_levels(t.samples)), "")
           for t in turns}
    for turn, h, text, (intent, confidence) in zip(spoken, heard, redacted, intents, strict=True):
        out[(turn.call_id, turn.index)] = (HeardTurn(intent, confidence, round(h.avg_logprob, 5),
                                                     round(h.no_speech_prob, 5), len(text.split()), champion.version,
                                                     *_levels(turn.samples)), text)
    return out


def _levels(samples: np.ndarray) -> tuple[float | None, float | None]:
    """A turn's level (dBFS) and blind SNR estimate, measured on the audio the champion heard."""
    return (round(rms_dbfs(samples), 2) if samples.size else None), snr_estimate(samples)


def snr_estimate(samples: np.ndarray) -> float | None:
    """A blind SNR estimate (dB): loud frames (speech) against quiet ones (the line's noise floor).

    The 90th against the 10th percentile of 30 ms frame levels: crude, but it moves with added line noise,
    which is what a new noisy channel does, and needs no reference signal.
    """
    frame = int(_FRAME_S * SAMPLE_RATE)
    if samples.size < 5 * frame:
        return None
    frames = samples[: samples.size // frame * frame].reshape(-1, frame)
    levels = np.array([rms_dbfs(f) for f in frames])
    levels = levels[levels > _DIGITAL_SILENCE_DBFS]  # spans redaction silenced are no line noise
    if levels.size < 5:
        return None
    return round(float(np.percentile(levels, 90) - np.percentile(levels, 10)), 2)
