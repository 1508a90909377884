"""QA reviews as training labels: what reviewers heard and understood, joined onto the validated turns.

Production calls arrive without labels; the weekly QA review (qa/, flows/qa_review.py) gives the
reviewed ones a transcript and an intent per customer turn, kept in the labels zone. Before the
datasets are built, :func:`apply_reviews` writes them onto the validated rows of those calls, so the
intent and ASR sets of the next retrain hold them, and sorts the reviewed calls by caller:

* a caller whose pseudonym hashes below ``golden_share`` belongs to the **production golden set**:
  their calls reviewed blind (the random floor: an equal-probability sample, no champion answer
  shown) become ``production-golden`` rows, judged on and never trained on; their other reviewed
  calls are held out of everything, so no caller is on both sides;
* every other reviewed call is training data (``train`` rows).

``out_of_scope`` is kept as a label in the production golden set (an error for any in-scope
prediction) and left out of intent training, as is ``no_request`` (a turn that asks for nothing).
Each version's manifest names the reviews it used (``reviewed_labels``: call id -> the review's
digest), which is the lineage from a label to the datasets and, through them, the bundles.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from core.corpus import OUT_OF_SCOPE
from governance.store import REVIEW_KIND, GovernedStore

PRODUCTION_GOLDEN = "production-golden"
HELD_OUT = "held-out"  # a golden caller's call not reviewed blind: in no dataset


@dataclass
class ReviewedLabels:
    """The validated rows with reviews applied, and which review each labelled call used."""

    frame: pd.DataFrame
    digests: dict[str, str] = field(default_factory=dict)  # call id -> digest of the review its rows carry
    train_calls: int = 0
    golden_calls: int = 0
    held_out_calls: int = 0


def review_digest(review: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(review, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def golden_draw(caller_ref: str) -> float:
    """A caller's place in [0, 1) for the golden split: a hash of the pseudonym, stable and the same everywhere."""
    return int.from_bytes(hashlib.sha256(f"production-golden|{caller_ref}".encode()).digest()[:8], "big") / 2**64


def in_production_golden(caller_ref: str, share: float) -> bool:
    """Whether a caller's blind reviews are judged on: their draw falls below the golden share."""
    return golden_draw(caller_ref) < share


def _intent(answer: str | None, split: str, intents: Collection[str]) -> str | None:
    if answer in intents:
        return answer
    return answer if answer == OUT_OF_SCOPE and split == PRODUCTION_GOLDEN else None


def apply_reviews(store: GovernedStore, validated: pd.DataFrame, golden_share: float,
                  intents: Collection[str]) -> ReviewedLabels:
    """``validated`` with every reviewed call's turns labelled and split as the module docstring says.

    Reviews of calls not among the validated rows (withdrawn, quarantined, not redacted) change nothing.
    """
    present = set(validated["call_id"]) if len(validated) else set()
    wanted = sorted(present & set(store.label_keys(REVIEW_KIND)))
    result = ReviewedLabels(validated)
    if not wanted:
        return result
    frame = validated.copy()
    frame["transcript"] = frame["transcript"].astype(object)
    frame["intent"] = frame["intent"].astype(object)
    for call_id, review in sorted(store.read_labels(REVIEW_KIND, wanted).items()):
        golden = in_production_golden(review["caller_ref"], golden_share)
        split = (PRODUCTION_GOLDEN if review["blind"] else HELD_OUT) if golden else "train"
        rows = frame["call_id"] == call_id
        frame.loc[rows, "split"] = split
        for turn in review["turns"]:
            at = rows & (frame["turn"] == turn["turn"])
            frame.loc[at, "transcript"] = turn["transcript"] or None
            frame.loc[at, "intent"] = _intent(turn["intent"], split, intents)
        result.digests[call_id] = review_digest(review)
        counter = {"train": "train_calls", PRODUCTION_GOLDEN: "golden_calls", HELD_OUT: "held_out_calls"}[split]
        setattr(result, counter, getattr(result, counter) + 1)
    result.frame = frame
    return result
