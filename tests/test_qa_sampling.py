"""The weekly QA sample and its design-based estimates on simulated weeks with known truth (fast, numbers only)."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest

from qa.design_estimates import domain_estimate, hajek_ratio, slice_estimates
from qa.sampling import (
    CallRisk,
    RiskThresholds,
    SamplingDesign,
    derive_thresholds,
    draw_sample,
    inclusion_probabilities,
    risk_score,
)

THRESHOLDS = RiskThresholds(intent_confidence=0.6, asr_logprob=-0.6, sentiment_end=-0.05)
NOISY = "channel=gsm-noisy8k"


def plain(call_id: str, *slices: str) -> CallRisk:
    return CallRisk(call_id, ("all", *slices), intent_confidence=0.9, asr_logprob=-0.2, escalated=False,
                    repeated=False, sentiment_end=0.3, disagreement=False)


def week(n: int, seed: int) -> tuple[list[CallRisk], np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Calls whose risk signals follow their errors: (calls, turns, correct turns, reference words, word errors)."""
    rng = np.random.default_rng(seed)
    noisy = rng.random(n) < 0.2
    difficulty = rng.normal(0, 1, n) + 1.2 * noisy
    turns = 1 + rng.poisson(2.0, n)
    correct = rng.binomial(turns, 1 / (1 + np.exp(-(2.6 - 0.9 * difficulty))))
    wrong = 1 - correct / turns
    ref_words = rng.poisson(7.0 * turns) + turns
    errors = rng.poisson(ref_words * np.exp(-2.3 + 0.55 * difficulty) * rng.gamma(4.0, 0.25, n))
    confidence = np.clip(rng.beta(6, 1.5, n) - 0.25 * wrong - 0.05 * difficulty, 0.01, 0.999)
    logprob = np.minimum(-0.05, rng.normal(-0.35 - 0.15 * difficulty, 0.12, n))
    calls = [CallRisk(f"s{seed}-{i:05d}", ("all", NOISY if noisy[i] else "channel=clean16k"),
                      intent_confidence=float(confidence[i]), asr_logprob=float(logprob[i]),
                      escalated=bool(rng.random() < 0.04 + 0.35 * wrong[i]),
                      repeated=bool(rng.random() < 0.05 + 0.25 * wrong[i]),
                      sentiment_end=float(rng.normal(0.2 - 0.6 * wrong[i], 0.3)),
                      disagreement=bool(rng.random() < 0.05 + 0.5 * wrong[i]))
             for i in range(n)]
    return calls, turns.astype(float), correct.astype(float), ref_words.astype(float), errors.astype(float)


@pytest.fixture(scope="module")
def population() -> tuple[list[CallRisk], np.ndarray, np.ndarray, np.ndarray, np.ndarray, RiskThresholds]:
    thresholds = derive_thresholds(week(2000, seed=99)[0])
    return (*week(2000, seed=1), thresholds)


@pytest.mark.parametrize("budget", [1, 60, 150, 1500, 1999.5])
def test_probabilities_sum_to_the_budget_and_lie_in_the_unit_interval(population, budget):
    calls, *_, thresholds = population
    p = np.array(list(inclusion_probabilities(calls, SamplingDesign(budget=budget), thresholds).values()))
    assert p.sum() == pytest.approx(budget, rel=1e-9)
    assert np.all(p > 0) and np.all(p <= 1)
    assert np.min(p) >= 0.3 * budget / len(calls) - 1e-12  # the random floor


def test_a_budget_beyond_the_week_takes_every_call():
    calls = [plain(f"c{i}") for i in range(10)]
    assert set(inclusion_probabilities(calls, SamplingDesign(budget=60), THRESHOLDS).values()) == {1.0}
    assert inclusion_probabilities([], SamplingDesign(), THRESHOLDS) == {}


def test_risky_calls_get_higher_probabilities_than_plain_ones():
    base = plain("base")
    risky = [replace(base, call_id="conf", intent_confidence=0.3), replace(base, call_id="asr", asr_logprob=-1.2),
             replace(base, call_id="esc", escalated=True), replace(base, call_id="rep", repeated=True),
             replace(base, call_id="sent", sentiment_end=-0.5), replace(base, call_id="dis", disagreement=True)]
    unknown = CallRisk("unknown", ("all",))
    calls = [base, unknown, *risky, *(plain(f"p{i}") for i in range(200))]
    p = inclusion_probabilities(calls, SamplingDesign(budget=30), THRESHOLDS)
    assert p["unknown"] == pytest.approx(p["base"])  # an unknown signal lifts nothing
    assert all(p[c.call_id] > p["base"] for c in risky)
    assert p["dis"] > p["sent"]  # disagreement weighs most, negative sentiment least
    everything = replace(base, call_id="all-signals", intent_confidence=0.1, asr_logprob=-2.0, escalated=True,
                         repeated=True, sentiment_end=-0.9, disagreement=True)
    assert risk_score(everything, SamplingDesign(), THRESHOLDS) == pytest.approx(1 + 1 + 1 + 1 + 1 + 0.5 + 2)


def test_capped_calls_pass_their_excess_on():
    calls = [replace(plain(f"r{i}"), disagreement=True, escalated=True) for i in range(5)]
    calls += [plain(f"p{i}") for i in range(20)]
    p = inclusion_probabilities(calls, SamplingDesign(budget=10, random_share=0.0, uplift_disagreement=50), THRESHOLDS)
    assert [p[f"r{i}"] for i in range(5)] == [1.0] * 5
    assert sum(p.values()) == pytest.approx(10)
    assert p["p0"] == pytest.approx(5 / 20)


def test_alerted_slice_calls_are_taken_whole_within_the_cap():
    calls = [plain(f"a{i}", NOISY) for i in range(10)] + [plain(f"p{i}") for i in range(200)]
    p = inclusion_probabilities(calls, SamplingDesign(budget=60), THRESHOLDS, alerted_slices={NOISY})
    assert [p[f"a{i}"] for i in range(10)] == [1.0] * 10
    assert sum(p.values()) == pytest.approx(60)
    assert p["p0"] == pytest.approx(50 / 200)


def test_too_many_alerted_calls_share_the_cap():
    calls = [plain(f"a{i}", NOISY) for i in range(100)] + [plain(f"p{i}") for i in range(200)]
    p = inclusion_probabilities(calls, SamplingDesign(budget=60, alerted_cap_share=0.4), THRESHOLDS,
                                alerted_slices={NOISY})
    assert sum(p[f"a{i}"] for i in range(100)) == pytest.approx(24)
    assert p["a0"] == pytest.approx(24 / 100)
    assert sum(p.values()) == pytest.approx(60)
    everyone = inclusion_probabilities(calls[:100], SamplingDesign(budget=60), THRESHOLDS, alerted_slices={NOISY})
    assert sum(everyone.values()) == pytest.approx(60)  # nothing else to spend on: the alerted calls get it all
    # most of the week alerted: its calls keep at least the even share they would have had without an alert
    most = [plain(f"a{i}", NOISY) for i in range(1000)] + [plain(f"p{i}") for i in range(200)]
    crowded = inclusion_probabilities(most, SamplingDesign(budget=60), THRESHOLDS, alerted_slices={NOISY})
    assert crowded["a0"] == pytest.approx(60 / 1200) and sum(crowded.values()) == pytest.approx(60)


def test_thresholds_come_from_the_previous_week(population):
    calls, *_, thresholds = population
    previous = week(2000, seed=99)[0]
    confidences = np.array([c.intent_confidence for c in previous])
    assert np.mean(confidences < thresholds.intent_confidence) == pytest.approx(0.2, abs=0.01)
    assert thresholds.sentiment_end == -0.05
    shifted = [replace(c, intent_confidence=c.intent_confidence / 2, asr_logprob=c.asr_logprob * 2) for c in calls]
    assert derive_thresholds(previous) == thresholds  # this week's values play no part
    assert derive_thresholds(shifted) != thresholds  # (they would, were the thresholds this week's own)
    assert derive_thresholds([CallRisk("x")]) == RiskThresholds(None, None, -0.05)


def test_the_poisson_draw_is_seeded_and_its_size_averages_the_budget(population):
    calls, *_, thresholds = population
    p = inclusion_probabilities(calls, SamplingDesign(budget=60), thresholds)
    first = draw_sample(p, seed=7)
    assert draw_sample(dict(reversed(p.items())), seed=7) == first
    assert draw_sample(p, seed=8).call_ids != first.call_ids
    assert all(first.probabilities[c] == p[c] for c in first.call_ids)
    sizes = [len(draw_sample(p, seed=s).call_ids) for s in range(400)]
    spread = math.sqrt(sum(v * (1 - v) for v in p.values()) / 400)
    assert abs(np.mean(sizes) - 60) < 4 * spread


def test_double_review_takes_a_share_of_the_selected_calls(population):
    calls, *_, thresholds = population
    p = inclusion_probabilities(calls, SamplingDesign(budget=60), thresholds)
    for seed in range(20):
        sample = draw_sample(p, seed=seed)
        assert len(sample.double_review) == math.ceil(0.1 * len(sample.call_ids))
        assert set(sample.double_review) <= set(sample.call_ids)
    few = draw_sample({"a": 1.0, "b": 1.0}, seed=0)
    assert len(few.double_review) == 1
    assert draw_sample({"a": 1.0}, seed=0, double_review_share=0.0).double_review == ()


def test_hajek_is_exact_on_a_census(population):
    calls, turns, correct, ref_words, errors, _ = population
    accuracy = hajek_ratio(correct, turns, np.ones(len(calls)), proportion=True)
    assert accuracy.value == pytest.approx(correct.sum() / turns.sum())
    assert accuracy.se == pytest.approx(0.0, abs=1e-15) and accuracy.low == accuracy.high == accuracy.value
    assert hajek_ratio(errors, ref_words, np.ones(len(calls))).value == pytest.approx(errors.sum() / ref_words.sum())
    assert accuracy.effective_n == pytest.approx(len(calls))


def test_a_domain_is_its_calls_alone():
    rng = np.random.default_rng(3)
    y, x, p = rng.integers(0, 4, 40).astype(float), rng.integers(3, 6, 40).astype(float), rng.uniform(0.1, 1, 40)
    inside = rng.random(40) < 0.4
    domain, subset = domain_estimate(y, x, p, inside), hajek_ratio(y[inside], x[inside], p[inside])
    assert (domain.value, domain.se, domain.n_sampled) == pytest.approx((subset.value, subset.se, subset.n_sampled))
    by_slice = slice_estimates(y, x, p, [("all", "in") if i else ("all",) for i in inside])
    assert set(by_slice) == {"all", "in"} and by_slice["in"].value == pytest.approx(domain.value)


def test_edge_cases_give_nan_or_clear_errors():
    assert math.isnan(hajek_ratio([], [], []).value)
    assert math.isnan(hajek_ratio([0, 0], [0, 0], [0.5, 0.5]).value)
    assert domain_estimate([1, 2], [3, 3], [0.5, 0.5], [False, False]).n_sampled == 0
    for p in ([0.0, 0.5], [0.5, 1.2], [math.nan, 0.5]):
        with pytest.raises(ValueError, match="probabilities"):
            hajek_ratio([1, 1], [2, 2], p)
    with pytest.raises(ValueError, match="one value per sampled call"):
        hajek_ratio([1, 1], [2], [0.5, 0.5])
    with pytest.raises(ValueError, match="0 <= y <= x"):
        hajek_ratio([3, 1], [2, 2], [0.5, 0.5], proportion=True)
    one = hajek_ratio([1], [2], [0.5], proportion=True)
    assert (one.value, one.low, one.high) == (0.5, 0.0, 1.0)
    flawless = hajek_ratio([3, 2, 4, 3], [3, 2, 4, 3], [0.2, 0.3, 0.2, 0.5], proportion=True)
    assert flawless.value == 1.0 and flawless.high == 1.0 and 0.3 < flawless.low < 0.95  # no zero-width certainty
    with pytest.raises(ValueError):
        SamplingDesign(budget=0)
    with pytest.raises(ValueError, match="unique"):
        inclusion_probabilities([plain("a"), plain("a")], SamplingDesign(budget=1), THRESHOLDS)
    with pytest.raises(ValueError, match="probabilities"):
        draw_sample({"a": 0.0}, seed=0)


def test_design_intervals_cover_the_truth_where_the_naive_mean_is_biased(population):
    calls, turns, correct, ref_words, errors, thresholds = population
    p = inclusion_probabilities(calls, SamplingDesign(budget=100), thresholds)
    index = {c.call_id: i for i, c in enumerate(calls)}
    noisy = np.array([NOISY in c.slices for c in calls])
    figures = {"accuracy": (correct, turns, True), "wer": (errors, ref_words, False)}
    covered: dict[tuple[str, bool], list[bool]] = {}
    error: dict[tuple[str, bool, str], list[float]] = {}
    for seed in range(300):
        sample = draw_sample(p, seed=seed)
        rows = np.array([index[c] for c in sample.call_ids])
        weights = np.array(list(sample.probabilities.values()))
        for name, (y, x, proportion) in figures.items():
            for in_slice in (False, True):
                domain = noisy if in_slice else np.ones(len(calls), dtype=bool)
                truth = y[domain].sum() / x[domain].sum()
                estimate = domain_estimate(y[rows], x[rows], weights, domain[rows], proportion=proportion)
                covered.setdefault((name, in_slice), []).append(estimate.low <= truth <= estimate.high)
                inside = rows[domain[rows]]
                error.setdefault((name, in_slice, "hajek"), []).append(estimate.value - truth)
                error.setdefault((name, in_slice, "naive"), []).append(y[inside].sum() / x[inside].sum() - truth)
    for key, hits in covered.items():
        assert 0.91 <= np.mean(hits) <= 0.99, (key, np.mean(hits))
    for name, in_slice in covered:
        hajek, naive = np.mean(error[(name, in_slice, "hajek")]), np.mean(error[(name, in_slice, "naive")])
        assert abs(naive) > 0.01 and abs(naive) > 5 * abs(hajek), (name, in_slice, hajek, naive)
