"""Whether the QA review's design-based intervals hold their 95%: coverage, width and the naive mean's bias.

Fixed simulated weeks (280 calls of about three turns each by default), whose intent accuracy and
WER fall with the very signals the sampler oversamples (low confidence, low ASR log-probability,
escalation, callbacks, negative end sentiment, champion/challenger disagreement). The risk
thresholds come from a previous simulated week. Each week is sampled ``--draws`` times at the design's
budget (Poisson, ``qa.sampling``) and estimated from the reviewed calls alone (``qa.design_estimates``);
reviewers make no mistakes (``--reviewer-noise`` adds a pass where they do, as the demo's simulated
reviewers: a wrong intent on 5% of turns, 3% of words misheard, and on pre-filled (not blind) calls
the champion's answer accepted as it stands 30% of the time; that pass reports the bias it causes).
One JSON line per week, alerted slice (none, then one), reviewer noise (off, then on), estimate
and domain: the share of nominal 95% intervals that cover the week's true value (the default t
interval, with the shares missing low and high, and the plain normal one), their mean widths, the
bias and RMSE of the Hájek estimate, the bias of the naive unweighted ratio, the mean sampled calls,
Kish's effective n and the t interval's degrees of freedom in the domain.
Bar (issue): coverage within 92-98%.

    .venv/bin/python benchmarks/qa_sampling_coverage.py --draws 1000
"""

from __future__ import annotations

import argparse
import math
import time
from dataclasses import dataclass

import numpy as np
from common import emit  # benchmarks/common.py

from qa.design_estimates import domain_estimate
from qa.sampling import (
    CallRisk,
    SamplingDesign,
    blind_probability,
    derive_thresholds,
    draw_sample,
    inclusion_probabilities,
)
from qa.simulated_reviewer import ReviewerNoise

CHANNELS = ("channel=clean16k", "channel=telephone8k", "channel=gsm-noisy8k")
CHANNEL_MIX = (0.5, 0.35, 0.15)
VOICES = ("voice=en-us+m1", "voice=en-us+f2", "voice=en-gb+f4", "voice=en-in+m3")
SLICES = ("all", "channel=gsm-noisy8k", "voice=en-gb+f4")


@dataclass(frozen=True)
class Week:
    """A simulated week with its truth: per call, turns, correctly understood turns, reference words, word errors."""

    calls: list[CallRisk]
    turns: np.ndarray
    correct: np.ndarray
    ref_words: np.ndarray
    errors: np.ndarray


def simulate_week(n: int, seed: int) -> Week:
    """Calls whose errors drive their risk signals: a noisy channel and hesitant callers go wrong more often."""
    rng = np.random.default_rng(seed)
    channel = rng.choice(len(CHANNELS), n, p=CHANNEL_MIX)
    voice = rng.integers(0, len(VOICES), n)
    noisy = channel == 2
    difficulty = rng.normal(0.0, 1.0, n) + 1.2 * noisy + 0.4 * (channel == 1)
    turns = 1 + rng.poisson(2.0, n)
    accuracy = 1 / (1 + np.exp(-(2.6 - 0.9 * difficulty)))
    correct = rng.binomial(turns, accuracy)
    wrong_share = 1 - correct / turns
    asr_logprob = np.minimum(-0.05, rng.normal(-0.35 - 0.15 * difficulty, 0.12, n))
    wer_rate = np.exp(-2.3 + 0.55 * difficulty) * rng.gamma(4.0, 0.25, n)
    ref_words = rng.poisson(7.0 * turns) + turns
    errors = rng.poisson(ref_words * wer_rate)
    confidence = np.clip(rng.beta(6, 1.5, n) - 0.25 * wrong_share - 0.05 * difficulty, 0.01, 0.999)
    escalated = rng.random(n) < 0.04 + 0.35 * wrong_share
    repeated = rng.random(n) < 0.05 + 0.25 * wrong_share
    sentiment = np.clip(rng.normal(0.2 - 0.6 * wrong_share, 0.3, n), -1, 1)
    disagreement = rng.random(n) < 0.05 + 0.5 * wrong_share
    has_shadow = rng.random(n) < 0.7  # shadow records for most calls, not all
    calls = [
        CallRisk(call_id=f"w{seed}-c{i:05d}", slices=("all", CHANNELS[channel[i]], VOICES[voice[i]]),
                 intent_confidence=float(confidence[i]), asr_logprob=float(asr_logprob[i]),
                 escalated=bool(escalated[i]), repeated=bool(repeated[i]), sentiment_end=float(sentiment[i]),
                 disagreement=bool(disagreement[i]) if has_shadow[i] else None)
        for i in range(n)
    ]
    return Week(calls, turns.astype(float), correct.astype(float), ref_words.astype(float), errors.astype(float))


def reviewed(week: Week, rows_of: np.ndarray, blind: np.ndarray, noise: ReviewerNoise | None,
             rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """What reviewers report for the sampled calls: correct turns and word errors (the truth, without ``noise``).

    A wrong intent label makes a right champion answer look wrong (it rarely makes a wrong one look right:
    76 other choices); misheard words add errors; an anchored reviewer on a pre-filled call takes the
    champion's answers as right (no intent error, no word error on that call)."""
    correct, errors = week.correct[rows_of].copy(), week.errors[rows_of].copy()
    if noise is None:
        return correct, errors
    correct -= rng.binomial(correct.astype(int), noise.intent_noise)
    errors += rng.poisson(week.ref_words[rows_of] * noise.word_noise)
    anchored = ~blind & (rng.random(rows_of.size) < noise.anchoring)
    correct[anchored], errors[anchored] = week.turns[rows_of][anchored], 0.0
    return correct, errors


def measure(week: Week, probabilities: dict[str, float], draws: int, first_seed: int,
            noise: ReviewerNoise | None = None, random_share: float = 0.3) -> list[dict[str, object]]:
    """Every (estimate, slice) figure of one week over ``draws`` Poisson samples (reviewed with ``noise``)."""
    index = {c.call_id: i for i, c in enumerate(week.calls)}
    member = {name: np.array([name in c.slices for c in week.calls]) for name in SLICES}
    figures = {"intent_accuracy": (week.correct, week.turns, True), "wer": (week.errors, week.ref_words, False)}
    rows: dict[tuple[str, str], dict[str, list[float]]] = {
        (est, name): {k: [] for k in ("value", "covered", "covered_normal", "truth_below", "truth_above", "width",
                                      "width_normal", "naive", "n", "eff", "df")}
        for est in figures for name in SLICES}
    sizes = []
    floor = blind_probability(probabilities, random_share)
    for draw in range(draws):
        sample = draw_sample(probabilities, seed=first_seed + draw, blind=floor)
        rows_of = np.array([index[c] for c in sample.call_ids], dtype=int)
        p = np.array(list(sample.probabilities.values()))
        blind = np.isin(np.array(sample.call_ids), np.array(sample.blind, dtype=object))
        said_correct, said_errors = reviewed(week, rows_of, blind, noise, np.random.default_rng(first_seed + draw))
        sizes.append(len(rows_of))
        for est, (y, x, proportion) in figures.items():
            seen = said_correct if est == "intent_accuracy" else said_errors
            for name in SLICES:
                inside = member[name][rows_of]
                truth = y[member[name]].sum() / x[member[name]].sum()
                t_est = domain_estimate(seen, x[rows_of], p, inside, proportion=proportion)
                n_est = domain_estimate(seen, x[rows_of], p, inside, proportion=proportion, interval="normal")
                row = rows[(est, name)]
                if math.isnan(t_est.value):
                    continue
                row["value"].append(t_est.value - truth)
                row["covered"].append(float(t_est.low <= truth <= t_est.high))
                row["truth_below"].append(float(truth < t_est.low))
                row["truth_above"].append(float(truth > t_est.high))
                row["covered_normal"].append(float(n_est.low <= truth <= n_est.high))
                row["width"].append(t_est.high - t_est.low)
                row["width_normal"].append(n_est.high - n_est.low)
                row["df"].append(t_est.df)
                naive = seen[inside].sum() / x[rows_of][inside].sum()
                row["naive"].append(naive - truth)
                row["n"].append(t_est.n_sampled)
                row["eff"].append(t_est.effective_n)
    out = []
    for (est, name), row in rows.items():
        truth = float(figures[est][0][member[name]].sum() / figures[est][1][member[name]].sum())
        def mean(key: str, digits: int = 4, values: dict[str, list[float]] = row) -> float:
            finite = [v for v in values[key] if math.isfinite(v)]
            return round(float(np.mean(finite)), digits) if finite else math.nan

        out.append(dict(estimate=est, domain=name, calls_in_domain=int(member[name].sum()), truth=round(truth, 4),
                        draws=draws, estimated_draws=len(row["value"]),
                        coverage=mean("covered"), truth_below_interval=mean("truth_below"),
                        truth_above_interval=mean("truth_above"), mean_width=mean("width"),
                        coverage_normal=mean("covered_normal"), mean_width_normal=mean("width_normal"),
                        hajek_bias=mean("value"), hajek_rmse=round(float(np.sqrt(np.mean(np.square(row["value"])))), 4),
                        naive_bias=mean("naive"), mean_sampled=mean("n", 1), mean_effective_n=mean("eff", 1),
                        mean_df=mean("df", 1), mean_sample_size=round(float(np.mean(sizes)), 1)))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=280, help="calls in a simulated week")
    parser.add_argument("--budget", type=float, default=60.0)
    parser.add_argument("--draws", type=int, default=1000)
    parser.add_argument("--weeks", type=int, nargs="+", default=[1, 2, 3], help="seeds of the simulated weeks")
    parser.add_argument("--alerted", default="channel=gsm-noisy8k",
                        help="a slice to treat as alerted in a second pass over each week ('' for none)")
    parser.add_argument("--reviewer-noise", action="store_true",
                        help="also measure with the simulated reviewers' noise and anchoring (the bias they cause)")
    args = parser.parse_args()
    noises = [None, ReviewerNoise()] if args.reviewer_noise else [None]
    design = SamplingDesign(budget=args.budget)
    started = time.perf_counter()
    for seed in args.weeks:
        thresholds = derive_thresholds(simulate_week(args.calls, seed + 1000).calls, design)
        week = simulate_week(args.calls, seed)
        for alerted in ([(), (args.alerted,)] if args.alerted else [()]):
            probabilities = inclusion_probabilities(week.calls, design, thresholds, alerted)
            p = np.array(list(probabilities.values()))
            for noise in noises:
                for figure in measure(week, probabilities, args.draws, seed * 1_000_000, noise, design.random_share):
                    emit(figure="qa_design_coverage", week=seed, calls=args.calls, budget=args.budget,
                         alerted=list(alerted), reviewer_noise=noise is not None, p_min=round(float(p.min()), 4),
                         p_max=round(float(p.max()), 4), **figure)
    emit(figure="qa_design_coverage_seconds", seconds=round(time.perf_counter() - started, 1))


if __name__ == "__main__":
    main()
