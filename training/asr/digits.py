"""A spoken-digit corpus for ASR retraining and its held-out evaluation set, with no caller data.

Callers read account numbers digit by digit, and that is where Whisper tiny.en fails most. The
material here is the repository's own sample (``data/sample/fsdd``: real FSDD recordings, 8 kHz,
speakers george, jackson, lucas, nicolas, takes 0-9 of every digit) and espeak-ng speech, built
with the call simulator's own building blocks (:mod:`core.synthesis`: trimming,
levelling, resampling, the telephone channel), so no transcript or audio of a call is used.

Disjointness, so the evaluation measures generalisation:

* training (:func:`digit_corpus`): FSDD speakers george, jackson and lucas, takes 0-4 only
  (the simulator reads train-call account numbers with their takes 5-9), plus espeak-ng strings
  in the simulator's *train* voices;
* evaluation (:func:`digit_eval_set`): FSDD speaker nicolas (every take), the simulator's
  held-out golden digit speaker, never used for training.

Target text: digits separated by spaces, "4 1 5 9", with a carrier phrase in sentence case and a
full stop when one is said ("My pin is 4 1 5 9."). That is Whisper tiny.en's own most frequent
style for such strings (on FSDD strings it wrote "1 9 6 5 9 3" or "4, 8, 4"; "4159" and number
words were rare), and its tokenizer gives one token per spaced digit (" 4", " 1", ...) where
"4159" is split arbitrarily (" 4" + "159"). Fine-tuning on it therefore moves the model's
digits, not its formatting. :mod:`training.asr.metrics` scores any style the same way.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import numpy as np

from core import synthesis
from core.audio import SAMPLE_RATE, TELEPHONE_RATE, resample
from core.corpus import FSDD_SPEAKERS, GOLDEN_VOICE, TRAIN_VOICES, fsdd_path, fsdd_takes, sample_dir
from core.spoken import DIGIT_WORDS, spoken_digits
from core.synthesis import Channel

Source = Literal["fsdd", "synthetic"]

TRAIN_SPEAKERS: tuple[str, ...] = FSDD_SPEAKERS["train"]
TRAIN_TAKES: tuple[int, ...] = (0, 1, 2, 3, 4)  # simulated train calls read digits with takes 5-9
EVAL_SPEAKERS: tuple[str, ...] = FSDD_SPEAKERS["golden"]
GAP_S = (0.1, 0.35)  # pause between two recorded digits
EDGE_S = (0.1, 0.4)  # silence before and after an utterance
TELEPHONE_SNR_DB = (5.0, 20.0)  # as the simulator's telephone calls
LIGHT_NOISE_SNR_DB = (20.0, 35.0)  # "light noise" on some clean utterances
CARRIERS = (
    "my pin is",
    "the number is",
    "my account number is",
    "the code is",
    "it's",
    "my reference number is",
)

if set(TRAIN_SPEAKERS) & set(EVAL_SPEAKERS):  # pragma: no cover - a configuration error
    raise RuntimeError("the digit corpus and its evaluation set must not share FSDD speakers")


@dataclass(frozen=True, eq=False)
class DigitUtterance:
    """One spoken digit string: float32 mono 16 kHz audio in [-1, 1] and its target transcript.

    ``text`` is the training target ("4 1 5 9" or "My pin is 4 1 5 9."), ``digits`` the digits
    said ("4159"), ``spoken`` the words actually said (espeak's input, e.g. "four oh double
    five"; FSDD: one digit word per recording), ``speaker`` the FSDD speaker or espeak-ng voice,
    ``files`` the FSDD recordings used, in order (``{digit}_{speaker}_{take}``).
    """

    audio: np.ndarray = field(repr=False)
    text: str
    digits: str
    source: Source
    speaker: str
    channel: Channel
    snr_db: float | None = None  # None: no noise added
    spoken: str = ""
    files: tuple[str, ...] = ()

    @property
    def duration_s(self) -> float:
        return self.audio.size / SAMPLE_RATE

    def row(self) -> dict[str, Any]:
        """The slice keys of :func:`training.asr.metrics.slice_table` (plus source)."""
        return {"voice": self.speaker, "channel": self.channel, "snr_db": self.snr_db, "source": self.source}


def target_text(digits: str, carrier: str = "") -> str:
    """The transcript to train on: "4 1 5 9", or "My pin is 4 1 5 9." with a carrier phrase."""
    spaced = " ".join(digits)
    if not carrier:
        return spaced
    return f"{carrier[:1].upper()}{carrier[1:]} {spaced}."


@lru_cache(maxsize=512)
def _recording(path: Path) -> np.ndarray:
    """One FSDD recording at 16 kHz, trimmed and levelled (the simulator's treatment); read-only."""
    audio = synthesis.fsdd_digits([path], [])
    audio.setflags(write=False)
    return audio


def _noise(audio: np.ndarray, speech_ranges: list[tuple[int, int]], snr_db: float, seed: int) -> np.ndarray:
    """White noise at ``snr_db`` relative to the speech power (measured over ``speech_ranges``)."""
    active = np.concatenate([audio[a:b] for a, b in speech_ranges]) if speech_ranges else audio
    power = float(np.mean(np.square(active, dtype=np.float64))) if active.size else 0.0
    noise = np.random.default_rng(seed).standard_normal(audio.size) * np.sqrt(power / 10 ** (snr_db / 10))
    return (audio + noise).astype(np.float32)


def _channel(
    audio: np.ndarray,
    speech_ranges: list[tuple[int, int]],
    rng: random.Random,
    workdir: Path,
    telephone_share: float,
    noise_share: float,
) -> tuple[np.ndarray, Channel, float | None]:
    """Pad with silence, level, then the telephone line (8 kHz and back) or clean 16 kHz with optional light noise."""
    lead, tail = (int(rng.uniform(*EDGE_S) * SAMPLE_RATE) for _ in range(2))
    audio = np.concatenate([np.zeros(lead, np.float32), synthesis.level(audio), np.zeros(tail, np.float32)])
    ranges = [(a + lead, b + lead) for a, b in speech_ranges]
    seed = rng.getrandbits(32)
    if rng.random() < telephone_share:
        snr = round(rng.uniform(*TELEPHONE_SNR_DB), 1)
        line = synthesis.telephone(audio, ranges, snr, seed, workdir)
        out, channel, snr_db = resample(line, TELEPHONE_RATE), "telephone8k", snr
    elif rng.random() < noise_share:
        snr = round(rng.uniform(*LIGHT_NOISE_SNR_DB), 1)
        out, channel, snr_db = _noise(audio, ranges, snr, seed), "clean16k", snr
    else:
        out, channel, snr_db = audio, "clean16k", None
    return np.clip(out, -1.0, 1.0).astype(np.float32), channel, snr_db  # type: ignore[return-value]


def _digits(rng: random.Random, length_range: tuple[int, int]) -> str:
    low, high = length_range
    if not 1 <= low <= high:
        raise ValueError(f"length_range must be 1 <= low <= high, not {length_range}")
    return "".join(rng.choice("0123456789") for _ in range(rng.randint(low, high)))


def fsdd_strings(
    speakers: Sequence[str],
    takes: Sequence[int] | None,
    n: int,
    length_range: tuple[int, int] = (3, 8),
    seed: int = 0,
    *,
    telephone_share: float = 0.0,
    noise_share: float = 0.3,
    folder: Path | None = None,
) -> list[DigitUtterance]:
    """``n`` digit strings, each made of real FSDD recordings of ONE speaker joined by short pauses.

    Each utterance: a speaker from ``speakers``, 3-8 random digits (``length_range``), a random
    take from ``takes`` per digit (None: every take the sample has for that speaker), pauses of
    0.1-0.35 s, silence at both ends. A ``telephone_share`` of them go through the simulator's
    telephone line (SNR 5-20 dB), a ``noise_share`` of the rest get light white noise (20-35 dB).
    Deterministic for the arguments.
    """
    root = sample_dir(folder)
    if not speakers:
        raise ValueError("no FSDD speakers given")
    available = {s: fsdd_takes(root, s) for s in speakers}
    for speaker, have in available.items():
        wanted = set(takes) if takes is not None else set(have)
        if not have or not wanted <= set(have):
            raise ValueError(f"FSDD speaker {speaker!r} lacks takes {sorted(wanted - set(have))} in {root}")
    rng = random.Random(f"voiceloop-asr-digits:fsdd:{','.join(speakers)}:{takes}:{length_range}:{seed}")
    out: list[DigitUtterance] = []
    with synthesis.scratch() as tmp:
        for _ in range(n):
            speaker = rng.choice(list(speakers))
            pool = tuple(takes) if takes is not None else available[speaker]
            digits = _digits(rng, length_range)
            chosen = [(d, rng.choice(pool)) for d in digits]
            parts: list[np.ndarray] = []
            ranges: list[tuple[int, int]] = []
            cursor = 0
            for i, (digit, take) in enumerate(chosen):
                if i:
                    gap = int(rng.uniform(*GAP_S) * SAMPLE_RATE)
                    parts.append(np.zeros(gap, np.float32))
                    cursor += gap
                clip = _recording(fsdd_path(root, digit, speaker, take))
                parts.append(clip)
                ranges.append((cursor, cursor + clip.size))
                cursor += clip.size
            audio, channel, snr_db = _channel(
                np.concatenate(parts), ranges, rng, Path(tmp), telephone_share, noise_share
            )
            out.append(
                DigitUtterance(
                    audio=audio,
                    text=target_text(digits),
                    digits=digits,
                    source="fsdd",
                    speaker=speaker,
                    channel=channel,
                    snr_db=snr_db,
                    spoken=" ".join(DIGIT_WORDS[int(d)] for d in digits),
                    files=tuple(f"{d}_{speaker}_{t}" for d, t in chosen),
                )
            )
    return out


def synthetic_strings(
    voices: Sequence[str],
    n: int,
    seed: int = 0,
    telephone_share: float = 0.5,
    *,
    length_range: tuple[int, int] = (3, 8),
    carrier_share: float = 0.4,
    noise_share: float = 0.3,
) -> list[DigitUtterance]:
    """``n`` espeak-ng digit strings in ``voices``, some after a carrier phrase ("my pin is ...").

    Digits are read the way the simulator's callers read them (:func:`core.spoken.
    spoken_digits`: sometimes "oh" for zero or "double five"); rate and pitch vary as in the
    simulator. The carrier phrase is part of the target text. ``telephone_share`` go through the
    telephone line (SNR 5-20 dB). About 20-60 ms per utterance (espeak-ng, plus sox for the line).
    """
    if not voices:
        raise ValueError("no espeak-ng voices given")
    synthesis.check_voices(set(voices))
    rng = random.Random(f"voiceloop-asr-digits:synthetic:{','.join(voices)}:{length_range}:{seed}")
    out: list[DigitUtterance] = []
    with synthesis.scratch() as tmp:
        workdir = Path(tmp)
        for _ in range(n):
            voice = rng.choice(list(voices))
            digits = _digits(rng, length_range)
            said = spoken_digits(digits, rng, oh_rate=0.3, double_rate=0.2)
            carrier = rng.choice(CARRIERS) if rng.random() < carrier_share else ""
            spoken = f"{carrier} {said}".strip()
            voiced = synthesis.tts(spoken, voice, rng.randint(150, 185), rng.randint(35, 65), workdir)
            if voiced.size == 0:
                raise RuntimeError(f"espeak-ng voice {voice!r} said nothing for {spoken!r}")
            audio, channel, snr_db = _channel(voiced, [(0, voiced.size)], rng, workdir, telephone_share, noise_share)
            out.append(
                DigitUtterance(
                    audio=audio,
                    text=target_text(digits, carrier),
                    digits=digits,
                    source="synthetic",
                    speaker=voice,
                    channel=channel,
                    snr_db=snr_db,
                    spoken=spoken,
                )
            )
    return out


def digit_corpus(
    n_fsdd: int = 300,
    n_synthetic: int = 150,
    seed: int = 0,
    *,
    telephone_share: float = 0.5,
    length_range: tuple[int, int] = (3, 8),
    folder: Path | None = None,
) -> list[DigitUtterance]:
    """The TRAINING digit corpus: FSDD george/jackson/lucas takes 0-4 + espeak-ng in the train voices.

    Never the evaluation speaker (nicolas) nor the golden voice. Real strings first, then
    synthetic ones; shuffle when batching.
    """
    if GOLDEN_VOICE in TRAIN_VOICES:  # pragma: no cover - a configuration error
        raise RuntimeError("the golden voice must not be a training voice")
    real = fsdd_strings(
        TRAIN_SPEAKERS, TRAIN_TAKES, n_fsdd, length_range, seed, telephone_share=telephone_share, folder=folder
    )
    synthetic = synthetic_strings(TRAIN_VOICES, n_synthetic, seed, telephone_share, length_range=length_range)
    return real + synthetic


def digit_eval_set(
    n: int = 60,
    seed: int = 0,
    *,
    telephone_share: float = 0.5,
    length_range: tuple[int, int] = (3, 8),
    folder: Path | None = None,
) -> list[DigitUtterance]:
    """The held-out evaluation set: FSDD speaker nicolas (every take), never used for training.

    Half clean 16 kHz (some with light noise), half through the telephone line by default; no
    carrier phrases. Deterministic for a seed.
    """
    return fsdd_strings(EVAL_SPEAKERS, None, n, length_range, seed, telephone_share=telephone_share, folder=folder)
