"""The week's accuracy and WER from the reviewed sample alone, weighted by the design so oversampling cannot bias them.

The QA sample oversamples risky calls (``qa.sampling``), so its plain mean reads the week worse than
it was. Weighting each reviewed call by 1/p, its inclusion probability, undoes that: the Hájek ratio

    R = sum(y_i / p_i) / sum(x_i / p_i)

over the sampled calls estimates the week's sum(y) / sum(x). One formula serves every figure:
intent accuracy (y = correctly understood turns, x = turns), WER (y = word errors, x = reference
words), a call-level rate such as resolved calls (y = 0/1, x = 1).

Its variance under Poisson sampling, by Taylor linearisation: with residuals
z_i = (y_i - R x_i) / X_hat, X_hat = sum(x_i / p_i),

    Var(R) ~ sum over sampled i of (1 - p_i) z_i^2 / p_i^2

(a call taken with certainty, p = 1, adds nothing). A slice is a domain: y and x are zeroed outside
it, the correct domain estimator under Poisson sampling (the slice's sample size is itself random).

The interval is R +- q * se. With the normal quantile it covered 83-94% in
``benchmarks/qa_sampling_coverage.py`` (weeks of 280 calls, budget 60): a slice holds 8-25 sampled
calls, and a few of them (the rare errors, a skewed WER) carry most of the variance, so the variance
estimate is itself noisy. The default quantile is Student's t on the variance estimate's effective
degrees of freedom (Satterthwaite, plug-in): df = (sum c_i)^2 / sum c_i^2, c_i the calls' terms of
Var(R) above, at most n - 1. It is n - 1 when every call adds alike and drops toward 1 when one call
dominates; the same benchmark then covers 93-97%. A proportion whose sample shows no error at all
(R = 0 or 1, se = 0) gets a Wilson interval instead of a zero-width one, on the domain's effective
number of x units (Kish's formula over turns, weight 1/p each; turns of one call counted as
independent, so optimistic where errors cluster within calls) and t on n - 1 degrees of freedom.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike
from scipy.stats import norm, t

Interval = Literal["t", "normal"]
#: "t" (default): Student's t quantile on the variance estimate's effective degrees of freedom;
#: "normal": the plain z quantile (on n - 1 degrees of freedom where a fallback needs one).
INTERVALS: tuple[Interval, ...] = ("t", "normal")


@dataclass(frozen=True)
class DesignEstimate:
    """A design-based estimate with its interval; NaN throughout when the domain has no sampled calls or no x."""

    value: float
    low: float
    high: float
    se: float
    n_sampled: int  # sampled calls in the domain
    effective_n: float  # Kish: (sum w)^2 / sum(w^2), w = 1/p over the domain's sampled calls
    proportion: bool  # a proportion: the interval lies within [0, 1]
    df: float = math.inf  # degrees of freedom of the interval's quantile (inf: normal; 0: one call, no interval)


def _arrays(y: ArrayLike, x: ArrayLike, p: ArrayLike) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    ys, xs, ps = (np.asarray(v, dtype=float).reshape(-1) for v in (y, x, p))
    if not len(ys) == len(xs) == len(ps):
        raise ValueError(f"y, x and p must have one value per sampled call, got {len(ys)}, {len(xs)}, {len(ps)}")
    if not np.all(np.isfinite(ys) & np.isfinite(xs)):
        raise ValueError("y and x must be finite")
    if np.any(xs < 0):
        raise ValueError("x (turns, reference words, calls) cannot be negative")
    if not np.all((ps > 0) & (ps <= 1)):
        raise ValueError("inclusion probabilities must lie in (0, 1]")
    return ys, xs, ps


def _quantile(level: float, df: float, interval: Interval) -> float:
    upper = (1 + level) / 2
    if interval == "normal" or math.isinf(df):
        return float(norm.ppf(upper))
    return float(t.ppf(upper, df))


def _satterthwaite(terms: np.ndarray, n: int) -> float:
    """Effective degrees of freedom of a sum of per-call variance terms, between 1 and n - 1."""
    total = float(terms.sum())
    if total <= 0:
        return float(max(n - 1, 1))
    return float(min(max(total**2 / float(np.square(terms).sum()), 1.0), n - 1))


def _wilson(share: float, n_star: float, q: float) -> tuple[float, float]:
    """Wilson's score interval for a proportion observed on n_star effective units."""
    centre = (share + q * q / (2 * n_star)) / (1 + q * q / n_star)
    half = q / (1 + q * q / n_star) * math.sqrt(share * (1 - share) / n_star + q * q / (4 * n_star**2))
    return max(centre - half, 0.0), min(centre + half, 1.0)


def domain_estimate(
    y: ArrayLike,
    x: ArrayLike,
    p: ArrayLike,
    in_domain: ArrayLike | None = None,
    *,
    proportion: bool = False,
    level: float = 0.95,
    interval: Interval = "t",
) -> DesignEstimate:
    """The Hájek ratio over the sampled calls in the domain (all of them when ``in_domain`` is None).

    One value per sampled call: ``y`` numerator, ``x`` denominator, ``p`` inclusion probability. A
    domain with no sampled call, or whose x sum to 0, gives NaN (a slice the week's sample missed is
    an outcome, not an error); bad inputs raise ValueError. ``proportion``: y <= x, and the interval is
    kept within [0, 1]. A domain of one sampled call has an unbounded interval (its linearised
    variance is 0 by construction); a domain sampled whole (every p = 1) a zero-width one.
    """
    if not 0 < level < 1:
        raise ValueError(f"level must lie in (0, 1), got {level}")
    if interval not in INTERVALS:
        raise ValueError(f"interval must be one of {INTERVALS}, got {interval!r}")
    ys, xs, ps = _arrays(y, x, p)
    member = np.ones(len(ys), dtype=bool) if in_domain is None else np.asarray(in_domain, dtype=bool).reshape(-1)
    if len(member) != len(ys):
        raise ValueError(f"in_domain must have one flag per sampled call, got {len(member)} for {len(ys)}")
    if proportion and np.any((ys < 0) | (ys > xs)):
        raise ValueError("a proportion needs 0 <= y <= x for every call")
    n = int(member.sum())
    ys, xs = np.where(member, ys, 0.0), np.where(member, xs, 0.0)
    w = 1.0 / ps
    effective_n = float(w[member].sum() ** 2 / np.square(w[member]).sum()) if n else 0.0
    x_hat = float(np.sum(xs * w))
    if n == 0 or x_hat <= 0:
        nan = math.nan
        return DesignEstimate(nan, nan, nan, nan, n, effective_n, proportion, nan)
    ratio = float(np.sum(ys * w)) / x_hat
    terms = (1.0 - ps) * np.square((ys - ratio * xs) / x_hat * w)
    se = math.sqrt(float(terms.sum()))
    if n == 1:
        low, high = (0.0, 1.0) if proportion else (-math.inf, math.inf)
        return DesignEstimate(ratio, low, high, se, n, effective_n, proportion, 0.0)
    df = _satterthwaite(terms, n) if interval == "t" else math.inf
    q = _quantile(level, df, interval)
    low, high = ratio - q * se, ratio + q * se
    if proportion:
        sampled_whole = bool(np.all(ps[member] == 1.0))
        if se <= 1e-12 and not sampled_whole:  # no error (or no success) seen: not a zero-width certainty
            units = float(np.sum(xs * w) ** 2 / np.sum(xs * w * w))  # Kish over the x units (turns) themselves
            df = float(n - 1) if interval == "t" else math.inf
            low, high = _wilson(ratio, units, _quantile(level, df, interval))
        low, high = max(low, 0.0), min(high, 1.0)
    return DesignEstimate(ratio, low, high, se, n, effective_n, proportion, df)


def hajek_ratio(y: ArrayLike, x: ArrayLike, p: ArrayLike, *, proportion: bool = False, level: float = 0.95,
                interval: Interval = "t") -> DesignEstimate:
    """The week's sum(y) / sum(x) from every sampled call (``domain_estimate`` over the whole week)."""
    return domain_estimate(y, x, p, None, proportion=proportion, level=level, interval=interval)


def slice_estimates(
    y: ArrayLike,
    x: ArrayLike,
    p: ArrayLike,
    slices: Sequence[Collection[str]],
    *,
    proportion: bool = False,
    level: float = 0.95,
    interval: Interval = "t",
) -> dict[str, DesignEstimate]:
    """One domain estimate per slice named in ``slices`` (each sampled call's slices), by slice name."""
    names = sorted({name for call in slices for name in call})
    return {name: domain_estimate(y, x, p, [name in call for call in slices], proportion=proportion,
                                  level=level, interval=interval)
            for name in names}
