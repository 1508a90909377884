"""Production turns carry no labels, so the monitor estimates intent accuracy and WER from the models' own confidence.

Two estimators, one resampling scheme:

* Intent accuracy, confidence-based (as NannyML's CBPE): a logistic calibrator maps the champion's
  top-1 intent confidence and the recogniser's features of the turn (on its own ASR transcript of
  the golden audio, end to end) to P(correct); the expected accuracy of a slice is the mean
  calibrated probability of its turns.
* ASR WER: two Poisson GLMs (log link) on the recogniser's confidence features predict a turn's
  word errors and its reference word count; a slice's WER is sum(predicted errors) / sum(predicted
  reference words).

Intervals combine (i) calibration uncertainty: the calibrator / GLMs are refitted on ``n_boot``
bootstrap resamples of the golden turns once, at fit time, and kept as compact replicates; and
(ii) sampling: given a replicate, each production turn's outcome is drawn (Bernoulli(p) for a
correct intent; negative binomial around the predicted errors for WER). The interval is thus a
predictive interval for what the slice's turns would have scored had they been labelled.

A slice whose inputs lie outside what the golden set covered is flagged (``domain_check``): the
estimate there is an extrapolation. Everything fitted is JSON-safe through ``to_dict`` /
``from_dict``, because the monitor fits once per champion and keeps the result in the store.
Numbers only: no call text is read or kept.
"""

from __future__ import annotations

import hashlib
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
from numpy.typing import ArrayLike
from scipy.stats import binom
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression, PoissonRegressor

T = TypeVar("T")

#: The features the monitor provides per turn for WER estimation and the domain check.
WER_FEATURES = ("avg_logprob", "no_speech_prob", "duration_s", "words", "words_per_s", "dbfs", "snr_db")
#: Features modelled on a log scale (counts and durations: long right tails, multiplicative effects).
LOG_FEATURES = frozenset({"duration_s", "words"})
#: Equal-mass bins for the expected calibration error.
ECE_BINS = 10
#: Bootstrap replicates kept at fit time (calibration uncertainty).
N_REPLICATES = 200
#: Turns per batch when scoring the WER estimate on the held-out half (about one slice-day).
WER_BATCH = 40
#: Ridge precision of the WER GLMs on standardised features: a N(0, 1/4) prior on each log-rate effect,
#: whatever the calibration size (sklearn's ``alpha`` = GLM_PRIOR / turns). Negligible at 1,000 turns;
#: at 100 it keeps bootstrap refits from exploding.
GLM_PRIOR = 4.0
#: The same prior on the intent calibrator's standardised inputs.
INTENT_PRIOR = 4.0
#: Domain check: the calibration's central range per feature leaves DOMAIN_TAIL out at each end; a slice is
#: outside when more than DOMAIN_MAX_SHARE of its turns lie beyond one end of one feature, unlikely by chance.
DOMAIN_TAIL = 0.01
DOMAIN_MAX_SHARE = 0.2
DOMAIN_ALPHA = 0.01

FeatureInput = Mapping[str, ArrayLike] | np.ndarray


# ---------------------------------------------------------------------------------------------
# Results
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Estimate:
    """A label-free estimate over ``n`` turns: ``value`` with a ``low``..``high`` predictive interval.

    ``se``: the standard deviation of the resampled values (feeds ``DailyFigure.se``);
    ``outside_domain``: the turns lie outside what the calibration data covered, so the figure is an
    extrapolation; ``detail``: the domain check's one-line reason. ``n == 0`` gives NaN figures.
    """

    value: float
    low: float
    high: float
    n: int
    se: float = float("nan")
    outside_domain: bool = False
    detail: str = ""


@dataclass(frozen=True)
class DomainCheck:
    """Whether a slice's turns fall outside the calibration data: ``share_outside`` of them do."""

    outside: bool
    share_outside: float
    detail: str
    n: int = 0
    p_value: float = 1.0


# ---------------------------------------------------------------------------------------------
# Shared helpers: the half split, the one resampling scheme, the interval, JSON
# ---------------------------------------------------------------------------------------------


def held_out_half(keys: Iterable[object]) -> np.ndarray:
    """True for the turns in the held-out half: a stable hash of each key (e.g. turn id), not of its position."""
    return np.array([hashlib.blake2b(str(key).encode(), digest_size=8).digest()[-1] & 1 == 1 for key in keys], bool)


def bootstrap_refits(fit: Callable[[np.ndarray], T], n: int, n_boot: int, seed: int) -> list[T]:
    """``fit(weights)`` on ``n_boot`` bootstrap resamples of ``n`` rows, each given as multinomial row counts.

    Refitting with counts as sample weights equals refitting on the resampled rows; both estimators
    resample their calibration data this way and only this way.
    """
    if n_boot < 1:
        raise ValueError("n_boot must be at least 1: the replicates carry the calibration uncertainty")
    rng = np.random.default_rng(seed)
    uniform = np.full(n, 1.0 / n)
    return [fit(rng.multinomial(n, uniform).astype(float)) for _ in range(n_boot)]


def _predictive_draws(
    n_replicates: int,
    n_draws: int,
    seed: int,
    predict: Callable[[int], T],
    outcome: Callable[[T, np.random.Generator], float],
) -> np.ndarray:
    """``n_draws`` simulated slice figures: ``outcome(predict(replicate), rng)``, replicates spread evenly.

    ``predict`` gives a calibration replicate's per-turn predictions (calibration uncertainty);
    ``outcome`` draws the turns' outcomes around them and returns the slice's figure (sampling).
    """
    if n_replicates < 1 or n_draws < 1:
        raise ValueError("estimates need at least one calibration replicate and one draw")
    rng = np.random.default_rng(seed)
    picks = np.arange(n_draws) * n_replicates // n_draws
    draws: list[float] = []
    for replicate, count in zip(*np.unique(picks, return_counts=True), strict=True):
        prediction = predict(int(replicate))
        draws.extend(outcome(prediction, rng) for _ in range(int(count)))
    return np.array(draws)


def _estimate(value: float, draws: np.ndarray, n: int, confidence_level: float, domain: DomainCheck | None) -> Estimate:
    """The point value with the central ``confidence_level`` of the draws (widened to contain the value)."""
    outside, detail = (domain.outside, domain.detail) if domain else (False, "")
    if n == 0:
        nan = float("nan")
        return Estimate(nan, nan, nan, 0, nan, outside, detail)
    tail = (1.0 - confidence_level) / 2.0
    low, high = np.quantile(draws, [tail, 1.0 - tail])
    return Estimate(
        float(value), float(min(low, value)), float(max(high, value)), n, float(np.std(draws)), outside, detail
    )


def _floats(values: ArrayLike) -> Any:
    """A JSON-safe nested list of floats; NaN becomes None."""
    array = np.asarray(values, float)
    boxed = array.astype(object)
    boxed[~np.isfinite(array)] = None
    return boxed.tolist()


def _array(values: Any) -> np.ndarray:
    return np.array(values if values is not None else np.nan, dtype=float)


def _number(value: Any) -> float:
    return float("nan") if value is None else float(value)


def _json_number(value: float) -> float | None:
    return float(value) if np.isfinite(value) else None


# ---------------------------------------------------------------------------------------------
# Calibration error
# ---------------------------------------------------------------------------------------------


def expected_calibration_error(confidence: ArrayLike, correct: ArrayLike, n_bins: int = ECE_BINS) -> float:
    """ECE over ``n_bins`` equal-mass bins: sum over bins of (bin share) * |mean confidence - accuracy|.

    Equal-mass rather than equal-width: intent confidences crowd near 1, and equal-width bins would
    leave most bins nearly empty and one bin holding most turns.
    """
    conf = np.asarray(confidence, float).ravel()
    hit = np.asarray(correct, float).ravel()
    if conf.size == 0:
        return float("nan")
    order = np.argsort(conf, kind="stable")
    bins = np.array_split(order, min(n_bins, conf.size))
    return float(sum(len(b) / conf.size * abs(conf[b].mean() - hit[b].mean()) for b in bins))


# ---------------------------------------------------------------------------------------------
# Features: one transform for the WER regressor and the domain check
# ---------------------------------------------------------------------------------------------


def _matrix(features: FeatureInput, names: Sequence[str] | None = None) -> tuple[np.ndarray, tuple[str, ...]]:
    """Features as a float matrix (turns x features) and their names; non-finite values become NaN."""
    if isinstance(features, Mapping):
        chosen = tuple(names) if names is not None else tuple(features)
        missing = [name for name in chosen if name not in features]
        if missing:
            raise ValueError(f"missing features: {', '.join(missing)}")
        columns = [np.asarray(features[name], float).ravel() for name in chosen]
        matrix = np.column_stack(columns) if columns else np.empty((0, 0))
    else:
        if names is None:
            raise ValueError("a feature matrix needs its column names")
        matrix, chosen = np.atleast_2d(np.asarray(features, float)), tuple(names)
        if matrix.shape[1] != len(chosen):
            raise ValueError(f"{matrix.shape[1]} feature columns but {len(chosen)} names")
    matrix = matrix.astype(float, copy=True)
    matrix[~np.isfinite(matrix)] = np.nan
    return matrix, chosen


def _aligned(features: FeatureInput, wanted: Sequence[str], names: Sequence[str] | None = None) -> np.ndarray:
    """Production features as a matrix with the calibration's columns in the calibration's order."""
    if isinstance(features, Mapping):
        return _matrix(features, wanted)[0]
    matrix, given = _matrix(features, names or wanted)
    return _matrix({name: matrix[:, j] for j, name in enumerate(given)}, wanted)[0]


def _transform(matrix: np.ndarray, names: Sequence[str]) -> np.ndarray:
    """log1p on counts and durations (clipped at 0); every other feature as given."""
    out = matrix.copy()
    for j, name in enumerate(names):
        if name in LOG_FEATURES:
            out[:, j] = np.log1p(np.clip(out[:, j], 0.0, None))
    return out


def _impute(matrix: np.ndarray, medians: np.ndarray) -> np.ndarray:
    return np.where(np.isnan(matrix), medians, matrix)


def _nanmedian(matrix: np.ndarray) -> np.ndarray:
    """Per-column median of the known values; 0 for a column with none."""
    return np.array([np.median(c[~np.isnan(c)]) if (~np.isnan(c)).any() else 0.0 for c in matrix.T])


@dataclass(frozen=True, eq=False)
class Design:
    """Turns x features -> the GLM design: transform, impute the calibration median, missing flags, standardise."""

    names: tuple[str, ...]
    medians: np.ndarray
    flagged: np.ndarray  # bool per feature: a missing-value flag column (the feature had NaNs in calibration)
    mean: np.ndarray
    std: np.ndarray

    @classmethod
    def fit(cls, matrix: np.ndarray, names: tuple[str, ...]) -> Design:
        transformed = _transform(matrix, names)
        medians = _nanmedian(transformed)
        flagged = np.isnan(transformed).any(axis=0)
        raw = cls._columns(transformed, medians, flagged)
        std = raw.std(axis=0)
        return cls(names, medians, flagged, raw.mean(axis=0), np.where(std > 0, std, 1.0))

    @staticmethod
    def _columns(transformed: np.ndarray, medians: np.ndarray, flagged: np.ndarray) -> np.ndarray:
        return np.column_stack([_impute(transformed, medians), np.isnan(transformed[:, flagged]).astype(float)])

    def __call__(self, matrix: np.ndarray) -> np.ndarray:
        raw = self._columns(_transform(matrix, self.names), self.medians, self.flagged)
        return (raw - self.mean) / self.std

    def to_dict(self) -> dict[str, Any]:
        return {
            "names": list(self.names),
            "medians": _floats(self.medians),
            "flagged": [bool(f) for f in self.flagged],
            "mean": _floats(self.mean),
            "std": _floats(self.std),
        }

    @classmethod
    def from_dict(cls, record: Mapping[str, Any]) -> Design:
        return cls(
            tuple(record["names"]),
            _array(record["medians"]),
            np.array(record["flagged"], bool),
            _array(record["mean"]),
            _array(record["std"]),
        )


# ---------------------------------------------------------------------------------------------
# Intent accuracy: confidence-based performance estimation, told what the recogniser heard
# ---------------------------------------------------------------------------------------------


def _logit(confidence: ArrayLike) -> np.ndarray:
    p = np.clip(np.asarray(confidence, float).ravel(), 1e-4, 1.0 - 1e-4)
    return np.log(p / (1.0 - p))


def _intent_matrix(confidence: ArrayLike, features: FeatureInput | None, wanted: Sequence[str],
                   names: Sequence[str] | None = None) -> np.ndarray:
    """Turns x (confidence logit, then the ``wanted`` ASR features in that order); ``names``: a matrix's columns."""
    logit = _logit(confidence)
    if not wanted:
        return logit[:, None]
    if features is None:
        raise ValueError(f"this calibration needs the turns' ASR features: {', '.join(wanted)}")
    return np.column_stack([logit, _aligned(features, wanted, names)])


def _fit_logistic(design: np.ndarray, correct: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """Logistic regression (ridge prior ``INTENT_PRIOR`` on standardised inputs); [intercept, coefficients...]."""
    model = LogisticRegression(C=1.0 / INTENT_PRIOR, max_iter=1000)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(design, correct, sample_weight=weights)
    return np.concatenate([model.intercept_, model.coef_[0]])


def _predict_logistic(design: np.ndarray, coefficients: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(coefficients[0] + design @ coefficients[1:], -30.0, 30.0)))


@dataclass(frozen=True, eq=False)
class IntentCalibration:
    """P(correct | top-1 confidence, ASR features) for one champion, with bootstrap replicates and held-out quality.

    A logistic regression on the logit of the intent model's confidence and the recogniser's own
    features of the turn (``WER_FEATURES``, standardised): confidence alone cannot tell a sure reading
    of a clean request from a sure reading of garbled words, and on a noisy channel that is the
    difference (measured: a new GSM channel at 0-5 dB, confidence alone 15-19 points above the truth,
    with the ASR features 6-10). ``ece_raw`` / ``ece_calibrated``: ECE of the raw confidence and of
    the calibrated probability on the held-out half (fitted on the other half); ``ece_floor``: the ECE
    a perfectly calibrated model shows on that many turns (binning noise), so ``ece_calibrated`` near
    it is as good as it gets. ``coefficients`` are refitted on all ``n`` turns.
    """

    design: Design  # ("confidence_logit", *feature names)
    coefficients: np.ndarray
    replicates: np.ndarray  # rows: bootstrap refits
    n: int
    ece_raw: float
    ece_calibrated: float
    ece_floor: float
    n_held_out: int

    @property
    def feature_names(self) -> tuple[str, ...]:
        return self.design.names[1:]

    def design_matrix(self, confidence: ArrayLike, features: FeatureInput | None,
                      names: Sequence[str] | None = None) -> np.ndarray:
        """The standardised inputs of turns: the confidence's logit and the features this calibration uses."""
        return self.design(_intent_matrix(confidence, features, self.feature_names, names))

    def calibrate(self, confidence: ArrayLike, features: FeatureInput | None = None,
                  names: Sequence[str] | None = None) -> np.ndarray:
        """P(correct) per turn."""
        return _predict_logistic(self.design_matrix(confidence, features, names), self.coefficients)

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": "logistic",
            "design": self.design.to_dict(),
            "coefficients": _floats(self.coefficients),
            "replicates": _floats(self.replicates),
            "n": self.n,
            "ece_raw": _json_number(self.ece_raw),
            "ece_calibrated": _json_number(self.ece_calibrated),
            "ece_floor": _json_number(self.ece_floor),
            "n_held_out": self.n_held_out,
        }

    @classmethod
    def from_dict(cls, record: Mapping[str, Any]) -> IntentCalibration:
        coefficients = _array(record["coefficients"])
        return cls(
            Design.from_dict(record["design"]),
            coefficients,
            _array(record["replicates"]).reshape(-1, coefficients.size),
            int(record["n"]),
            _number(record["ece_raw"]),
            _number(record["ece_calibrated"]),
            _number(record["ece_floor"]),
            int(record["n_held_out"]),
        )


def _ece_floor(probability: np.ndarray, seed: int, repeats: int = 20) -> float:
    """Mean ECE of ``probability`` against outcomes drawn from it: what binning noise alone gives."""
    rng = np.random.default_rng(seed)
    draws = [rng.random(probability.size) < probability for _ in range(repeats)]
    return float(np.mean([expected_calibration_error(probability, outcome) for outcome in draws]))


def fit_intent_calibration(
    confidence: ArrayLike,
    correct: ArrayLike,
    keys: Sequence[object],
    features: FeatureInput | None = None,
    names: Sequence[str] | None = None,
    seed: int = 0,
    n_boot: int = N_REPLICATES,
) -> IntentCalibration:
    """Fit P(correct | confidence, ASR features) on golden turns; score it on a hash-split held-out half.

    ``features``: name -> per-turn values (or a matrix with ``names``), e.g. ``WER_FEATURES``; None
    calibrates on the confidence alone (Platt scaling). Unknown values are imputed as for WER.
    """
    conf = np.asarray(confidence, float).ravel()
    hit = np.asarray(correct, float).ravel()
    if not conf.size == hit.size == len(keys) or conf.size < 2:
        raise ValueError("confidence, correct and keys must have the same length, at least 2")
    if not np.all(np.isfinite(conf)):
        raise ValueError("confidence must be finite")
    if hit.min() == hit.max():
        raise ValueError("the calibration turns must hold both right and wrong intents")
    chosen = _matrix(features, names)[1] if features is not None else ()
    raw = _intent_matrix(conf, features, chosen, names)
    design = Design.fit(raw, ("confidence_logit", *chosen))
    z = design(raw)
    held = held_out_half(keys)
    ece_raw = ece_cal = ece_floor = float("nan")
    if 0 < held.sum() < held.size and hit[~held].min() < hit[~held].max():
        calibrated = _predict_logistic(z[held], _fit_logistic(z[~held], hit[~held]))
        ece_raw = expected_calibration_error(conf[held], hit[held])
        ece_cal = expected_calibration_error(calibrated, hit[held])
        ece_floor = _ece_floor(calibrated, seed)
    replicates = bootstrap_refits(lambda w: _fit_logistic(z, hit, w), conf.size, n_boot, seed)
    return IntentCalibration(design, _fit_logistic(z, hit), np.array(replicates), conf.size, ece_raw, ece_cal,
                             ece_floor, int(held.sum()))


def extrapolated(calibration: IntentCalibration, reference: DomainReference, features: FeatureInput,
                 names: Sequence[str] | None = None) -> np.ndarray:
    """Per turn: beyond the calibration's range of some feature on the side where the calibrator predicts a
    lower accuracy (a lower SNR, a lower ASR log-probability ...), so its P(correct) there is a guess."""
    shared = [name for name in calibration.feature_names if name in reference.names]
    if not shared:
        return np.zeros(_matrix(features, names)[0].shape[0], bool)
    matrix = _aligned(features, shared, names)
    beyond = np.zeros(matrix.shape[0], bool)
    for j, name in enumerate(shared):
        k = reference.names.index(name)
        rising = calibration.coefficients[1 + calibration.design.names.index(name)] > 0
        with np.errstate(invalid="ignore"):
            beyond |= matrix[:, j] < reference.low[k] if rising else matrix[:, j] > reference.high[k]
    return beyond


def estimate_accuracy(
    calibration: IntentCalibration,
    confidences: ArrayLike,
    features: FeatureInput | None = None,
    confidence_level: float = 0.95,
    n_boot: int = 1000,
    seed: int = 0,
    domain: DomainCheck | None = None,
    names: Sequence[str] | None = None,
    beyond: ArrayLike | None = None,
) -> Estimate:
    """Expected intent accuracy of production turns = mean calibrated probability, with a predictive interval.

    ``features``: the turns' ASR features when the calibration uses them. Each of ``n_boot`` draws
    takes a calibration replicate and draws every turn's correctness as Bernoulli(p_i); the interval
    is the central ``confidence_level`` of the draws' accuracies. ``domain``: a ``domain_check`` of
    the slice's ASR features, carried onto the estimate. ``beyond`` (from :func:`extrapolated`), used
    when ``domain`` says the slice is outside: those turns' P(correct) is an extrapolation the golden
    set cannot check, so each draw takes it anywhere between 0 and the extrapolated value (uniformly).
    Measured on a new GSM channel at 0-5 dB: extrapolated 0.21 against a true 0.11; the interval must
    say that it does not know how much worse than the golden set's worst such a slice is.
    """
    conf = np.asarray(confidences, float).ravel()
    if conf.size == 0:
        return _estimate(float("nan"), np.empty(0), 0, confidence_level, domain)
    design = calibration.design_matrix(conf, features, names)
    unknown = (np.asarray(beyond, bool).ravel() if beyond is not None and domain is not None and domain.outside
               else np.zeros(conf.size, bool))

    def outcome(p: np.ndarray, rng: np.random.Generator) -> float:
        p = np.where(unknown, p * rng.random(p.size), p)
        return float(np.mean(rng.random(p.size) < p))

    draws = _predictive_draws(
        len(calibration.replicates), n_boot, seed,
        lambda b: _predict_logistic(design, calibration.replicates[b]), outcome,
    )
    value = float(np.mean(_predict_logistic(design, calibration.coefficients)))
    return _estimate(value, draws, conf.size, confidence_level, domain)


# ---------------------------------------------------------------------------------------------
# Outside the calibration domain
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class DomainReference:
    """What the calibration turns looked like: each feature's central range (``tail`` left out at each end)."""

    names: tuple[str, ...]
    low: np.ndarray  # per feature: the calibration's ``tail`` quantile (NaN: the feature was never known)
    high: np.ndarray  # per feature: its 1 - ``tail`` quantile
    tail: float

    def to_dict(self) -> dict[str, Any]:
        return {"names": list(self.names), "low": _floats(self.low), "high": _floats(self.high), "tail": self.tail}

    @classmethod
    def from_dict(cls, record: Mapping[str, Any]) -> DomainReference:
        return cls(tuple(record["names"]), _array(record["low"]), _array(record["high"]), float(record["tail"]))


def fit_domain_reference(features: FeatureInput, names: Sequence[str] | None = None,
                         tail: float = DOMAIN_TAIL) -> DomainReference:
    """Summarise calibration features for ``domain_check``: each feature's ``tail`` and 1 - ``tail`` quantiles."""
    matrix, chosen = _matrix(features, names)
    if matrix.shape[0] < 3:
        raise ValueError("the domain reference needs at least 3 calibration turns")
    known = ~np.isnan(matrix).all(axis=0)
    low, high = np.full(len(chosen), np.nan), np.full(len(chosen), np.nan)
    low[known] = np.nanquantile(matrix[:, known], tail, axis=0)
    high[known] = np.nanquantile(matrix[:, known], 1.0 - tail, axis=0)
    return DomainReference(chosen, low, high, tail)


def domain_check(
    calibration: DomainReference | FeatureInput,
    production_features: FeatureInput,
    max_share: float = DOMAIN_MAX_SHARE,
    alpha: float = DOMAIN_ALPHA,
) -> DomainCheck:
    """Is a slice outside the calibration domain?

    For each feature and each end of its calibration range, the share of the slice's turns beyond
    it (by chance about ``tail``, 1%). The slice is outside when, for some feature and end, more than
    ``max_share`` (20%) of its turns lie beyond AND that many is unlikely by chance (binomial tail
    below ``alpha`` over the number of ends tested): with 10 turns, 3 beyond one end flag it. Per
    feature rather than a joint distance: measured on a new GSM channel at 0-5 dB, 75-95% of its turns
    had a blind SNR below the golden set's 1st percentile while a k-nearest-neighbour distance over
    all features left every turn "inside" (the golden set's tails in duration and no-speech
    probability set its threshold). ``share_outside``: the largest such share.
    """
    reference = calibration if isinstance(calibration, DomainReference) else fit_domain_reference(calibration)
    matrix = _aligned(production_features, reference.names)
    if matrix.shape[0] == 0:
        return DomainCheck(False, 0.0, "no turns", 0, 1.0)
    tested = [j for j in range(len(reference.names)) if np.isfinite(reference.low[j])]
    level = alpha / max(2 * len(tested), 1)
    worst = (0.0, 1.0, "")
    for j in tested:
        column = matrix[:, j][~np.isnan(matrix[:, j])]
        for side, beyond in (("below", column < reference.low[j]), ("above", column > reference.high[j])):
            if column.size == 0:
                continue
            count = int(beyond.sum())
            share, p_value = count / column.size, float(binom.sf(count - 1, column.size, reference.tail))
            if (share, -p_value) > (worst[0], -worst[1]):
                percentile = reference.tail if side == "below" else 1.0 - reference.tail
                worst = (share, p_value, f"{reference.names[j]} {side} the calibration's {percentile:.0%} quantile")
    share, p_value, where = worst
    outside = share > max_share and p_value < level
    verdict = "outside calibration domain" if outside else "within calibration domain"
    detail = f"{verdict}: {share:.0%} of {matrix.shape[0]} turns with {where}" if where else f"{verdict}"
    return DomainCheck(outside, share, detail, matrix.shape[0], p_value)


# ---------------------------------------------------------------------------------------------
# ASR WER without labels
# ---------------------------------------------------------------------------------------------


def _fit_glm(design: np.ndarray, target: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """Poisson GLM (log link, ridge prior ``GLM_PRIOR``); returns [intercept, coefficients...].

    A degenerate bootstrap resample can make the Newton solver fall back to lbfgs; sklearn warns, the fit is fine.
    """
    w = np.ones(target.size) if weights is None else weights
    model = PoissonRegressor(alpha=GLM_PRIOR / float(w.sum()), solver="newton-cholesky", max_iter=100)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(design, target, sample_weight=w)
    return np.concatenate([[model.intercept_], model.coef_])


def _predict_glm(design: np.ndarray, coefficients: np.ndarray) -> np.ndarray:
    return np.exp(np.clip(coefficients[0] + design @ coefficients[1:], -30.0, 30.0))


def _dispersion(observed: np.ndarray, predicted: np.ndarray) -> float:
    """Negative-binomial overdispersion: Var = mu + alpha * mu^2, alpha by moments (0 when not overdispersed)."""
    excess = float(np.sum((observed - predicted) ** 2 - predicted))
    return max(0.0, excess / float(np.sum(predicted**2)))


@dataclass(frozen=True, eq=False)
class WerRegressor:
    """Predicts a turn's word errors and reference words from ASR confidence features, with replicates.

    ``errors`` / ``ref_words``: GLM coefficients fitted on all golden turns; ``error_replicates`` /
    ``ref_replicates``: the same refitted on bootstrap resamples (rows: replicates); ``dispersion``:
    negative-binomial alpha of errors around their prediction; ``mae`` / ``baseline_mae``: mean absolute
    error of the corpus WER of held-out batches of ``WER_BATCH`` turns, for this estimate and for the
    constant "calibration WER"; ``domain``: the calibration features for ``domain_check``.
    """

    design: Design
    errors: np.ndarray
    ref_words: np.ndarray
    error_replicates: np.ndarray
    ref_replicates: np.ndarray
    dispersion: float
    domain: DomainReference
    n: int
    mae: float
    baseline_mae: float
    n_held_out: int

    def predict(self, features: FeatureInput, names: Sequence[str] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Per turn: (expected word errors, expected reference words)."""
        design = self.design(_aligned(features, self.design.names, names))
        return _predict_glm(design, self.errors), _predict_glm(design, self.ref_words)

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": "poisson-glm",
            "design": self.design.to_dict(),
            "errors": _floats(self.errors),
            "ref_words": _floats(self.ref_words),
            "error_replicates": _floats(self.error_replicates),
            "ref_replicates": _floats(self.ref_replicates),
            "dispersion": self.dispersion,
            "domain": self.domain.to_dict(),
            "n": self.n,
            "mae": _json_number(self.mae),
            "baseline_mae": _json_number(self.baseline_mae),
            "n_held_out": self.n_held_out,
        }

    @classmethod
    def from_dict(cls, record: Mapping[str, Any]) -> WerRegressor:
        design = Design.from_dict(record["design"])
        width = len(record["errors"])
        return cls(
            design,
            _array(record["errors"]),
            _array(record["ref_words"]),
            _array(record["error_replicates"]).reshape(-1, width),
            _array(record["ref_replicates"]).reshape(-1, width),
            float(record["dispersion"]),
            DomainReference.from_dict(record["domain"]),
            int(record["n"]),
            _number(record["mae"]),
            _number(record["baseline_mae"]),
            int(record["n_held_out"]),
        )


def _held_out_wer_mae(
    design: np.ndarray, errors: np.ndarray, ref_words: np.ndarray, held: np.ndarray, seed: int, n_batches: int = 200
) -> tuple[float, float]:
    """MAE of corpus WER over random held-out batches: the GLM estimate, and the constant fit-half WER."""
    fit, test = ~held, held
    if fit.sum() < 2 or test.sum() < 2:
        return float("nan"), float("nan")
    mu = _predict_glm(design[test], _fit_glm(design[fit], errors[fit]))
    ref_hat = _predict_glm(design[test], _fit_glm(design[fit], ref_words[fit]))
    constant = errors[fit].sum() / max(ref_words[fit].sum(), 1.0)
    rng = np.random.default_rng(seed)
    size = min(WER_BATCH, int(test.sum()))
    err_t, ref_t = errors[test], ref_words[test]
    gaps, baseline = [], []
    for _ in range(n_batches):
        batch = rng.choice(int(test.sum()), size, replace=False)
        truth = err_t[batch].sum() / max(ref_t[batch].sum(), 1.0)
        gaps.append(abs(mu[batch].sum() / ref_hat[batch].sum() - truth))
        baseline.append(abs(constant - truth))
    return float(np.mean(gaps)), float(np.mean(baseline))


def fit_wer_regressor(
    features: FeatureInput,
    errors: ArrayLike,
    ref_words: ArrayLike,
    keys: Sequence[object],
    seed: int = 0,
    names: Sequence[str] | None = None,
    n_boot: int = N_REPLICATES,
) -> WerRegressor:
    """Fit the WER regressor on golden turns: per-turn word errors and reference words against ASR features.

    ``features``: name -> per-turn values, or a 2D array with ``names``; NaN (e.g. unknown snr_db) is
    imputed with the calibration median plus a missing flag. Scored on a hash-split held-out half.
    """
    matrix, chosen = _matrix(features, names)
    err = np.asarray(errors, float).ravel()
    ref = np.asarray(ref_words, float).ravel()
    if not matrix.shape[0] == err.size == ref.size == len(keys) or err.size < 3:
        raise ValueError("features, errors, ref_words and keys must have the same length, at least 3")
    design = Design.fit(matrix, chosen)
    z = design(matrix)
    held = held_out_half(keys)
    mae, baseline = _held_out_wer_mae(z, err, ref, held, seed)
    coef_err, coef_ref = _fit_glm(z, err), _fit_glm(z, ref)
    replicates = bootstrap_refits(lambda w: (_fit_glm(z, err, w), _fit_glm(z, ref, w)), err.size, n_boot, seed)
    return WerRegressor(
        design,
        coef_err,
        coef_ref,
        np.array([r[0] for r in replicates]),
        np.array([r[1] for r in replicates]),
        _dispersion(err, _predict_glm(z, coef_err)),
        fit_domain_reference(matrix, chosen),
        err.size,
        mae,
        baseline,
        int(held.sum()),
    )


def _draw_errors(mu: np.ndarray, dispersion: float, rng: np.random.Generator) -> np.ndarray:
    """Negative-binomial word errors with mean ``mu`` (Poisson-gamma mixture; Poisson when not overdispersed)."""
    if dispersion <= 0:
        return rng.poisson(mu)
    return rng.poisson(rng.gamma(1.0 / dispersion, dispersion * mu))


def estimate_wer(
    regressor: WerRegressor,
    features: FeatureInput,
    confidence_level: float = 0.95,
    n_boot: int = 1000,
    seed: int = 0,
    names: Sequence[str] | None = None,
    domain: DomainCheck | None = None,
) -> Estimate:
    """Corpus WER of production turns = sum(predicted errors) / sum(predicted reference words), with an interval.

    Each of ``n_boot`` draws takes a bootstrap replicate of both GLMs and draws every turn's errors
    around its replicate prediction (negative binomial); the interval is the central
    ``confidence_level`` of the draws' corpus WERs. Like the intent estimate, the target is what
    these turns would have scored, so outcomes are drawn given the turns rather than the turns
    resampled (resampling predictions alone would miss the per-turn noise). The reference-word
    denominator is taken as predicted, without noise (it is near the hypothesis word count). The
    slice is domain-checked against the calibration features (``domain``: that check, when the caller made it).
    """
    matrix = _aligned(features, regressor.design.names, names)
    check = domain if domain is not None else domain_check(regressor.domain, matrix)
    if matrix.shape[0] == 0:
        return _estimate(float("nan"), np.empty(0), 0, confidence_level, check)
    design = regressor.design(matrix)

    def predict(replicate: int) -> tuple[np.ndarray, float]:
        mu = _predict_glm(design, regressor.error_replicates[replicate])
        return mu, float(_predict_glm(design, regressor.ref_replicates[replicate]).sum())

    def outcome(prediction: tuple[np.ndarray, float], rng: np.random.Generator) -> float:
        mu, ref_words = prediction
        return float(_draw_errors(mu, regressor.dispersion, rng).sum() / ref_words)

    draws = _predictive_draws(len(regressor.error_replicates), n_boot, seed, predict, outcome)
    value = _predict_glm(design, regressor.errors).sum() / _predict_glm(design, regressor.ref_words).sum()
    return _estimate(float(value), draws, matrix.shape[0], confidence_level, check)
