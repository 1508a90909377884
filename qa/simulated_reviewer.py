"""A reviewer for the demo: answers a review task from the simulator's truth, with a person's noise and anchoring.

It hears what the redacted audio lets a person hear: the true words, with each PII span replaced by
its placeholder (``<CREDIT_CARD>``), since that is what the masking left audible. A person mishears
(``word_noise``: each word dropped or doubled with that chance), now and then picks the wrong intent
(``intent_noise``), and on a pre-filled task sometimes accepts the champion's answer as it stands
(``anchoring``: the bias the blind share exists to measure). Deterministic for a seed, a call and a
reviewer. Only ``voiceloop qa simulate-review`` uses it; voiceloop itself never reads truth files.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from core.corpus import NO_REQUEST
from qa.review_page import answer_result


@dataclass(frozen=True)
class ReviewerNoise:
    word_noise: float = 0.03
    intent_noise: float = 0.05
    anchoring: float = 0.3

    def __post_init__(self) -> None:
        for name in ("word_noise", "intent_noise", "anchoring"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must lie in [0, 1], got {getattr(self, name)}")


def heard_text(turn: dict[str, Any]) -> str:
    """A truth turn's words as the redacted audio lets them be heard: PII spans become placeholders."""
    text = turn["transcript"]
    for span in sorted(turn.get("pii", []), key=lambda s: s["start"], reverse=True):
        text = f"{text[:span['start']]}<{span['entity']}>{text[span['end']:]}"
    return text


def _rng(seed: int, call_id: str, reviewer: str) -> np.random.Generator:
    digest = hashlib.blake2b(f"{seed}|{call_id}|{reviewer}".encode(), digest_size=8).digest()
    return np.random.default_rng(int.from_bytes(digest, "big"))


def _mishear(text: str, rate: float, rng: np.random.Generator) -> str:
    words: list[str] = []
    for word in text.split():
        draw = rng.random()
        if draw < rate / 2:
            continue  # dropped
        words += [word, word] if draw < rate else [word]  # doubled
    return " ".join(words)


def answer(task_data: dict[str, Any], prediction: dict[str, Any] | None, truth: dict[str, Any],
           intents: Sequence[str], noise: ReviewerNoise, reviewer: str, seed: int) -> list[dict[str, Any]]:
    """The annotation result one simulated reviewer gives a task (see the module docstring)."""
    rng = _rng(seed, task_data["call_id"], reviewer)
    if prediction and rng.random() < noise.anchoring:
        return list(prediction["result"]) + answer_result([], [], _resolved(truth))
    by_index = {t["turn"]: t for t in truth["turns"]}
    transcripts, chosen = [], []
    for entry in task_data["turns"]:
        turn = by_index.get(int(entry["turn"]), {})
        transcripts.append(_mishear(heard_text(turn), noise.word_noise, rng) if turn else "")
        intent = turn.get("intent") or NO_REQUEST
        if intent != NO_REQUEST and rng.random() < noise.intent_noise:
            intent = str(rng.choice([i for i in intents if i != intent]))
        chosen.append(intent)
    return answer_result(transcripts, chosen, _resolved(truth))


def _resolved(truth: dict[str, Any]) -> str:
    return "yes" if truth.get("resolved") else "no"
