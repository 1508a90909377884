"""Real callers' ratings of their calls, to check the sentiment scorer against: the HarperValleyBank sample.

``data/sample/harpervalley/calls.jsonl`` holds 80 role-played calls to a bank from the
HarperValleyBank corpus (Gridspace and Stanford, Apache-2.0; see that folder's README and NOTICE):
every turn's text with its speaker and times, and what each party rated the other after the call.
``validate`` scores the caller's turns with ``core.sentiment.progression`` and measures how well the
opening, closing and change of sentiment rank the calls as the callers ranked them (Spearman's rho
with a bootstrap interval over calls), for the scorer and for plain VADER.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
from scipy.stats import rankdata, spearmanr

from core.sentiment import progression, sentiment, vader_sentiment

SAMPLE_PATH = Path(__file__).resolve().parents[1] / "data" / "sample" / "harpervalley" / "calls.jsonl"

Role = Literal["caller", "agent"]
Moment = Literal["start", "end", "change"]
MOMENTS: tuple[Moment, ...] = ("start", "end", "change")


@dataclass(frozen=True)
class Turn:
    """One transcribed segment: who spoke, the transcriber's text, and its times in seconds."""

    role: Role
    text: str
    start: float
    end: float


@dataclass(frozen=True)
class HarperValleyCall:
    """One call of the sample; ratings are the post-call survey's ``partner_rating`` (0-10), None if not given."""

    sid: str
    task: str
    caller_rating: int | None
    agent_rating: int | None
    caller_comment: str | None
    turns: tuple[Turn, ...]

    @property
    def caller_texts(self) -> list[str]:
        """The caller's (the customer's) turns in call order."""
        return [turn.text for turn in self.turns if turn.role == "caller"]


@dataclass(frozen=True)
class Correlation:
    """Spearman's rho of one sentiment figure against the callers' ratings, with its 95% interval."""

    scorer: str
    moment: Moment
    rho: float
    low: float
    high: float
    n: int


def load_harpervalley_sample(path: Path = SAMPLE_PATH) -> list[HarperValleyCall]:
    """Every call of the shipped sample, in sid order."""
    calls = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        row = json.loads(line)
        turns = tuple(Turn(t["role"], t["text"], float(t["start"]), float(t["end"])) for t in row["turns"])
        calls.append(HarperValleyCall(row["sid"], row["task"], row["caller_rating"], row["agent_rating"],
                                      row.get("caller_comment"), turns))
    return sorted(calls, key=lambda call: call.sid)


def rank_correlation(x: Sequence[float], y: Sequence[float], n_boot: int = 2000,
                     seed: int = 0) -> tuple[float, float, float, int]:
    """(rho, low, high, n): Spearman's rho of ``x`` and ``y`` and its 95% percentile bootstrap interval.

    ``n_boot`` resamples of the pairs with replacement, seeded; ties take average ranks, as in
    ``scipy.stats.spearmanr``. Resamples in which either side is constant have no rho and are left
    out of the interval. With fewer than 3 pairs, or a constant side, everything is NaN.
    """
    xs, ys = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if xs.shape != ys.shape or xs.ndim != 1:
        raise ValueError(f"x and y must be two sequences of one length, got {xs.shape} and {ys.shape}")
    n = len(xs)
    nan = float("nan")
    if n < 3 or np.ptp(xs) == 0 or np.ptp(ys) == 0:
        return nan, nan, nan, n
    rho = float(spearmanr(xs, ys).statistic)
    index = np.random.default_rng(seed).integers(0, n, size=(n_boot, n))
    rx, ry = rankdata(xs[index], axis=1), rankdata(ys[index], axis=1)
    rx -= rx.mean(axis=1, keepdims=True)
    ry -= ry.mean(axis=1, keepdims=True)
    denominator = np.sqrt((rx**2).sum(axis=1) * (ry**2).sum(axis=1))
    valid = denominator > 0
    boot = (rx * ry).sum(axis=1)[valid] / denominator[valid]
    if boot.size == 0:
        return rho, nan, nan, n
    low, high = np.percentile(boot, [2.5, 97.5])
    return rho, float(low), float(high), n


SCORERS: dict[str, Callable[[str], float]] = {"vader": vader_sentiment, "voiceloop": sentiment}


def validate(calls: Sequence[HarperValleyCall], n_boot: int = 2000, seed: int = 0) -> list[Correlation]:
    """For each scorer (plain VADER, voiceloop's) and each of start, end and change: rho against the
    caller's rating over the calls that have one and a caller turn with words."""
    rated = [call for call in calls if call.caller_rating is not None]
    results = []
    for name, scorer in SCORERS.items():
        pairs = [(p, call.caller_rating) for call in rated
                 if (p := progression(call.caller_texts, scorer=scorer)) is not None]
        ratings = [float(rating) for _, rating in pairs if rating is not None]
        for moment in MOMENTS:
            values = [float(getattr(p, moment)) for p, _ in pairs]
            rho, low, high, n = rank_correlation(values, ratings, n_boot=n_boot, seed=seed)
            results.append(Correlation(name, moment, rho, low, high, n))
    return results
