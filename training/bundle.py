"""A registry bundle loaded for serving: its ASR engine and its intent model.

A bundle is what the gate promoted (training/registry.py): exact component versions. Loading one
downloads its components from the registry and loads them whole before anything is served from
them, so a bundle is either fully there or not at all. A champion bundle without an ASR
component is served with the bundled base Whisper, as the gate compared it.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from core.asr import AsrEngine, Word
    from training.intent.predict import IntentModel
    from training.registry import BundleVersion, Registry


NO_SPEECH_DBFS = -60.0  # quieter audio holds no speech (validation.min_speech_dbfs, its default, for calls)


class NoIntentModel(LookupError):
    """Nothing to understand text with: no champion bundle yet."""


def has_speech(audio: np.ndarray) -> bool:
    """Whether there is anything to transcribe: Whisper writes words (often "Thank you.") on silence."""
    from core.audio import rms_dbfs

    return audio.size > 0 and rms_dbfs(audio) >= NO_SPEECH_DBFS


@dataclass
class ServedBundle:
    """Everything one request needs, loaded; requests keep the one they started with."""

    version: str | None  # None: no bundle in the registry yet (base ASR, no intent model)
    asr: AsrEngine
    asr_model: str  # "voiceloop-asr/3" or the bundled base model
    intent: IntentModel | None
    loaded_at: float = field(default_factory=time.time)

    def transcribe(self, audio: np.ndarray) -> tuple[str, list[Word]]:
        """Text and timed words of one 16 kHz utterance, as the gate scored this model (short windows);
        nothing for audio without speech (:func:`has_speech`)."""
        if not has_speech(audio):
            return "", []
        [(text, words)] = self.asr.transcribe_words_batch([audio], batch_size=1)
        return text, words

    def hear(self, audio: np.ndarray) -> str:
        """The text alone (no word times: the serving path does not need them, and they cost an extra pass)."""
        if not has_speech(audio):
            return ""
        [text] = self.asr.transcribe_batch([audio], batch_size=1)
        return text

    def understand(self, text: str) -> tuple[str, float]:
        """The intent of ``text`` and the model's probability for it."""
        if self.intent is None:
            raise NoIntentModel("no champion bundle yet: run `voiceloop retrain` so the gate promotes one")
        probabilities = self.intent.predict_proba([text])[0]
        best = int(np.argmax(probabilities))
        return self.intent.labels[best], float(probabilities[best])


def process(bundle: ServedBundle, redact: Callable[[str], Any], audio: np.ndarray) -> dict[str, Any]:
    """The serving path a voice bot calls at the end of an utterance: transcribe, redact, understand.

    The intent is read from the redacted transcript. ``text`` (unredacted) is for comparisons in
    memory only (shadow mode); the API leaves it out of every response. Audio without speech gets
    no intent (``speech`` false) instead of whatever the model makes of an empty text.
    """
    from core.audio import SAMPLE_RATE

    duration = round(audio.size / SAMPLE_RATE, 3)
    text = bundle.hear(audio)
    if not text.strip():
        return {"bundle": bundle.version, "transcript": "", "pii_types": [], "intent": None, "confidence": None,
                "duration_s": duration, "speech": False, "text": ""}
    redaction = redact(text)
    intent, confidence = bundle.understand(redaction.redacted)
    return {"bundle": bundle.version, "transcript": redaction.redacted,
            "pii_types": sorted({e.type for e in redaction.entities}), "intent": intent,
            "confidence": round(confidence, 4), "duration_s": duration, "speech": True, "text": text}


def process_seconds(bundle: ServedBundle, redact: Callable[[str], Any], audios: Sequence[np.ndarray]) -> list[float]:
    """Wall seconds of :func:`process` on each utterance, one after the other (the gate's latency evidence)."""
    seconds = []
    for audio in audios:
        started = time.perf_counter()
        process(bundle, redact, audio)
        seconds.append(time.perf_counter() - started)
    return seconds


def bundle_from_folders(version: str | None, asr_dir: Path | None, intent_dir: Path | None, window_s: float,
                        cpu_threads: int | None = None, asr_label: str | None = None,
                        device: str = "cpu") -> ServedBundle:
    """Load a bundle from local model folders (``asr_dir`` None: the bundled base Whisper), configured as
    serving runs it; the gate times a challenger loaded this way, so it is timed as it would serve.
    ``device``: where Whisper transcribes (CTranslate2's, core/device.py); the intent model stays on the CPU."""
    from core.asr import BUNDLED_MODEL, AsrEngine
    from training.asr.export import exported_window
    from training.intent.predict import IntentModel

    threads = cpu_threads or min(4, os.cpu_count() or 1)
    window = (exported_window(asr_dir) if asr_dir else None) or window_s
    asr = AsrEngine(str(asr_dir) if asr_dir else None, cpu_threads=threads, window_s=window, device=device)
    label = asr_label or (str(asr_dir) if asr_dir else BUNDLED_MODEL)
    return ServedBundle(version, asr, label, IntentModel.load(intent_dir) if intent_dir else None)


def load_bundle(registry: Registry, bundle: BundleVersion | None, work_dir: Path, window_s: float,
                cpu_threads: int | None = None, device: str = "cpu") -> ServedBundle:
    """Download and load ``bundle``'s components (None: the base ASR alone) into memory; Whisper on ``device``."""
    from core.asr import ct2_export_folder

    if bundle is None:
        return bundle_from_folders(None, None, None, window_s, cpu_threads, device=device)
    folder = work_dir / f"bundle-{bundle.version}"
    intent_dir = registry.download_component(bundle.intent_model, folder / "intent") if bundle.intent_model else None
    reference = bundle.components.get("asr")
    asr_dir = ct2_export_folder(registry.download_component(reference, folder / "asr"), f"ASR {reference}") \
        if reference else None
    return bundle_from_folders(bundle.version, asr_dir, intent_dir, window_s, cpu_threads, reference, device)
