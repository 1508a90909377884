"""Real, clean recorded speech the ASR must not get worse on: the project's speech fixtures.

Retraining on contact-center calls can make Whisper forget speech unlike them. Five LibriVox
read-speech clips and one person reading digit strings (``data/sample/speech_fixtures``, real
recordings with reference transcripts; see data/sample/CREDITS.md) are transcribed by the
challenger and the champion alike, and the gate's ``clean_speech`` criterion compares their
word errors. Never trained on.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from core.audio import to_16k
from core.corpus import sample_dir

FIXTURES = "speech_fixtures"


@dataclass(frozen=True)
class CleanUtterance:
    name: str
    audio: np.ndarray  # float32 mono 16 kHz
    text: str


def clean_speech_set(folder: Path | None = None) -> list[CleanUtterance]:
    """Every ``*.wav`` under the fixtures folder that has a ``.txt`` reference beside it, by name."""
    root = sample_dir(folder) / FIXTURES
    clips = sorted(p for p in root.rglob("*.wav") if p.with_suffix(".txt").exists())
    if not clips:
        raise FileNotFoundError(f"{root} holds no .wav with a .txt reference: the fixtures ship in data/sample")
    out = []
    for path in clips:
        samples, rate = sf.read(str(path), dtype="float32")
        out.append(CleanUtterance(path.relative_to(root).as_posix(), to_16k(samples, rate),
                                  path.with_suffix(".txt").read_text(encoding="utf-8").strip()))
    return out
