"""The promotion gate: one documented decision rule over per-utterance evidence.

Decision rule
-------------
The challenger and the champion score the same golden set, utterance by utterance. For each
metric (higher is better; intent accuracy today) the gate computes the paired difference
``champion - challenger`` per utterance and a paired bootstrap confidence interval of its mean.

* **Non-inferiority** (a champion exists): pass when the interval's upper bound is below
  ``margin``; i.e. we are confident the challenger is at most ``margin`` worse.
* **Floor** (no champion yet): pass when the challenger's point estimate is at least ``floor``.

The challenger is promoted only when every criterion passes. Criteria are small functions
from :class:`GateEvidence` to :class:`CriterionResult`; later metrics (WER, slices, latency)
are added to :data:`CRITERIA` without touching the rule that combines them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from voiceloop.config import GateConfig


@dataclass
class GateEvidence:
    """Per-utterance results on the golden set, aligned by position."""

    labels: list[str]
    challenger_predictions: list[str]
    champion_predictions: list[str] | None = None
    champion_version: str | None = None

    def correct(self, predictions: list[str]) -> np.ndarray:
        return np.asarray([p == y for p, y in zip(predictions, self.labels, strict=True)], dtype=float)


@dataclass(frozen=True)
class CriterionResult:
    name: str
    passed: bool
    rule: str
    challenger: float
    champion: float | None = None
    delta: float | None = None  # champion - challenger (positive = challenger worse)
    interval: tuple[float, float] | None = None
    threshold: float | None = None


@dataclass
class GateDecision:
    promote: bool
    criteria: list[CriterionResult]
    per_intent: list[dict[str, Any]] = field(default_factory=list)
    config: dict[str, Any] = field(default_factory=dict)
    n: int = 0
    champion_version: str | None = None

    @property
    def reasons(self) -> list[str]:
        return [f"{c.name}: {c.rule}" for c in self.criteria if not c.passed]

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["reasons"] = self.reasons
        out["verdict"] = "promote" if self.promote else "reject"
        return out


def paired_bootstrap(
    champion: np.ndarray, challenger: np.ndarray, n_resamples: int, confidence: float, seed: int
) -> tuple[float, float, float]:
    """Mean of ``champion - challenger`` and its percentile interval, resampling utterances."""
    diff = np.asarray(champion, dtype=float) - np.asarray(challenger, dtype=float)
    if diff.size == 0:
        raise ValueError("the golden set is empty: nothing to compare")
    rng = np.random.default_rng(seed)
    means = np.empty(n_resamples)
    chunk = max(1, 2_000_000 // diff.size)
    for start in range(0, n_resamples, chunk):
        stop = min(start + chunk, n_resamples)
        idx = rng.integers(0, diff.size, size=(stop - start, diff.size))
        means[start:stop] = diff[idx].mean(axis=1)
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(means, [tail, 100 - tail])
    return float(diff.mean()), float(low), float(high)


def intent_accuracy(evidence: GateEvidence, config: GateConfig) -> CriterionResult:
    challenger = evidence.correct(evidence.challenger_predictions)
    if evidence.champion_predictions is None:
        value = float(challenger.mean())
        return CriterionResult(
            name="intent_accuracy",
            passed=value >= config.floor,
            rule=f"no champion: accuracy {value:.4f} must be >= floor {config.floor:.4f}",
            challenger=value,
            threshold=config.floor,
        )
    champion = evidence.correct(evidence.champion_predictions)
    delta, low, high = paired_bootstrap(champion, challenger, config.n_bootstrap, config.confidence, config.seed)
    return CriterionResult(
        name="intent_accuracy",
        passed=high < config.margin,
        rule=(
            f"non-inferiority: upper bound of the {config.confidence:.0%} interval of champion - challenger "
            f"({high:+.4f}) must be < margin {config.margin:.4f}"
        ),
        challenger=float(challenger.mean()),
        champion=float(champion.mean()),
        delta=delta,
        interval=(low, high),
        threshold=config.margin,
    )


Criterion = Callable[[GateEvidence, GateConfig], CriterionResult]
CRITERIA: list[Criterion] = [intent_accuracy]


def per_intent_changes(evidence: GateEvidence) -> list[dict[str, Any]]:
    """Accuracy per intent for both models, worst change first."""
    labels = np.asarray(evidence.labels)
    challenger = evidence.correct(evidence.challenger_predictions)
    champion = evidence.correct(evidence.champion_predictions) if evidence.champion_predictions else None
    rows = []
    for intent in sorted(set(evidence.labels)):
        mask = labels == intent
        row: dict[str, Any] = {"intent": intent, "n": int(mask.sum()), "challenger": float(challenger[mask].mean())}
        if champion is not None:
            row["champion"] = float(champion[mask].mean())
            row["delta"] = row["challenger"] - row["champion"]
        rows.append(row)
    return sorted(rows, key=lambda r: r.get("delta", r["challenger"]))


def decide(evidence: GateEvidence, config: GateConfig, criteria: list[Criterion] | None = None) -> GateDecision:
    results = [criterion(evidence, config) for criterion in (criteria or CRITERIA)]
    return GateDecision(
        promote=all(r.passed for r in results),
        criteria=results,
        per_intent=per_intent_changes(evidence),
        config=config.model_dump(),
        n=len(evidence.labels),
        champion_version=evidence.champion_version,
    )
