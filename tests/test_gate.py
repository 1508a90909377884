"""The gate's decision rule on known evidence."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from training.gate import GateEvidence, decide, paired_bootstrap
from voiceloop.config import GateConfig

CONFIG = GateConfig(margin=0.01, floor=0.8, confidence=0.95, n_bootstrap=2000, seed=0)


def _evidence(n: int, champion_acc: float, challenger_acc: float, seed: int = 0) -> GateEvidence:
    rng = np.random.default_rng(seed)
    labels = [f"intent{i % 7}" for i in range(n)]

    def predictions(acc: float) -> list[str]:
        hit = rng.random(n) < acc
        return [y if h else "wrong" for y, h in zip(labels, hit, strict=True)]

    return GateEvidence(labels, predictions(challenger_acc), predictions(champion_acc), champion_version="1")


def test_a_worse_challenger_is_blocked_with_a_reason() -> None:
    decision = decide(_evidence(1000, 0.92, 0.80), CONFIG)
    assert not decision.promote
    assert decision.reasons and "non-inferiority" in decision.reasons[0]
    crit = decision.criteria[0]
    assert crit.delta is not None and crit.delta > 0.05 and crit.interval is not None and crit.interval[0] > 0


def test_a_better_challenger_passes_non_inferiority() -> None:
    decision = decide(_evidence(1000, 0.85, 0.95), CONFIG)
    assert decision.promote
    assert decision.to_dict()["verdict"] == "promote"


def test_without_a_champion_the_floor_decides() -> None:
    evidence = _evidence(200, 0.0, 0.9)
    evidence.champion_predictions = None
    assert decide(evidence, CONFIG).promote
    assert not decide(evidence, GateConfig(floor=0.99)).promote


def test_per_intent_changes_are_reported_worst_first() -> None:
    decision = decide(_evidence(700, 0.9, 0.9), CONFIG)
    rows = decision.per_intent
    assert len(rows) == 7 and all("delta" in r for r in rows)
    assert [r["delta"] for r in rows] == sorted(r["delta"] for r in rows)


@settings(max_examples=30, deadline=None)
@given(st.lists(st.tuples(st.booleans(), st.booleans()), min_size=1, max_size=200))
def test_bootstrap_interval_contains_the_observed_difference(pairs: list[tuple[bool, bool]]) -> None:
    champion = np.array([a for a, _ in pairs], dtype=float)
    challenger = np.array([b for _, b in pairs], dtype=float)
    mean, low, high = paired_bootstrap(champion, challenger, 500, 0.95, 0)
    assert low - 1e-9 <= mean <= high + 1e-9
    assert -1 <= low <= high <= 1
