"""Audio in, for every way voiceloop is handed it (files on the command line, uploads to the server).

One decoder (PyAV through faster-whisper, any format it reads, resampled to 16 kHz mono) and one
set of reasons a person can act on, so ``voiceloop transcribe`` and ``voiceloop serve`` refuse
bad audio in the same words.
"""

from __future__ import annotations

import re
from typing import Any, BinaryIO

import numpy as np

SAMPLE_RATE = 16_000


def decode_16k(source: str | BinaryIO) -> np.ndarray:
    """16 kHz mono float32 samples of a file path or file object; ValueError with a reason a person can act on."""
    from faster_whisper import decode_audio

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
