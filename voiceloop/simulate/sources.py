"""The real material the demo corpus is built from, shipped in the repository under ``data/sample``.

BANKING77 gives what callers ask (with the intent as label); FSDD gives real human recordings of
digits, which is how callers read out account numbers. Nothing outside the repository is read,
so a fresh clone builds the same corpus offline.
"""

from __future__ import annotations

import csv
import json
from collections import defaultdict
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Literal

SAMPLE_DIR = Path(__file__).resolve().parents[2] / "data" / "sample"

Banking77Split = Literal["train", "test"]


@dataclass(frozen=True)
class Utterance:
    """One BANKING77 row: the text a caller says, its intent, and where it came from."""

    text: str
    intent: str
    split: Banking77Split
    row: int  # 0-based data row in the CSV, for provenance

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
def load_banking77(folder: Path, split: Banking77Split) -> tuple[Utterance, ...]:
    """All utterances of one BANKING77 split, in file order."""
    with (folder / "banking77" / f"{split}.csv").open(newline="", encoding="utf-8") as handle:
        return tuple(
            Utterance(text=" ".join(row["text"].split()), intent=row["category"], split=split, row=i)
            for i, row in enumerate(csv.DictReader(handle))
        )


@lru_cache(maxsize=8)
def intent_names(folder: Path) -> tuple[str, ...]:
    """The 77 intents, in the data set's own order."""
    return tuple(json.loads((folder / "banking77" / "categories.json").read_text(encoding="utf-8")))


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
