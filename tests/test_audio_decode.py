"""Decoding uploads with a duration limit (core/audio.py): refused from the header, or while decoding when it lies."""

from __future__ import annotations

import io

import numpy as np
import pytest
import soundfile as sf

from core.audio import SAMPLE_RATE, AudioTooLong, decode_16k


def _flac(seconds: float, declared_samples: int | None = None) -> bytes:
    """A FLAC of a tone; ``declared_samples`` rewrites STREAMINFO's total-samples field (a header that lies)."""
    out = io.BytesIO()
    tone = (np.sin(np.arange(int(seconds * SAMPLE_RATE)) / 5) * 0.3).astype("float32")
    sf.write(out, tone, SAMPLE_RATE, format="FLAC")
    data = bytearray(out.getvalue())
    if declared_samples is not None:
        at = 4 + 4 + 10  # "fLaC", the block header, then block sizes and frame sizes; 64 bits: rate, channels,
        bits = int.from_bytes(data[at:at + 8], "big")  # bits per sample, and 36 bits of total samples
        data[at:at + 8] = ((bits & ~((1 << 36) - 1)) | declared_samples).to_bytes(8, "big")
    return bytes(data)


def test_a_limit_refuses_from_the_header_and_else_while_decoding() -> None:
    whole = decode_16k(io.BytesIO(_flac(5)), max_seconds=10)
    assert whole.size == 5 * SAMPLE_RATE
    assert np.array_equal(whole, decode_16k(io.BytesIO(_flac(5))))  # the same samples as without a limit
    with pytest.raises(AudioTooLong) as declared:
        decode_16k(io.BytesIO(_flac(5)), max_seconds=2)
    assert declared.value.declared and declared.value.seconds == pytest.approx(5.0)
    lying = _flac(10, declared_samples=SAMPLE_RATE)  # says 1 s, holds 10
    with pytest.raises(AudioTooLong) as found:
        decode_16k(io.BytesIO(lying), max_seconds=3)
    assert not found.value.declared and 3 < found.value.seconds < 4  # stopped just past the limit
    with pytest.raises(ValueError, match="PyAV"):
        decode_16k(io.BytesIO(b"not audio at all" * 50), max_seconds=3)
