"""The real material voiceloop ships under ``data/sample``, one loader per set, and who may say what.

BANKING77 gives what callers ask (with the intent as label, and the one list of intent names);
FSDD gives real human recordings of digits, which is how callers read out account numbers.
Nothing outside the repository is read, so a fresh clone builds the same corpus offline. The
split material below keeps the golden set's voices, speakers and sentences out of everything
trained on: the call simulator and the ASR digit corpus both draw from it.
"""

from __future__ import annotations

import csv
import json
from collections import defaultdict
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Literal

SAMPLE_DIR = Path(__file__).resolve().parents[1] / "data" / "sample"

Banking77Split = Literal["train", "test"]
Split = Literal["train", "golden"]

# espeak-ng voice (+variant) names; `espeak-ng --voices=en` lists what exists.
TRAIN_VOICES = (
    "en-us+m3",
    "en-us+f2",
    "en-gb+m4",
    "en-gb+f4",
    "en-gb-scotland+m2",
    "en-gb-scotland+f5",
    "en-029+m7",
    "en-029+f1",
)
GOLDEN_VOICE = "en-gb-x-rp+f3"  # an accent and a variant no train call uses
# FSDD: train reads account numbers with three speakers' takes 5-9; golden with a fourth
# speaker's takes 0-4 (FSDD's own test takes).
FSDD_SPEAKERS: dict[Split, tuple[str, ...]] = {"train": ("george", "jackson", "lucas"), "golden": ("nicolas",)}
FSDD_TAKES: dict[Split, tuple[int, ...]] = {"train": (5, 6, 7, 8, 9), "golden": (0, 1, 2, 3, 4)}
BANKING77_SPLIT: dict[Split, Banking77Split] = {"train": "train", "golden": "test"}


@dataclass(frozen=True)
class Utterance:
    """One BANKING77 row: the text a caller says, its intent, and where it came from."""

    text: str
    intent: str
    split: Banking77Split
    row: int  # 0-based data row in the CSV, for provenance

    @property
    def said(self) -> str:
        """The text as a caller says it: the CSV's stray spaces and line breaks collapsed."""
        return " ".join(self.text.split())

    @property
    def source(self) -> str:
        return f"banking77/{self.split}.csv#{self.row}"


def sample_dir(path: Path | None = None) -> Path:
    """The sample folder to read: ``path`` when given, else the repository's ``data/sample``."""
    folder = Path(path) if path is not None else SAMPLE_DIR
    if not (folder / "banking77").is_dir() or not (folder / "fsdd").is_dir():
        raise FileNotFoundError(
            f"{folder} lacks banking77/ or fsdd/: the sample material ships in the repository, data/sample"
        )
    return folder


@lru_cache(maxsize=8)
def load_banking77(split: Banking77Split, folder: Path | None = None) -> tuple[Utterance, ...]:
    """All utterances of one BANKING77 split, in file order, text exactly as the CSV has it."""
    with (sample_dir(folder) / "banking77" / f"{split}.csv").open(newline="", encoding="utf-8") as handle:
        return tuple(
            Utterance(text=row["text"], intent=row["category"], split=split, row=i)
            for i, row in enumerate(csv.DictReader(handle))
        )


#: A reviewed turn's two answers besides the intents: a request the bot cannot serve (kept as a label, never
#: trained on, wrong for any in-scope intent), and a turn that asks for nothing (a detail given, thanks, a
#: reaction: not scored for intent). The QA review page offers them; training and scoring read them.
OUT_OF_SCOPE, NO_REQUEST = "out_of_scope", "no_request"


@lru_cache(maxsize=8)
def intent_names(folder: Path | None = None) -> tuple[str, ...]:
    """The 77 intents, in the data set's own order: the label space of every intent model."""
    return tuple(json.loads((sample_dir(folder) / "banking77" / "categories.json").read_text(encoding="utf-8")))


def by_intent(utterances: tuple[Utterance, ...]) -> dict[str, list[Utterance]]:
    groups: dict[str, list[Utterance]] = defaultdict(list)
    for utterance in utterances:
        groups[utterance.intent].append(utterance)
    return dict(groups)


def fsdd_path(folder: Path, digit: str, speaker: str, take: int) -> Path:
    """The FSDD recording of ``digit`` by ``speaker`` (file name ``{digit}_{speaker}_{take}.wav``)."""
    return folder / "fsdd" / "recordings" / f"{digit}_{speaker}_{take}.wav"


@lru_cache(maxsize=8)
def fsdd_takes(folder: Path, speaker: str) -> tuple[int, ...]:
    """The takes of ``speaker`` present for every digit 0-9 (the sample ships takes 0-9)."""
    takes: set[int] | None = None
    for digit in "0123456789":
        found = {
            int(p.stem.split("_")[2])
            for p in (folder / "fsdd" / "recordings").glob(f"{digit}_{speaker}_*.wav")
        }
        takes = found if takes is None else takes & found
    return tuple(sorted(takes or ()))
