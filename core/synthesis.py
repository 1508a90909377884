"""Audio building blocks: espeak-ng speech, real FSDD digit recordings, and the line they travel over.

Everything is float32 mono at 16 kHz until the channel: ``clean16k`` stays 16 kHz 16-bit PCM;
``telephone8k`` goes through what a phone call does to a voice (8 kHz, the 300-3400 Hz band,
line noise at a chosen SNR, a G.711 mu-law round trip) and is stored as 8 kHz 16-bit PCM, which
soundfile reads. ``gsm-noisy8k`` is the same line through a mobile network's GSM full-rate codec
(13 kbit/s, far lossier than mu-law), meant for heavy noise: the channel a production drift adds.
sox does the signal processing; the noise comes from a seeded numpy generator so the same plan
always gives the same bytes.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Literal

import numpy as np
import soundfile as sf

from core.audio import SAMPLE_RATE, TELEPHONE_RATE, resample

Channel = Literal["clean16k", "telephone8k", "gsm-noisy8k"]  # what a call travelled over: see telephone()
Codec = Literal["mu-law", "gsm-full-rate"]  # sox's encoding names
CODECS: dict[Channel, Codec] = {"telephone8k": "mu-law", "gsm-noisy8k": "gsm-full-rate"}  # the 8 kHz channels

TARGET_RMS = 0.08  # about -22 dBFS: every turn is levelled to this before mixing
PEAK = 0.89


class ToolMissing(RuntimeError):
    """espeak-ng or sox is not installed."""


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise ToolMissing(f"{name} is not installed; on Debian/Ubuntu: apt-get install espeak-ng sox")
    return path


def _run(cmd: list[str], text: str | None = None) -> None:
    result = subprocess.run(
        cmd, input=text.encode() if text is not None else None, capture_output=True, check=False
    )
    if result.returncode != 0:
        raise RuntimeError(
            f"{Path(cmd[0]).name} failed ({result.returncode}): {result.stderr.decode()[-300:]}"
        )


def check_voices(voices: set[str]) -> None:
    """Fail before any work if espeak-ng lacks a voice the plan needs (the part before ``+``)."""
    result = subprocess.run([_tool("espeak-ng"), "--voices=en"], capture_output=True, text=True, check=False)
    known = {line.split()[1] for line in result.stdout.splitlines()[1:] if len(line.split()) > 1}
    missing = sorted({v.split("+")[0] for v in voices} - known)
    if missing:
        raise ToolMissing(f"espeak-ng has no voice {', '.join(missing)} (see `espeak-ng --voices=en`)")


def trim(audio: np.ndarray, threshold: float = 0.01, margin_s: float = 0.03) -> np.ndarray:
    """Cut leading and trailing near-silence, so turn timings sit on the speech."""
    loud = np.flatnonzero(np.abs(audio) > threshold * max(float(np.abs(audio).max(initial=0.0)), 1e-9))
    if loud.size == 0:
        return audio[:0]
    margin = int(margin_s * SAMPLE_RATE)
    return audio[max(loud[0] - margin, 0) : loud[-1] + margin + 1]


def level(audio: np.ndarray, rms: float = TARGET_RMS) -> np.ndarray:
    """Scale to a target RMS, never past the peak limit."""
    current = float(np.sqrt(np.mean(np.square(audio, dtype=np.float64)))) if audio.size else 0.0
    if current <= 0:
        return audio
    gain = min(rms / current, PEAK / float(np.abs(audio).max()))
    return (audio * gain).astype(np.float32)


def tts(text: str, voice: str, rate_wpm: int, pitch: int, workdir: Path) -> np.ndarray:
    """espeak-ng speech for ``text`` at 16 kHz (espeak-ng writes 22.05 kHz)."""
    wav = workdir / "tts.wav"
    _run([_tool("espeak-ng"), "-v", voice, "-s", str(rate_wpm), "-p", str(pitch), "-w", str(wav)], text)
    audio, rate = sf.read(wav, dtype="float32", always_2d=False)
    return trim(resample(audio, rate))


def fsdd_digits(paths: list[Path], gaps_s: list[float]) -> np.ndarray:
    """Real recorded digits, each trimmed and levelled, joined by the given pauses."""
    parts: list[np.ndarray] = []
    for i, path in enumerate(paths):
        audio, rate = sf.read(path, dtype="float32", always_2d=False)
        if i:
            parts.append(np.zeros(int(gaps_s[i - 1] * SAMPLE_RATE), dtype=np.float32))
        parts.append(level(trim(resample(audio, rate))))
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.float32)


def telephone(
    audio: np.ndarray,
    speech: list[tuple[int, int]],
    snr_db: float,
    seed: int,
    workdir: Path,
    codec: Codec = "mu-law",
) -> np.ndarray:
    """16 kHz clean -> 8 kHz telephone: band-pass, white line noise at ``snr_db``, a ``codec`` round trip.

    ``speech`` holds (start, end) sample ranges at 16 kHz; the SNR is measured over them only,
    so pauses do not dilute the speech power. The result has exactly half the input's samples.
    """
    sox = _tool("sox")
    src, band, noisy, coded, out = (workdir / f"{n}.wav" for n in ("src", "band", "noisy", "coded", "out"))
    sf.write(src, audio, SAMPLE_RATE, subtype="FLOAT")
    _run([sox, "-V1", "-R", "-D", str(src), str(band), "sinc", "300-3400", "rate", "-v", str(TELEPHONE_RATE)])
    line, _ = sf.read(band, dtype="float32", always_2d=False)
    active = np.concatenate([line[a // 2 : b // 2] for a, b in speech]) if speech else line
    power = float(np.mean(np.square(active, dtype=np.float64))) if active.size else 0.0
    noise = np.random.default_rng(seed).standard_normal(line.size) * np.sqrt(power / 10 ** (snr_db / 10))
    mixed = line + noise.astype(np.float32)
    mixed *= min(1.0, PEAK / max(float(np.abs(mixed).max()), 1e-9))
    sf.write(noisy, mixed, TELEPHONE_RATE, subtype="FLOAT")
    bits = ["-b", "8"] if codec == "mu-law" else []  # GSM has no sample size to choose
    _run([sox, "-V1", "-R", "-D", str(noisy), "-e", codec, *bits, str(coded)])
    _run([sox, "-V1", "-R", "-D", str(coded), "-e", "signed-integer", "-b", "16", str(out)])
    result, _ = sf.read(out, dtype="float32", always_2d=False)
    if result.size != line.size:  # GSM codes whole 20 ms frames: the end comes back padded
        result = np.pad(result[: line.size], (0, max(line.size - result.size, 0)))
    return result


def scratch() -> tempfile.TemporaryDirectory[str]:
    """A private folder for one call's intermediate files."""
    return tempfile.TemporaryDirectory(prefix="voiceloop-sim-")
