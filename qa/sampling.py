"""Picks the calls the QA team reviews, so that the week's accuracy and WER can be estimated from them without bias.

Production calls carry no labels; a weekly human review of a sample is the only ground truth. To
estimate the whole week's accuracy and WER from that sample without bias (design-based, see
``qa.design_estimates``) every call needs a known, non-zero chance of selection, fixed before the
draw. The design spends

* ``random_share`` of the budget as a plain random floor: the same probability for every call, so
  no call is ever out of reach and the estimates stay design-consistent whatever the risk score
  gets wrong;
* the rest in proportion to a risk score (1 + the uplifts of the risk signals a call shows): errors
  sit in risky calls, and reviewing more of them narrows the intervals (a PPS share);
* calls of alerted slices whole (probability 1), up to ``alerted_cap_share`` of the budget, so an
  alert is looked at without one alert eating the week's review.

The thresholds that make a signal "risky" (low intent confidence, low ASR log-probability, negative
end sentiment) come from an earlier week's calls (``derive_thresholds``), never from this week's:
the probabilities must not depend on the outcomes being sampled more than the design says.
Numbers and ids only: no call text, no store.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

#: Share of the selected calls that two reviewers label (inter-reviewer agreement, reviewer noise).
DOUBLE_REVIEW_SHARE = 0.10


@dataclass(frozen=True)
class CallRisk:
    """One production call as the sampler sees it: its id, its slices and its risk signals (None when unknown)."""

    call_id: str
    slices: tuple[str, ...] = ("all",)
    intent_confidence: float | None = None  # the opening request's top-1 confidence, 0-1
    asr_logprob: float | None = None  # Whisper avg_logprob over the call's turns, <= 0
    escalated: bool | None = None  # handed to a human agent
    repeated: bool | None = None  # the caller called again within the window
    sentiment_end: float | None = None  # the caller's sentiment at the end, -1..1
    disagreement: bool | None = None  # champion and shadow challenger disagreed (only where shadow records exist)


@dataclass(frozen=True)
class RiskThresholds:
    """Where a continuous signal turns risky (strictly below); None: that signal lifts no call."""

    intent_confidence: float | None = None
    asr_logprob: float | None = None
    sentiment_end: float | None = None


@dataclass(frozen=True)
class SamplingDesign:
    """The weekly review's design; the defaults are a starting point, to be tuned on the weeks' figures.

    An uplift adds to a call's risk score (1 for a call showing no signal): a call with a score of 3
    gets three times the risk part of a plain call's probability.
    """

    budget: float = 60.0  # expected sample size, sum of the probabilities
    random_share: float = 0.3  # share of the budget spent as an identical random floor
    uplift_low_intent_confidence: float = 1.0  # opening request's confidence below the threshold
    uplift_low_asr_logprob: float = 1.0  # ASR avg_logprob below the threshold
    uplift_escalated: float = 1.0
    uplift_repeated: float = 1.0
    uplift_negative_sentiment: float = 0.5  # end sentiment below the threshold
    uplift_disagreement: float = 2.0  # champion vs shadow challenger: the most direct sign of an error
    alerted_cap_share: float = 0.4  # alerted-slice calls take at most this share of the budget
    double_review_share: float = DOUBLE_REVIEW_SHARE
    low_quantile: float = 0.2  # thresholds: this quantile of last week's confidence and logprob
    negative_sentiment: float = -0.05  # VADER's usual line between neutral and negative

    @property
    def uplifts(self) -> tuple[float, ...]:
        """The uplifts in ``risk_score``'s signal order."""
        return (self.uplift_low_intent_confidence, self.uplift_low_asr_logprob, self.uplift_escalated,
                self.uplift_repeated, self.uplift_negative_sentiment, self.uplift_disagreement)

    def __post_init__(self) -> None:
        uplifts = self.uplifts
        if not self.budget > 0:
            raise ValueError(f"budget must be positive, got {self.budget}")
        for name in ("random_share", "alerted_cap_share", "double_review_share", "low_quantile"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must lie in [0, 1], got {getattr(self, name)}")
        if any(not (u >= 0 and math.isfinite(u)) for u in uplifts):
            raise ValueError(f"uplifts must be finite and >= 0, got {uplifts}")


@dataclass(frozen=True)
class Sample:
    """A Poisson draw: the selected calls with their inclusion probabilities, those reviewed blind, and those
    two reviewers label."""

    probabilities: dict[str, float]  # selected call id -> its inclusion probability (the weight is 1/p)
    double_review: tuple[str, ...]
    seed: int
    expected_size: float  # sum of every call's probability: the design's budget
    blind: tuple[str, ...] = ()  # the random floor's calls: each call of the week had the same chance
    blind_probability: float = 0.0

    @property
    def call_ids(self) -> tuple[str, ...]:
        """The selected calls, in call-id order (what goes to the reviewers)."""
        return tuple(self.probabilities)


def derive_thresholds(previous_week: Iterable[CallRisk], design: SamplingDesign | None = None) -> RiskThresholds:
    """The risk thresholds, fixed from an earlier week's calls before this week is sampled.

    Intent confidence and ASR logprob: the ``design.low_quantile`` quantile of last week's known
    values (None when last week has none, e.g. the first week: that signal then lifts no call).
    End sentiment: the design's fixed ``negative_sentiment`` line. Using last week keeps this week's
    probabilities independent of this week's own distribution, as the design-based estimates assume.
    """
    design = design or SamplingDesign()
    calls = list(previous_week)

    def low(values: Iterable[float | None]) -> float | None:
        known = [v for v in values if v is not None and math.isfinite(v)]
        return float(np.quantile(known, design.low_quantile)) if known else None

    return RiskThresholds(intent_confidence=low(c.intent_confidence for c in calls),
                          asr_logprob=low(c.asr_logprob for c in calls),
                          sentiment_end=design.negative_sentiment)


def _below(value: float | None, threshold: float | None) -> bool:
    return value is not None and threshold is not None and value < threshold


def risk_score(call: CallRisk, design: SamplingDesign, thresholds: RiskThresholds) -> float:
    """1 + the uplifts of the signals the call shows; an unknown signal lifts nothing."""
    shown = (_below(call.intent_confidence, thresholds.intent_confidence),
             _below(call.asr_logprob, thresholds.asr_logprob),
             bool(call.escalated), bool(call.repeated),
             _below(call.sentiment_end, thresholds.sentiment_end),
             bool(call.disagreement))
    return 1.0 + sum(u for u, on in zip(design.uplifts, shown, strict=True) if on)


def capped_pps(size: np.ndarray, total: float) -> np.ndarray:
    """Probabilities proportional to ``size`` summing to ``total`` (< len(size)), none above 1.

    A call whose share would exceed 1 is taken whole and the excess goes to the others, again in
    proportion to their size, until no share exceeds 1.
    """
    if not 0 < total < len(size):
        raise ValueError(f"total must lie in (0, {len(size)}), got {total}")
    capped = np.zeros(len(size), dtype=bool)
    p = np.ones(len(size))
    while True:
        free = ~capped
        p[free] = (total - capped.sum()) * size[free] / size[free].sum()
        over = free & (p >= 1.0)
        if not over.any():
            return np.minimum(p, 1.0)
        capped |= over
        p[capped] = 1.0


def inclusion_probabilities(
    calls: Sequence[CallRisk],
    design: SamplingDesign,
    thresholds: RiskThresholds,
    alerted_slices: Collection[str] = (),
) -> dict[str, float]:
    """Each call's probability of entering this week's review; the probabilities sum to the budget (or N).

    Calls in an alerted slice get 1 while they fit in ``alerted_cap_share`` of the budget; beyond it
    they share the cap equally (cap / count each), but never less than the week's even share
    (budget / N). The rest of the budget goes to the other calls: ``random_share`` of it spread evenly
    (the floor), the remainder in proportion to their risk scores, capped at 1 with the excess passed
    on (``capped_pps``). Should the others all be taken whole with budget to spare, the spare goes to
    the alerted calls. Every probability lies in (0, 1]. ``thresholds`` must come from an earlier week
    (``derive_thresholds``).
    """
    ids = [c.call_id for c in calls]
    if len(set(ids)) != len(ids):
        raise ValueError("call ids must be unique")
    n = len(ids)
    if n == 0:
        return {}
    budget = min(design.budget, n)
    if budget >= n:
        return dict.fromkeys(ids, 1.0)
    alerted_set = frozenset(alerted_slices) if design.alerted_cap_share > 0 else frozenset()
    alerted = np.array([not alerted_set.isdisjoint(c.slices) for c in calls], dtype=bool)
    n_alerted = int(alerted.sum())
    n_others = n - n_alerted
    cap = design.alerted_cap_share * budget
    # beyond the cap, alerted calls share it, but never fall below the week's even share (budget / N):
    # an alert must not make its calls less likely to be reviewed than if nothing had been alerted
    each = 1.0 if n_alerted <= cap else max(cap / n_alerted, budget / n)
    alerted_cost = n_alerted * each
    rest = budget - alerted_cost
    p = np.zeros(n)
    if rest >= n_others:  # the others are taken whole; what they cannot use goes to the alerted calls
        p[~alerted] = 1.0
        p[alerted] = (budget - n_others) / n_alerted
    else:
        p[alerted] = each
        scores = np.array([risk_score(c, design, thresholds) for c, a in zip(calls, alerted, strict=True) if not a])
        size = design.random_share / n_others + (1.0 - design.random_share) * scores / scores.sum()
        p[~alerted] = capped_pps(size, rest)
    return {call_id: float(pi) for call_id, pi in zip(ids, p, strict=True)}


def blind_probability(probabilities: Mapping[str, float], random_share: float) -> float:
    """The chance, the same for every call, of being drawn as part of the random floor: the floor's even
    share of the budget (``random_share * budget / N``), never above any call's own probability."""
    if not probabilities:
        return 0.0
    even = random_share * sum(probabilities.values()) / len(probabilities)
    return min(even, *probabilities.values())


def draw_sample(probabilities: Mapping[str, float], seed: int,
                double_review_share: float = DOUBLE_REVIEW_SHARE, blind: float = 0.0) -> Sample:
    """Poisson sampling: each call enters independently with its probability; the same seed, the same sample.

    Calls are drawn in call-id order, so the sample does not depend on the mapping's order. One uniform
    draw U per call decides both: the call is selected when U < p, and is one of the ``blind`` share
    (reviewed without the champion's answers shown, the production golden set's source) when U <
    ``blind`` (<= every p, see :func:`blind_probability`): an equal-probability sample inside the sample.
    Of the selected calls, a seeded random ``double_review_share`` (rounded up: at least one whenever any
    is selected and the share is above 0) go to two reviewers.
    """
    ids = sorted(probabilities)
    p = np.array([probabilities[i] for i in ids], dtype=float)
    if not np.all((p > 0) & (p <= 1)):
        raise ValueError("inclusion probabilities must lie in (0, 1]")
    if not 0.0 <= double_review_share <= 1.0:
        raise ValueError(f"double_review_share must lie in [0, 1], got {double_review_share}")
    if not 0.0 <= blind <= float(p.min(initial=1.0)):
        raise ValueError(f"the blind probability {blind} must lie in [0, the smallest inclusion probability]")
    rng = np.random.default_rng(seed)
    draws = rng.random(len(ids))
    chosen = draws < p
    selected = [i for i, keep in zip(ids, chosen, strict=True) if keep]
    n_double = min(len(selected), math.ceil(double_review_share * len(selected) - 1e-9))
    double = sorted(rng.choice(selected, size=n_double, replace=False).tolist()) if n_double else []
    return Sample(probabilities={i: probabilities[i] for i in selected}, double_review=tuple(double),
                  seed=seed, expected_size=float(p.sum()),
                  blind=tuple(i for i, u in zip(ids, draws, strict=True) if u < blind), blind_probability=blind)
