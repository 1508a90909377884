"""Audio in, for every way voiceloop is handed it (files on the command line, uploads to the server).

One decoder (PyAV through faster-whisper, any format it reads, resampled to 16 kHz mono) and one
set of reasons a person can act on, so ``voiceloop transcribe`` and ``voiceloop serve`` refuse
bad audio in the same words.
"""

from __future__ import annotations

import gc
import re
from typing import Any, BinaryIO

import numpy as np

SAMPLE_RATE = 16_000


class _YoungGenerationGc:
    """What faster-whisper's ``decode_audio`` gets as its ``gc`` module: a generation-0 collection.

    It ends every call with a full ``gc.collect()`` to free the PyAV resampler's reference cycles
    (SYSTRAN/faster-whisper#390). In ``voiceloop serve``, a process holding torch, spaCy and MLflow,
    that full collection took ~400 ms of every /v1/transcribe call (py-spy: 54% of the server's
    samples, against 17 ms of decoding). The cycles were just made, so the youngest generation holds
    them and collecting it frees them at a fraction of the cost.
    """

    @staticmethod
    def collect(generation: int = 2) -> int:
        return gc.collect(0)


def decode_16k(source: str | BinaryIO) -> np.ndarray:
    """16 kHz mono float32 samples of a file path or file object; ValueError with a reason a person can act on."""
    from faster_whisper import audio as faster_whisper_audio
    from faster_whisper import decode_audio

    faster_whisper_audio.gc = _YoungGenerationGc  # type: ignore[assignment]

    try:
        audio = decode_audio(source, sampling_rate=SAMPLE_RATE)
    except PermissionError:
        raise ValueError("permission denied") from None
    except Exception as err:  # PyAV raises its own error types for every kind of bad input
        reason = re.sub(r"^\[Errno -?\d+\] ", "", str(err)).split(": '", 1)[0] or type(err).__name__
        raise ValueError(f"not an audio file PyAV can decode ({reason})") from None
    if audio.size == 0:
        raise ValueError("no audio samples in the file")
    return np.asarray(audio, dtype=np.float32)


def word_json(word: Any, duration: float) -> dict[str, Any]:
    """A recognised word as JSON, its times clipped to the audio (cross-attention times can overshoot)."""
    start = round(min(max(word.start, 0.0), duration), 2)
    return {"word": word.text, "start": start, "end": round(min(max(word.end, start), duration), 2)}
