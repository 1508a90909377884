"""ASR datasets: customer turns cut from the *redacted* call audio, plus a digit corpus.

Each row holds one utterance as a small WAV file (a ``datasets`` ``Audio`` column with
``decode=False``: decoding there needs torchcodec, which does not work with CPU torch) and the
text to learn. The text is the human-verified transcript with every redacted span removed, at
the place where the audio was silenced, so the model learns neither PII nor to invent words over
silence. The digit corpus (real FSDD speakers + espeak-ng, no caller data) keeps digit accuracy
learnable although every digit string of a call is PII.

Bad audio never stops a build: an unreadable file, a call without redacted audio, a sample rate
outside ``validation.sample_rates``, a turn of 0 seconds or silence is reported by call and turn
(:class:`Skipped`, in the manifest and the run) and left out.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import soundfile as sf
from datasets import Audio, Dataset

from core.audio import SAMPLE_RATE, decode_audio, mono, to_16k
from core.settings import Settings
from governance.redaction.audio import turn_bounds
from governance.store import GovernedStore
from training.datasets import (
    ASR_DIGITS,
    DATASET_SPLITS,
    DatasetSplit,
    DatasetVersion,
    canonical_digest,
    dataset_name,
    hashed_audio,
    publish_data,
)

_PLACEHOLDER = re.compile(r"<[A-Z][A-Z_]*>")
_SPACE_BEFORE_PUNCT = re.compile(r"\s+([.,!?;:])")
_MIN_SECONDS = 0.1
_SILENCE_PEAK = 1e-4  # full scale; quieter than this is no speech


@dataclass(frozen=True)
class Skipped:
    call_id: str
    turn: int | None
    reason: str

    def __str__(self) -> str:
        where = f"call {self.call_id}" + (f" turn {self.turn}" if self.turn is not None else "")
        return f"{where}: {self.reason}"


@dataclass
class AsrDataReport:
    versions: dict[str, DatasetVersion] = field(default_factory=dict)
    skipped: list[Skipped] = field(default_factory=list)


def target_transcript(transcript: str) -> str:
    """The redacted reference transcript with its ``<TYPE>`` placeholders (silenced audio) removed."""
    text = _PLACEHOLDER.sub(" ", transcript)
    text = _SPACE_BEFORE_PUNCT.sub(r"\1", re.sub(r"\s+", " ", text)).strip()
    return re.sub(r"^[.,!?;:]\s*", "", text)


def wav_bytes(samples: np.ndarray, sample_rate: int) -> bytes:
    """16-bit PCM WAV: what the dataset stores (the channel's own rate, so 8 kHz stays 8 kHz)."""
    buffer = io.BytesIO()
    sf.write(buffer, np.clip(samples, -1.0, 1.0), sample_rate, format="WAV", subtype="PCM_16")
    return buffer.getvalue()


def load_utterance(audio: dict[str, Any]) -> np.ndarray:
    """A dataset row's ``audio`` -> float32 mono at 16 kHz (what Whisper's features need)."""
    decoded = decode_audio(audio["bytes"])
    return to_16k(decoded.samples, decoded.sample_rate)


def audio_rows_digest(rows: list[dict[str, Any]]) -> str:
    """The version digest of audio rows: :func:`canonical_digest` with each clip replaced by its SHA-256."""
    return canonical_digest([hashed_audio(r) for r in rows])


def publish_audio(store: GovernedStore, name: str, rows: list[dict[str, Any]], labels: Mapping[str, str] | None = None,
                  **detail: Any) -> DatasetVersion:
    """Write an audio dataset version named by the digest of its rows (audio by content hash)."""
    data = Dataset.from_list(rows).cast_column("audio", Audio(decode=False))
    return publish_data(store, name, audio_rows_digest(rows), data, rows, labels, **detail)


def _turn_audio(samples: np.ndarray, sample_rate: int, turn: dict[str, Any]) -> np.ndarray | str:
    """A turn's samples, or why it cannot be used."""
    if float(turn["end_s"]) - float(turn["start_s"]) < _MIN_SECONDS:
        return f"turn lasts {float(turn['end_s']) - float(turn['start_s']):.2f} s (under {_MIN_SECONDS} s)"
    start, stop = turn_bounds(turn, sample_rate, samples.shape[0])
    clip = samples[start:stop]
    if clip.shape[0] < _MIN_SECONDS * sample_rate:
        return f"turn {turn['start_s']}-{turn['end_s']} s lies outside the {samples.shape[0] / sample_rate:.2f} s audio"
    if not np.isfinite(clip).all() or float(np.abs(clip).max()) < _SILENCE_PEAK:
        return "turn audio is silent or not finite"
    return clip


def call_turn_rows(
    store: GovernedStore, validated: pd.DataFrame, split: str, sample_rates: Sequence[int]
) -> tuple[list[dict[str, Any]], list[Skipped]]:
    """Validated customer turns of one split, cut from each call's redacted audio."""
    turns = validated[(validated["speaker"] == "customer") & (validated["split"] == split)]
    turns = turns[turns["transcript"].notna()]
    rows: list[dict[str, Any]] = []
    skipped: list[Skipped] = []
    for call_id, group in turns.groupby("call_id", sort=True):
        call_id = str(call_id)
        try:
            decoded = decode_audio(store.read_redacted_audio(call_id))
        except FileNotFoundError:
            skipped += [Skipped(call_id, None, "no redacted audio (audio redaction quarantined it or has not run)")]
            continue
        except (sf.LibsndfileError, RuntimeError, ValueError) as error:
            skipped += [Skipped(call_id, None, f"redacted audio unreadable: {error}")]
            continue
        if decoded.sample_rate not in sample_rates:
            skipped += [Skipped(call_id, None, f"sample rate {decoded.sample_rate} Hz not in {list(sample_rates)} "
                                                "(validation.sample_rates)")]
            continue
        samples = mono(decoded.samples)
        (document,) = store.read_redacted([call_id])
        by_index = {t["index"]: t for t in document["turns"]}
        for row in group.sort_values("turn").to_dict("records"):
            turn = by_index.get(int(row["turn"]))
            text = target_transcript(str(row["transcript"]))
            if not text:
                skipped.append(Skipped(call_id, int(row["turn"]), "nothing but PII was said (all of it masked)"))
                continue
            clip = _turn_audio(samples, decoded.sample_rate, turn) if turn else "turn not in the redacted call"
            if isinstance(clip, str):
                skipped.append(Skipped(call_id, int(row["turn"]), clip))
                continue
            rows.append(
                {
                    "call_id": call_id,
                    "turn": int(row["turn"]),
                    "audio": {"bytes": wav_bytes(clip, decoded.sample_rate), "path": None},
                    "text": text,
                    "duration_s": round(clip.shape[0] / decoded.sample_rate, 3),
                    "source": "call",
                    "voice": row.get("voice"),
                    "channel": row.get("channel"),
                    "snr_db": None if pd.isna(row.get("snr_db")) else float(row["snr_db"]),
                }
            )
    return rows, skipped


def digit_rows(n_fsdd: int, n_synthetic: int, seed: int) -> list[dict[str, Any]]:
    """The digit corpus (training speakers and voices only) as dataset rows."""
    from training.asr.digits import digit_corpus

    rows = []
    for i, utterance in enumerate(digit_corpus(n_fsdd=n_fsdd, n_synthetic=n_synthetic, seed=seed)):
        rows.append(
            {
                "call_id": None,
                "turn": i,
                "audio": {"bytes": wav_bytes(utterance.audio, SAMPLE_RATE), "path": None},
                "text": utterance.text,
                "duration_s": round(utterance.duration_s, 3),
                "source": utterance.source,
                "voice": utterance.speaker,
                "channel": utterance.channel,
                "snr_db": utterance.snr_db,
            }
        )
    return rows


def build_asr_versions(
    store: GovernedStore,
    validated: pd.DataFrame,
    sample_rates: Sequence[int],
    digits: tuple[int, int, int] | None = (150, 150, 0),
    splits: Iterable[DatasetSplit] = DATASET_SPLITS,
    labels: Mapping[str, str] | None = None,
) -> AsrDataReport:
    """``asr-train``, ``asr-golden`` and ``asr-production-golden`` from validated turns + redacted audio, and
    ``asr-digits``.

    ``digits`` is (FSDD strings, synthetic strings, seed); None leaves the digit corpus out. ``labels``: the QA
    reviews the rows carry (call id -> review digest), named in each version's manifest.
    """
    report = AsrDataReport()
    for split in splits:
        rows, skipped = call_turn_rows(store, validated, split, sample_rates)
        report.skipped += skipped
        if rows:  # no transcribed turn in this split (unlabelled calls): no version
            report.versions[dataset_name("asr", split)] = publish_audio(
                store, dataset_name("asr", split), rows, labels, split=split, skipped=[str(s) for s in skipped]
            )
    if digits is not None and (digits[0] or digits[1]):
        report.versions[ASR_DIGITS] = publish_audio(
            store, ASR_DIGITS, digit_rows(*digits),
            source="FSDD (CC BY-SA 4.0) training speakers + espeak-ng training voices; no caller data",
        )
    return report


def build_configured(store: GovernedStore, validated: pd.DataFrame, settings: Settings,
                     labels: Mapping[str, str] | None = None) -> AsrDataReport:
    """The ASR versions the settings ask for (none when ``asr.enabled`` is off): the flow's and ``dvc repro``'s."""
    if not settings.asr.enabled:
        return AsrDataReport()
    asr = settings.asr
    return build_asr_versions(store, validated, settings.validation.sample_rates,
                              (asr.digits_fsdd, asr.digits_synthetic, asr.seed), labels=labels)
