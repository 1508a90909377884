"""What a paired comparison can see at its size: the gate's power figures, and paired intervals for small slices.

A non-inferiority criterion compares per-unit differences (champion minus challenger right or wrong,
or word errors) with a margin. Its power rests on their spread: with ``sd`` the standard deviation of
the per-unit difference (for right/wrong, about the square root of the discordance, the share of
units where the two models differ), a one-sided test at ``alpha`` detects, with probability
``power``, a difference of

    minimum_detectable = (z[1 - alpha] + z[power]) * sd / sqrt(n)

and reaches the margin at ``n_needed = sd**2 * (z[1 - alpha] + z[power])**2 / margin**2`` units: about
``discordance * 10.5 / margin**2`` at alpha 0.025 and power 0.9 (1,577 turns at 6% and 0.02).
Below that size an inconclusive interval says "too small a golden set", not "worse".

The spread is never taken below what a handful of units can rule out: with no (or few) discordant units
among ``n``, a discordance up to about 3/n is still plausible at 95% (the rule of three), so the
planning spread is at least ``unit * sqrt(3 / n)``. Two bundles that agree on two turns have not shown
that they agree: their criterion needs thousands of turns, not none.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np


def one_sided_alpha(confidence: float) -> float:
    """The one-sided error rate of a two-sided ``confidence`` interval's upper bound: (1 - confidence) / 2."""
    return (1 - confidence) / 2


@dataclass(frozen=True)
class Power:
    """A criterion's power figures at its size (serialised in the decision record)."""

    n: int  # units compared (utterances, digit strings)
    discordance: float  # share of units where the two models differ
    sd: float  # standard deviation of the per-unit difference (for WER: normalised by the mean reference words)
    alpha: float  # one-sided
    power: float  # the target
    minimum_detectable: float  # the smallest difference found with that power at this n
    n_needed: int  # the units the margin needs for that power

    @property
    def underpowered(self) -> bool:
        return self.n < self.n_needed

    def describe(self) -> str:
        """The figures in words, for a criterion's rule."""
        return (f"n {self.n} < {self.n_needed} needed at discordance {self.discordance:.3f} (sd {self.sd:.3f}): "
                f"detects {self.minimum_detectable:.4f} with power {self.power:.0%}, one-sided alpha {self.alpha:.3f}")


def paired_power(differences: np.ndarray, margin: float, confidence: float, power: float,
                 unit: float = 1.0) -> Power:
    """Power figures of a non-inferiority test of the mean of ``differences`` (one per unit) against ``margin``;
    ``unit``: one unit's difference on their scale (1 for right/wrong), for the rule-of-three floor."""
    diff = np.asarray(differences, dtype=float)
    alpha = one_sided_alpha(confidence)
    z = NormalDist().inv_cdf(1 - alpha) + NormalDist().inv_cdf(power)
    sd = max(float(diff.std()), unit * math.sqrt(min(1.0, 3 / diff.size))) if diff.size else 0.0
    return Power(
        n=int(diff.size),
        discordance=float(np.mean(diff != 0)) if diff.size else 0.0,
        sd=sd,
        alpha=alpha,
        power=power,
        minimum_detectable=z * sd / math.sqrt(diff.size) if diff.size else math.inf,
        n_needed=math.ceil(round((z * sd / margin) ** 2, 9)),
    )


def recommended_size(discordance: float, margin: float, confidence: float, power: float) -> int:
    """Units a margin needs for ``power`` against an equal challenger at ``discordance`` (right/wrong units)."""
    alpha = one_sided_alpha(confidence)
    z = NormalDist().inv_cdf(1 - alpha) + NormalDist().inv_cdf(power)
    return math.ceil(discordance * (z / margin) ** 2)


def wilson(successes: int, n: int, confidence: float) -> tuple[float, float]:
    """Wilson's score interval of a proportion (n > 0)."""
    z = NormalDist().inv_cdf(1 - one_sided_alpha(confidence))
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def paired_change_interval(champion: np.ndarray, challenger: np.ndarray, confidence: float) -> tuple[float, float]:
    """Interval of challenger minus champion accuracy on the same units (Newcombe 1998, method 10).

    Built from each accuracy's Wilson interval and the correlation of the pairs, so it stays inside
    [-1, 1] and is not degenerate at 11 units with no discordant one, where a bootstrap gives [0, 0].
    """
    a, b = np.asarray(challenger, dtype=bool), np.asarray(champion, dtype=bool)
    n = a.size
    both, only_a, only_b = int(np.sum(a & b)), int(np.sum(a & ~b)), int(np.sum(~a & b))
    neither = n - both - only_a - only_b
    p1, p2 = (both + only_a) / n, (both + only_b) / n
    (l1, u1), (l2, u2) = wilson(both + only_a, n, confidence), wilson(both + only_b, n, confidence)
    margins = (both + only_a) * (only_b + neither) * (both + only_b) * (only_a + neither)
    cross = float(both * neither - only_a * only_b)  # Newcombe's continuity correction of the correlation:
    cross = cross - n / 2 if cross > n / 2 else min(cross, 0.0)  # towards 0, never past it
    phi = cross / math.sqrt(margins) if margins else 0.0
    below = math.sqrt(max(0.0, (p1 - l1) ** 2 - 2 * phi * (p1 - l1) * (u2 - p2) + (u2 - p2) ** 2))
    above = math.sqrt(max(0.0, (u1 - p1) ** 2 - 2 * phi * (u1 - p1) * (p2 - l2) + (p2 - l2) ** 2))
    return p1 - p2 - below, p1 - p2 + above
