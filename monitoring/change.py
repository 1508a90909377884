"""Sequential change tests, so a metric that really moved alerts within days while a stable one almost never does.

Each (rule, slice) pair is judged against a reference window of earlier daily figures of the same
metric and slice (the caller picks it: e.g. the 28 or 56 days before the monitored period).

Standardising a day. A daily figure varies for two reasons: sampling (few calls: its standard error
``se``) and real day-to-day variation (Mondays differ from Sundays). The reference gives a robust
mean (days further than 4 robust SDs from the median are dropped, then the plain mean) and the
between-day variance component ``tau2 = max(0, var(days) - mean(se^2))``. A day (or a rolling
window of ``window_days`` days, pooled n-weighted) is then
``z = (value - ref_mean) / sqrt(tau2 * sum(w_i^2) + sum(w_i^2 se_i^2))`` with ``w_i = n_i / N``.
For rates (``*_rate``) the se is the binomial one from the reference mean and the day's ``n`` (the
score-test form: under "no change" that is the figure's true se, and a day's own noisy se would make
a spike on a small day look smaller than it is); other metrics use the figure's ``se``, else its
interval ``(high - low) / 3.92``, else 0 (all variation then counts as between-day).

The tests. One-sided CUSUM ``S_t = max(0, S_{t-1} + z_t - k)``, alarm when ``S_t > h``, then
``S = 0``; EWMA ``E_t = lam z_t + (1 - lam) E_{t-1}``, alarm when ``E_t > L sqrt(lam / (2 - lam))``,
then ``E = 0``. ``direction: down`` runs them on ``-z``; ``both`` runs two one-sided tests. Days
from fewer than ``min_n`` calls (pooled, for a rolling window), provisional figures and missing days
are not judged: the statistic carries over unchanged.

Tuning. All rules together may raise at most :data:`FALSE_ALARMS_PER_28_DAYS` false alarms per 28
days on a stable stream. Change tests spend :data:`CHANGE_SHARE` of that (the rest is margin for
threshold rules and for small-n days whose tails are heavier than normal), split evenly
(Bonferroni) over the one-sided tests that run: per test and day ``0.1 * 0.5 / 28 / tests``.
``h`` (CUSUM) or ``L`` (EWMA) is then found by bisection on a seeded, bounded Monte Carlo of
in-control streams (cached per process) that includes what a closed form leaves out and what
dominates in practice: the reference mean and variance are *estimated* from ``reference_days``
days (a reference mean 0.3 SD off is a persistent shift the CUSUM accumulates; the variance is
taken as wholly estimated, the worst case), and adjacent rolling windows overlap (correlated z).
Siegmund's approximation (:func:`siegmund_threshold`) is kept as the known-parameter cross-check.
With 21 tests (about 8.5e-5 per test and day): known parameters give h = 2.56 for k = 1.5
(Siegmund 2.46), a 28-day reference h = 4.4, 56 days 3.1, 14 days 14; k = 0.5 would need h = 16
at 28 days, which is why the rules use k = 1.5 (catch a 3 SD step in days, not a 1 SD drift in
weeks). Below :data:`MIN_REFERENCE_DAYS` usable reference days (at 7, not even h = 60 keeps the
budget: a 7-day variance is too often far too small) no change test runs at all; thresholds still
do, and the skip is reported ("reference too short"), never silent.
"""

from __future__ import annotations

import logging
import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from functools import lru_cache

import numpy as np
from numpy.typing import NDArray
from scipy import optimize, stats

from monitoring.figures import DailyFigure
from monitoring.rules import Change, Rule, Threshold

log = logging.getLogger(__name__)

Array = NDArray[np.float64]

#: Expected false alarms per 28 days from all rules together on a stable stream.
FALSE_ALARMS_PER_28_DAYS = 0.1
#: The share of that budget the change tests spend; the rest is margin (thresholds, non-normal small days).
CHANGE_SHARE = 0.5
#: Fewer usable reference days than this: no change test, thresholds only ("reference too short").
MIN_REFERENCE_DAYS = 14
#: Reference lengths the calibration knows; a reference is calibrated as the longest of these it reaches.
REFERENCE_BUCKETS = (14, 21, 28, 42, 56, 84)
#: The number of one-sided tests :func:`evaluate` assumes when the caller does not say (:func:`evaluate_all` counts).
DEFAULT_TESTS = 40
#: Days from a reference mean that a reference day may lie, in robust SDs, before it is dropped as an outlier.
OUTLIER_SDS = 4.0
#: Calibration Monte Carlo: days per simulated stream, alarms aimed for at the target rate, bounds on streams.
HORIZON_DAYS = 56
_TARGET_ALARMS = 100
_MIN_STREAMS, _MAX_STREAMS, _STREAM_STEP = 8192, 131072, 8192
_SEED = 20240601
_MAX_H, _MAX_L = 60.0, 15.0
_Z95_TWO_SIDED = 1.959963984540054


@dataclass(frozen=True)
class ChangeEvent:
    """One alarm: ``rule`` fired for ``metric`` on ``slice`` on ``day``.

    ``value``: the judged figure (pooled over the rule's window); ``reference_mean``: what it was
    judged against (None for a threshold); ``statistic``: the CUSUM/EWMA statistic in standard
    deviations (``limit`` is its alarm limit), or for a threshold the distance past the limit.
    """

    rule: str
    metric: str
    slice: str
    day: date
    value: float
    reference_mean: float | None
    statistic: float
    severity: str
    component: str = ""
    direction: str = ""
    limit: float | None = None


@dataclass
class Evaluation:
    """What :func:`evaluate_all` found: alarms, notes (skipped tests and why), and the budget it used."""

    events: list[ChangeEvent] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    tests: int = 0
    per_test_rate: float = 0.0


@dataclass(frozen=True)
class Reference:
    """A reference window's robust summary (see the module docstring)."""

    days: int
    mean: float
    between_day_var: float
    sampling_var: float
    n_total: int


# -- budget and calibration ------------------------------------------------------------------------
def per_test_rate(tests: int) -> float:
    """In-control alarm probability per day allowed to each of ``tests`` one-sided change tests."""
    return FALSE_ALARMS_PER_28_DAYS * CHANGE_SHARE / 28.0 / max(1, tests)


def siegmund_threshold(per_day_alarm_rate: float, k: float) -> float:
    """CUSUM ``h`` for N(0,1) z with known parameters, from Siegmund's ARL approximation (a cross-check).

    ``ARL0 = (exp(2 k b) - 2 k b - 1) / (2 k^2)`` with ``b = h + 1.166``, solved for ``ARL0 = 1 / rate``.
    """
    target = 1.0 / per_day_alarm_rate

    def excess(h: float) -> float:
        b = 2.0 * k * (h + 1.166)
        return (math.expm1(b) - b) / (2.0 * k * k) - target

    return float(optimize.brentq(excess, 0.0, 200.0))


def _bucket(reference_days: int | None) -> int | None:
    if reference_days is None:
        return None
    fitting = [b for b in REFERENCE_BUCKETS if b <= reference_days]
    if not fitting:
        raise ValueError(f"reference too short: {reference_days} days < {MIN_REFERENCE_DAYS}")
    return fitting[-1]


def _quantise(rate: float) -> float:
    """Round a rate down to a 10th-of-a-decade grid, so nearby budgets share one calibration (never looser)."""
    if not 0.0 < rate < 1.0:
        raise ValueError(f"per-day alarm rate must be in (0, 1), got {rate}")
    return float(10.0 ** (math.floor(math.log10(rate) * 10.0 + 1e-9) / 10.0))


def _streams_for(rate: float, reference_days: int | None) -> int:
    """Streams enough for ~100 alarms at ``rate``; more for short references, whose rate hangs on rare bad ones."""
    wanted = math.ceil(_TARGET_ALARMS / (rate * HORIZON_DAYS) / _STREAM_STEP) * _STREAM_STEP
    floor = _MIN_STREAMS if reference_days is None or reference_days >= 28 else _MAX_STREAMS // 2
    return int(min(_MAX_STREAMS, max(floor, wanted)))


@lru_cache(maxsize=8)
def _in_control(window_days: int, reference_days: int | None, streams: int) -> NDArray[np.float32]:
    """Standardised in-control z for ``streams`` streams of ``HORIZON_DAYS`` days (seeded).

    Each stream gets its own reference of ``reference_days`` N(0,1) days, summarised by the same
    robust estimator the tests use, with all of its variance estimated: the worst case, since a
    figure whose se is known leaves less to estimate (bounding that share from the reference itself
    was tried: the selection it adds cost more false alarms than the smaller limit gained).
    None means known mean and variance.
    """
    rng = np.random.default_rng([_SEED, window_days, reference_days or 0, streams])
    days = rng.standard_normal((streams, HORIZON_DAYS + window_days - 1))
    pooled = np.lib.stride_tricks.sliding_window_view(days, window_days, axis=1).mean(axis=-1)
    if reference_days is None:
        return (pooled * math.sqrt(window_days)).astype(np.float32)
    mean, var = _robust_mean_var(rng.standard_normal((streams, reference_days)))
    z = (pooled - mean[:, None]) / np.sqrt(var[:, None] / window_days)
    return z.astype(np.float32)


def _cusum_alarms(z: NDArray[np.float32], k: float, h: float) -> int:
    s = np.zeros(z.shape[0], dtype=np.float32)
    alarms = 0
    for t in range(z.shape[1]):
        s = np.maximum(0.0, s + z[:, t] - k)
        hit = s > h
        alarms += int(hit.sum())
        s[hit] = 0.0
    return alarms


def _ewma_alarms(z: NDArray[np.float32], lam: float, limit: float) -> int:
    e = np.zeros(z.shape[0], dtype=np.float32)
    bound = limit * math.sqrt(lam / (2.0 - lam))
    alarms = 0
    for t in range(z.shape[1]):
        e = lam * z[:, t] + (1.0 - lam) * e
        hit = e > bound
        alarms += int(hit.sum())
        e[hit] = 0.0
    return alarms


@lru_cache(maxsize=256)
def _calibrate(method: str, param: float, rate: float, window_days: int, reference_days: int | None) -> float:
    """Bisection for the smallest limit whose simulated alarm rate is within ``rate`` (inf: none is)."""
    z = _in_control(window_days, reference_days, _streams_for(rate, reference_days))
    allowed = rate * z.size
    lo, hi = (0.0, _MAX_H) if method == "cusum" else (0.5, _MAX_L)

    def alarms(limit: float) -> int:
        return _cusum_alarms(z, param, limit) if method == "cusum" else _ewma_alarms(z, param, limit)

    if alarms(hi) > allowed:
        return math.inf  # the reference is too short for this budget: the test can never alarm
    for _ in range(16):
        mid = (lo + hi) / 2.0
        lo, hi = (mid, hi) if alarms(mid) > allowed else (lo, mid)
    return hi


def threshold_for(
    per_day_alarm_rate: float, k: float = 1.5, *, window_days: int = 1, reference_days: int | None = None
) -> float:
    """CUSUM ``h`` whose in-control alarm probability per day is at most ``per_day_alarm_rate``.

    Bisection on a seeded Monte Carlo of in-control streams (cached per process). ``reference_days``
    None: known mean and variance (then close to :func:`siegmund_threshold` for one-day windows);
    a number: both are estimated from that many reference days (all of the variance, the worst
    case); ``window_days`` > 1: overlapping rolling windows, correlated days.
    """
    return _calibrate("cusum", k, _quantise(per_day_alarm_rate), window_days, _bucket(reference_days))


def ewma_limit_for(
    per_day_alarm_rate: float, lam: float = 0.3, *, window_days: int = 1, reference_days: int | None = None
) -> float:
    """EWMA ``L`` (limit ``L * sqrt(lam / (2 - lam))``) for the rate, calibrated like :func:`threshold_for`."""
    return _calibrate("ewma", lam, _quantise(per_day_alarm_rate), window_days, _bucket(reference_days))


# -- the statistics, over batches of streams (rows) ---------------------------------------------------
def cusum(z: Sequence[float], k: float, h: float) -> tuple[list[float], list[int]]:
    """One-sided CUSUM over ``z``: the statistic each day (before a reset) and the indices of alarms."""
    path, alarm = _cusum_path(np.asarray([z], dtype=float), k, np.asarray([h]))
    return path[0].tolist(), np.flatnonzero(alarm[0]).tolist()


def ewma(z: Sequence[float], lam: float, limit: float) -> tuple[list[float], list[int]]:
    """One-sided EWMA over ``z`` (limit ``L``): the statistic each day (before a reset) and alarm indices."""
    path, alarm = _ewma_path(np.asarray([z], dtype=float), lam, np.asarray([limit]))
    return path[0].tolist(), np.flatnonzero(alarm[0]).tolist()


def _cusum_path(z: Array, k: float, h: Array) -> tuple[Array, NDArray[np.bool_]]:
    """CUSUM of each row; NaN z (a day not judged) leaves the statistic unchanged and cannot alarm."""
    s = np.zeros(z.shape[0])
    path, alarm = np.zeros_like(z), np.zeros(z.shape, dtype=bool)
    for t in range(z.shape[1]):
        judged = np.isfinite(z[:, t])
        s = np.where(judged, np.maximum(0.0, s + np.where(judged, z[:, t], 0.0) - k), s)
        path[:, t], alarm[:, t] = s, judged & (s > h)
        s = np.where(alarm[:, t], 0.0, s)
    return path, alarm


def _ewma_path(z: Array, lam: float, limit: Array) -> tuple[Array, NDArray[np.bool_]]:
    e = np.zeros(z.shape[0])
    bound = limit * math.sqrt(lam / (2.0 - lam))
    path, alarm = np.zeros_like(z), np.zeros(z.shape, dtype=bool)
    for t in range(z.shape[1]):
        judged = np.isfinite(z[:, t])
        e = np.where(judged, lam * np.where(judged, z[:, t], 0.0) + (1.0 - lam) * e, e)
        path[:, t], alarm[:, t] = e, judged & (e > bound)
        e = np.where(alarm[:, t], 0.0, e)
    return path, alarm


def _robust_mean_var(x: Array) -> tuple[Array, Array]:
    """Per row: mean and variance of the days within ``OUTLIER_SDS`` robust SDs of the median (NaN = no day)."""
    has_nan = bool(np.isnan(x).any())
    median = (np.nanmedian if has_nan else np.median)(x, axis=1, keepdims=True)
    mad = 1.4826 * (np.nanmedian if has_nan else np.median)(np.abs(x - median), axis=1, keepdims=True)
    with np.errstate(invalid="ignore"):
        keep = np.isfinite(x) & (np.abs(x - median) <= OUTLIER_SDS * np.where(mad > 0, mad, np.inf))
    count = keep.sum(axis=1)
    mean = np.where(keep, x, 0.0).sum(axis=1) / np.maximum(count, 1)
    var = np.where(keep, (x - mean[:, None]) ** 2, 0.0).sum(axis=1) / np.maximum(count - 1, 1)
    return mean, var


# -- figures to arrays ---------------------------------------------------------------------------------
@dataclass
class _Days:
    """Rows of streams, columns of days: value, n and se (NaN value: no usable figure that day)."""

    value: Array
    n: Array
    se: Array

    def take(self, index: NDArray[np.intp]) -> _Days:
        return _Days(self.value[index], self.n[index], self.se[index])


def _is_rate(metric: str) -> bool:
    return metric.endswith("_rate")


def _figure_se(figure: DailyFigure) -> float:
    if figure.se is not None:
        return figure.se
    if figure.low is not None and figure.high is not None:
        return (figure.high - figure.low) / (2.0 * _Z95_TWO_SIDED)
    return math.nan


def _usable(figure: DailyFigure) -> bool:
    return not figure.provisional and math.isfinite(figure.value)


def _row(figures: Sequence[DailyFigure | None]) -> _Days:
    value = [f.value if f is not None and _usable(f) else math.nan for f in figures]
    n = [float(f.n) if f is not None else 0.0 for f in figures]
    se = [_figure_se(f) if f is not None else math.nan for f in figures]
    return _Days(np.asarray([value], dtype=float), np.asarray([n], dtype=float), np.asarray([se], dtype=float))


# -- reference, pooling, standardising -------------------------------------------------------------------
@dataclass
class _Ref:
    days: NDArray[np.intp]
    mean: Array
    tau2: Array
    sampling_var: Array
    p: Array  # a rate's reference proportion, kept off 0 and 1 (binomial se); unused otherwise
    n_total: Array


def _reference(metric: str, ref: _Days) -> _Ref:
    mean, var = _robust_mean_var(ref.value)
    usable = np.isfinite(ref.value)
    n_total = np.where(usable, ref.n, 0.0).sum(axis=1)
    p = (mean * n_total + 1.0) / (n_total + 2.0)  # Laplace: never 0 or 1, so a rate's se never vanishes
    se = _day_se(metric, ref, p)
    sampling = np.where(usable, se**2, 0.0).sum(axis=1) / np.maximum(usable.sum(axis=1), 1)
    tau2 = np.maximum(0.0, var - sampling)
    return _Ref(usable.sum(axis=1), mean, tau2, sampling, p, n_total)


def _day_se(metric: str, days: _Days, p: Array) -> Array:
    if _is_rate(metric):
        with np.errstate(divide="ignore", invalid="ignore"):
            binomial = np.sqrt(p[:, None] * (1.0 - p[:, None]) / days.n)
        return np.where(days.n > 0, binomial, np.nan_to_num(days.se))
    return np.nan_to_num(days.se)


def _rolling_sum(x: Array, window: int) -> Array:
    padded = np.concatenate([np.zeros((x.shape[0], window - 1)), x], axis=1)
    return np.lib.stride_tricks.sliding_window_view(padded, window, axis=1).sum(axis=-1)


@dataclass
class _Pooled:
    value: Array
    n: Array
    sum_w2: Array  # sum (w_i^2), w_i = n_i / N: how much of a between-day variance the pool keeps
    se2: Array  # sum (w_i^2 se_i^2): the pooled sampling variance


def _pool(days: _Days, se: Array, window: int) -> _Pooled:
    """n-weighted pool of each day with the ``window - 1`` days before it (days present only)."""
    valid = np.isfinite(days.value)
    weight = np.where(valid, np.maximum(days.n, 1e-9), 0.0)
    total = _rolling_sum(weight, window)
    with np.errstate(divide="ignore", invalid="ignore"):
        value = _rolling_sum(weight * np.where(valid, days.value, 0.0), window) / total
        sum_w2 = _rolling_sum(weight**2, window) / total**2
        se2 = _rolling_sum(weight**2 * np.where(valid, se, 0.0) ** 2, window) / total**2
    n = _rolling_sum(np.where(valid, days.n, 0.0), window)
    return _Pooled(np.where(total > 0, value, np.nan), n, sum_w2, se2)


def pool(figures: Sequence[DailyFigure]) -> DailyFigure:
    """The n-weighted pool of ``figures`` (a rolling window's days), dated on the last day.

    ``se`` is ``sqrt(sum(w_i^2 se_i^2))`` with ``w_i = n_i / N`` over the figures that have one.
    """
    if not figures:
        raise ValueError("nothing to pool")
    days = _row(figures)
    se = np.nan_to_num(days.se)
    pooled = _pool(days, se, len(figures))
    last = max(figures, key=lambda f: f.day)
    has_se = any(math.isfinite(_figure_se(f)) for f in figures)
    return DailyFigure(
        day=last.day, metric=last.metric, slice=last.slice, value=float(pooled.value[0, -1]),
        n=int(pooled.n[0, -1]), se=float(math.sqrt(pooled.se2[0, -1])) if has_se else None,
    )


def reference_of(metric: str, figures: Sequence[DailyFigure]) -> Reference:
    """The robust summary of a reference window (provisional and non-finite figures are left out)."""
    ref = _reference(metric, _row(list(figures)))
    return Reference(int(ref.days[0]), float(ref.mean[0]), float(ref.tau2[0]), float(ref.sampling_var[0]),
                     int(ref.n_total[0]))


def _standardise(metric: str, days: _Days, ref: _Ref, window: int, min_n: int) -> tuple[Array, _Pooled]:
    pooled = _pool(days, _day_se(metric, days, ref.p), window)
    spread = np.sqrt(ref.tau2[:, None] * pooled.sum_w2 + pooled.se2)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = (pooled.value - ref.mean[:, None]) / np.maximum(spread, 1e-12)
    return np.where(pooled.n >= min_n, z, np.nan), pooled


# -- judging ---------------------------------------------------------------------------------------------
@dataclass
class _Verdict:
    alarm: NDArray[np.bool_]
    statistic: Array
    value: Array
    reference_mean: Array | None
    limit: Array | None
    direction: str  # "up" / "down" for a change test, "" for a threshold


def _limits(rule: Rule, change: Change, rate: float, reference_days: NDArray[np.intp]) -> Array:
    """The calibrated limit for each row, from its reference length (one calibration per length bucket)."""
    by_days: dict[int, float] = {}
    for days in np.unique(reference_days):
        by_days[int(days)] = (
            threshold_for(rate, change.k, window_days=rule.window_days, reference_days=int(days))
            if change.method == "cusum"
            else ewma_limit_for(rate, change.lam, window_days=rule.window_days, reference_days=int(days))
        )
    return np.asarray([by_days[int(days)] for days in reference_days], dtype=float)


def _judge_change(rule: Rule, days: _Days, ref_days: _Days, rate: float, limit: float | None) -> list[_Verdict]:
    change = rule.condition
    assert isinstance(change, Change)
    ref = _reference(rule.metric, ref_days)
    z, pooled = _standardise(rule.metric, days, ref, rule.window_days, rule.min_n)
    limits = np.full(z.shape[0], limit) if limit is not None else _limits(rule, change, rate, ref.days)
    verdicts = []
    for sign in change.signs:
        signed = sign * z
        path, alarm = (_cusum_path(signed, change.k, limits) if change.method == "cusum"
                       else _ewma_path(signed, change.lam, limits))
        verdicts.append(_Verdict(alarm, path, pooled.value, ref.mean, limits, "up" if sign > 0 else "down"))
    return verdicts


def _wilson(p: Array, n: Array, z: float, upper: bool) -> Array:
    with np.errstate(divide="ignore", invalid="ignore"):
        centre = (p + z * z / (2 * n)) / (1 + z * z / n)
        half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return centre + half if upper else centre - half


def _past(threshold: Threshold, x: Array) -> NDArray[np.bool_]:
    return np.asarray(x > threshold.value if threshold.op == ">" else x < threshold.value)


def _judge_threshold(rule: Rule, days: _Days) -> _Verdict:
    """A breach is judged on the pooled figure; an event marks the first judged day of each breach."""
    threshold = rule.condition
    assert isinstance(threshold, Threshold)
    pooled = _pool(days, np.nan_to_num(days.se), rule.window_days)
    judged = np.isfinite(pooled.value) & (pooled.n >= rule.min_n)
    bound = pooled.value
    if threshold.confidence is not None:
        z = float(stats.norm.ppf(threshold.confidence))
        upper = threshold.op == "<"  # "too low" must hold for the upper bound too, and vice versa
        if _is_rate(rule.metric):
            bound = np.where(pooled.n > 0, _wilson(pooled.value, pooled.n, z, upper), pooled.value)
        else:
            bound = pooled.value + (z if upper else -z) * np.sqrt(pooled.se2)
    with np.errstate(invalid="ignore"):
        breach = judged & _past(threshold, pooled.value) & _past(threshold, bound)
    onset = np.zeros_like(breach)
    before = np.zeros(breach.shape[0], dtype=bool)
    for t in range(breach.shape[1]):
        onset[:, t] = breach[:, t] & ~before
        before = np.where(judged[:, t], breach[:, t], before)
    statistic = pooled.value - threshold.value
    return _Verdict(onset, statistic, pooled.value, None, None, "")


# -- public entry points ---------------------------------------------------------------------------------
def _calendar(figures_by_day: Mapping[date, DailyFigure]) -> list[date]:
    first, last = min(figures_by_day), max(figures_by_day)
    return [first + timedelta(days=i) for i in range((last - first).days + 1)]


def _check_series(rule: Rule, figures: Iterable[DailyFigure], slice_: str | None) -> str:
    seen = {(f.metric, f.slice) for f in figures}
    if slice_ is not None:
        seen.add((rule.metric, slice_))
    if len(seen) != 1 or next(iter(seen))[0] != rule.metric:
        raise ValueError(f"rule {rule.name!r} judges one series of {rule.metric}; got {sorted(seen)}")
    return next(iter(seen))[1]


def reference_problem(reference: Sequence[DailyFigure]) -> str | None:
    """Why a reference cannot carry a change test (too few usable days), or None when it can."""
    usable = sum(1 for f in reference if _usable(f))
    if usable < MIN_REFERENCE_DAYS:
        return f"reference too short ({usable} usable days < {MIN_REFERENCE_DAYS}): change test skipped"
    return None


def evaluate(
    rule: Rule,
    figures_by_day: Mapping[date, DailyFigure],
    reference: Sequence[DailyFigure],
    *,
    per_day_alarm_rate: float | None = None,
    limit: float | None = None,
) -> list[ChangeEvent]:
    """Judge one series (one metric, one slice) under ``rule``; the alarms, earliest first.

    ``figures_by_day``: the monitored days (gaps allowed; a rolling window pools the calendar days
    present); ``reference``: earlier figures of the same metric and slice. ``per_day_alarm_rate``:
    this test's budget (default: :func:`per_test_rate` of :data:`DEFAULT_TESTS`; :func:`evaluate_all`
    passes the real split); ``limit`` overrides the calibrated ``h``/``L``. A change rule with a
    reference shorter than :data:`MIN_REFERENCE_DAYS` days returns no events and logs why.
    """
    if not figures_by_day:
        return []
    slice_ = _check_series(rule, figures_by_day.values(), None)
    if reference:
        _check_series(rule, reference, slice_)
    if not rule.applies_to(slice_):
        return []
    calendar = _calendar(figures_by_day)
    days = _row([figures_by_day.get(day) for day in calendar])
    if not rule.is_change:
        return _events(rule, slice_, calendar, [_judge_threshold(rule, days)])
    problem = reference_problem(reference)
    if problem is not None:
        log.warning("rule %s on %s: %s", rule.name, slice_, problem)
        return []
    rate = per_day_alarm_rate if per_day_alarm_rate is not None else per_test_rate(DEFAULT_TESTS)
    return _events(rule, slice_, calendar, _judge_change(rule, days, _row(list(reference)), rate, limit))


def _events(rule: Rule, slice_: str, calendar: list[date], verdicts: list[_Verdict]) -> list[ChangeEvent]:
    events = []
    for verdict in verdicts:
        for t in np.flatnonzero(verdict.alarm[0]):
            events.append(ChangeEvent(
                rule=rule.name, metric=rule.metric, slice=slice_, day=calendar[t],
                value=float(verdict.value[0, t]),
                reference_mean=None if verdict.reference_mean is None else float(verdict.reference_mean[0]),
                statistic=float(verdict.statistic[0, t]), severity=rule.severity, component=rule.component,
                direction=verdict.direction, limit=None if verdict.limit is None else float(verdict.limit[0]),
            ))
    return sorted(events, key=lambda e: e.day)


def _series(figures: Iterable[DailyFigure]) -> dict[tuple[str, str], dict[date, DailyFigure]]:
    out: dict[tuple[str, str], dict[date, DailyFigure]] = defaultdict(dict)
    for figure in figures:
        out[(figure.metric, figure.slice)][figure.day] = figure
    return out


def count_tests(rules: Sequence[Rule], series: Iterable[tuple[str, str]]) -> int:
    """One-sided change tests that ``rules`` run over ``series`` ((metric, slice) pairs): the Bonferroni divisor."""
    keys = list(series)
    return sum(
        len(rule.condition.signs)
        for rule in rules if isinstance(rule.condition, Change)
        for metric, slice_ in keys if metric == rule.metric and rule.applies_to(slice_)
    )


def evaluate_all(
    rules: Sequence[Rule], figures: Iterable[DailyFigure], reference: Iterable[DailyFigure]
) -> Evaluation:
    """Judge every (rule, slice) the figures hold, splitting the false-alarm budget over the tests that run."""
    monitored, ref = _series(figures), _series(reference)
    runnable = [key for key in monitored if reference_problem(list(ref.get(key, {}).values())) is None]
    result = Evaluation(tests=count_tests(rules, runnable))
    result.per_test_rate = per_test_rate(result.tests)
    for (metric, slice_), by_day in sorted(monitored.items()):
        for rule in rules:
            if rule.metric != metric or not rule.applies_to(slice_):
                continue
            reference_days = list(ref.get((metric, slice_), {}).values())
            problem = reference_problem(reference_days) if rule.is_change else None
            if problem is not None:
                result.notes.append(f"rule {rule.name} on {slice_}: {problem}")
                continue
            result.events += evaluate(rule, by_day, reference_days, per_day_alarm_rate=result.per_test_rate)
    result.events.sort(key=lambda e: (e.day, e.rule, e.slice))
    return result


def _stream_arrays(by_day: Mapping[date, DailyFigure], calendar: Sequence[date]) -> _Days:
    """One series on the stream's calendar, as one-dimensional arrays (rows come from resampling)."""
    days = _row([by_day.get(day) for day in calendar])
    return _Days(days.value[0], days.n[0], days.se[0])


def false_alarm_rate(
    rules: Sequence[Rule],
    stable_figure_stream: Iterable[DailyFigure],
    months: int = 200,
    seed: int = 0,
    *,
    reference_days: int = 28,
) -> float:
    """Alarms per 28 days that ``rules`` raise on replays of a stable stream (should be <= 0.1).

    Each simulated month draws, with replacement and whole days at a time (so a day's metrics and
    slices stay together), ``reference_days`` reference days and 28 monitored days from the
    stream's days, and runs every rule on every series it applies to as :func:`evaluate_all`
    would (same budget split), vectorised over the months. ``new_slice`` is re-derived for each
    replayed month (a slice with figures in the month but none in its reference fires once),
    since the stream's own flags refer to the stream's reference, not the replayed one.
    """
    monitored = _series(stable_figure_stream)
    if not monitored:
        raise ValueError("the stable stream holds no figures")
    calendar = sorted({day for by_day in monitored.values() for day in by_day})
    arrays = {key: _stream_arrays(by_day, calendar) for key, by_day in monitored.items()}
    rng = np.random.default_rng(seed)
    ref_index = rng.integers(0, len(calendar), size=(months, reference_days))
    month_index = rng.integers(0, len(calendar), size=(months, 28))
    runnable = [key for key, days in arrays.items() if np.isfinite(days.value).sum() >= MIN_REFERENCE_DAYS]
    rate = per_test_rate(count_tests(rules, runnable))
    alarms = 0
    for rule in rules:
        if rule.metric == "new_slice":
            alarms += _replayed_new_slices(rule, arrays, ref_index, month_index)
            continue
        for (metric, slice_), days in arrays.items():
            if metric == rule.metric and rule.applies_to(slice_):
                alarms += _replayed_alarms(rule, days, ref_index, month_index, rate)
    return alarms / months


def _replayed_alarms(rule: Rule, days: _Days, ref_index: NDArray[np.intp], month_index: NDArray[np.intp],
                     rate: float) -> int:
    watched = days.take(month_index)
    if not rule.is_change:
        return int(_judge_threshold(rule, watched).alarm.sum())
    ref = days.take(ref_index)
    rows = np.flatnonzero(np.isfinite(ref.value).sum(axis=1) >= MIN_REFERENCE_DAYS)
    if rows.size == 0:
        return 0
    return sum(int(v.alarm.sum()) for v in _judge_change(rule, watched.take(rows), ref.take(rows), rate, None))


def _replayed_new_slices(rule: Rule, arrays: Mapping[tuple[str, str], _Days], ref_index: NDArray[np.intp],
                         month_index: NDArray[np.intp]) -> int:
    present: dict[str, NDArray[np.bool_]] = {}
    for (_, slice_), days in arrays.items():
        if rule.applies_to(slice_):
            present[slice_] = present.get(slice_, np.zeros(days.value.shape, dtype=bool)) | np.isfinite(days.value)
    return sum(
        int((~seen[ref_index].any(axis=1) & seen[month_index].any(axis=1)).sum()) for seen in present.values()
    )
