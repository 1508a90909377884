"""Audio in and out, for every part of voiceloop: one sample rate, one resampler, two decoders.

``decode_16k`` (PyAV through faster-whisper, any format it reads, resampled to 16 kHz mono) is what
``voiceloop transcribe`` and ``voiceloop serve`` are handed, refused in the same words a person can
act on. ``decode_audio`` / ``encode_audio`` keep a stored file's own rate and container (libsndfile),
so redaction writes the redacted file as the raw one was. ``resample`` and ``to_16k`` are the one
resampling path (polyphase, exact ratios) that the simulator, redaction and training share.
"""

from __future__ import annotations

import gc
import io
import itertools
import math
import re
from dataclasses import dataclass
from typing import Any, BinaryIO

import numpy as np

SAMPLE_RATE = 16_000  # what the speech engine hears: every model and feature extractor in voiceloop
TELEPHONE_RATE = 8_000  # narrow-band telephone audio, as call stores keep it


def resample(audio: np.ndarray, rate: int, target: int = SAMPLE_RATE) -> np.ndarray:
    """Polyphase resampling of float samples (exact ratios: 22050 -> 16000, 8000 <-> 16000)."""
    from scipy.signal import resample_poly

    if rate == target:
        return np.asarray(audio, dtype=np.float32)
    g = math.gcd(rate, target)
    return resample_poly(audio, target // g, rate // g).astype(np.float32)


def mono(samples: np.ndarray) -> np.ndarray:
    """One channel: frames x channels averaged, mono returned as it is."""
    return samples.mean(axis=1) if samples.ndim > 1 else samples


def to_16k(samples: np.ndarray, sample_rate: int) -> np.ndarray:
    """Mono float32 at the speech engine's 16 kHz (channels averaged; 8 kHz telephone audio upsampled 2x)."""
    return resample(mono(samples), sample_rate)


@dataclass(frozen=True)
class Decoded:
    samples: np.ndarray  # float32, frames (x channels when not mono)
    sample_rate: int
    format: str  # soundfile's names ("WAV", "FLAC"), so the redacted file is written alike
    subtype: str


def decode_audio(data: bytes) -> Decoded:
    """Samples and container facts of an audio file's bytes (WAV, FLAC, anything libsndfile reads)."""
    import soundfile as sf

    with sf.SoundFile(io.BytesIO(data)) as handle:
        samples = handle.read(dtype="float32", always_2d=False)
        return Decoded(samples, handle.samplerate, handle.format, handle.subtype)


SILENCE_DBFS = -120.0  # what digital silence (all zeros) measures as: a finite floor, so it can be stored as JSON


def rms_dbfs(samples: np.ndarray) -> float:
    """A clip's loudness: RMS in dB relative to full scale (speech sits around -30 to -15, line noise
    below -50); an empty or all-zero clip gives :data:`SILENCE_DBFS`."""
    if samples.size == 0:
        return SILENCE_DBFS
    rms = float(np.sqrt(np.mean(np.square(samples, dtype=np.float64))))
    return round(max(SILENCE_DBFS, 20 * np.log10(rms)) if rms > 0 else SILENCE_DBFS, 1)


def encode_audio(samples: np.ndarray, sample_rate: int, format: str, subtype: str) -> bytes:
    """Bytes of ``samples`` in the given container/encoding (the raw file's own)."""
    import soundfile as sf

    buffer = io.BytesIO()
    sf.write(buffer, samples, sample_rate, format=format, subtype=subtype)
    return buffer.getvalue()


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


class AudioTooLong(ValueError):
    """The audio lasts longer than allowed: known from its header before decoding, or found while decoding."""

    def __init__(self, seconds: float, limit: float, declared: bool) -> None:
        self.seconds, self.limit, self.declared = seconds, limit, declared
        how = "its header declares" if declared else "decoding found over"
        super().__init__(f"{how} {seconds:.1f} s of audio, over the {limit:g} s allowed")


def _declared_seconds(container: Any, stream: Any) -> float | None:
    """The duration a file's header declares (None: it does not say)."""
    import av

    if container.duration is not None and container.duration > 0:
        return float(container.duration) / av.time_base
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    return None


def _decode_bounded(source: str | BinaryIO, max_seconds: float) -> np.ndarray:
    """Decode at most ``max_seconds`` of 16 kHz mono, frame by frame: refused from the header when it says
    more, else as soon as the decoded samples pass the limit, so memory never exceeds the limit's size
    (a small compressed file can hold hours of silence)."""
    import av

    limit = int(max_seconds * SAMPLE_RATE)
    chunks: list[np.ndarray] = []
    total = 0
    with av.open(source, mode="r", metadata_errors="ignore") as container:
        if not container.streams.audio:
            raise ValueError("no audio stream")
        stream = container.streams.audio[0]
        declared = _declared_seconds(container, stream)
        if declared is not None and declared > max_seconds:
            raise AudioTooLong(declared, max_seconds, declared=True)
        resampler = av.audio.resampler.AudioResampler(format="s16", layout="mono", rate=SAMPLE_RATE)
        frames: Any = container.decode(stream)
        for frame in itertools.chain(_frames(frames), [None]):  # lazily, frame by frame; None flushes
            for out in resampler.resample(frame):
                samples = out.to_ndarray().reshape(-1)
                total += samples.size
                if total > limit:
                    raise AudioTooLong(total / SAMPLE_RATE, max_seconds, declared=False)
                chunks.append(samples)
        del resampler
    gc.collect(0)  # the resampler's reference cycles (see _YoungGenerationGc)
    return np.concatenate(chunks).astype(np.float32) / 32768.0 if chunks else np.zeros(0, np.float32)


def _frames(frames: Any) -> Any:
    """Decoded frames, skipping the invalid ones PyAV raises on (as faster-whisper does)."""
    import av

    iterator = iter(frames)
    while True:
        try:
            yield next(iterator)
        except StopIteration:
            return
        except av.error.InvalidDataError:
            continue


def _decode_whole(source: str | BinaryIO) -> np.ndarray:
    from faster_whisper import audio as faster_whisper_audio
    from faster_whisper import decode_audio

    faster_whisper_audio.gc = _YoungGenerationGc  # type: ignore[assignment]
    return np.asarray(decode_audio(source, sampling_rate=SAMPLE_RATE), dtype=np.float32)


def decode_16k(source: str | BinaryIO, max_seconds: float | None = None) -> np.ndarray:
    """16 kHz mono float32 samples of a file path or file object; ValueError with a reason a person can act on.

    ``max_seconds``: refuse longer audio with :class:`AudioTooLong` without decoding more than that
    (what a server must do with uploads); None decodes everything.
    """
    try:
        audio = _decode_whole(source) if max_seconds is None else _decode_bounded(source, max_seconds)
    except AudioTooLong:
        raise
    except PermissionError:
        raise ValueError("permission denied") from None
    except Exception as err:  # PyAV raises its own error types for every kind of bad input
        raise ValueError(f"not an audio file PyAV can decode ({_reason(err)})") from None
    if audio.size == 0:
        raise ValueError("no audio samples in the file")
    return audio


def _reason(err: Exception) -> str:
    return re.sub(r"^\[Errno -?\d+\] ", "", str(err)).split(": '", 1)[0] or type(err).__name__


def word_json(word: Any, duration: float) -> dict[str, Any]:
    """A recognised word as JSON, its times clipped to the audio (cross-attention times can overshoot)."""
    start = round(min(max(word.start, 0.0), duration), 2)
    return {"word": word.text, "start": start, "end": round(min(max(word.end, start), duration), 2)}
