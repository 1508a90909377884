"""Label-free accuracy figures for one day and slice: what the calibrated champion would have scored.

Only turns the champion itself heard count (``source == "champion"``): a bot platform's logged
confidences belong to a model voiceloop cannot calibrate, so they feed drift figures only. WER is
estimated over every such turn; intent accuracy over each call's opening request (its first customer
turn), the turn an intent model exists for: later turns ("thanks, that's all") have no intent, and the
golden set it was calibrated on holds requests only. A slice
whose turns lie outside what the golden set covered carries the ``outside-calibration-domain`` flag
beside its estimate: the number is an extrapolation there.
"""

from __future__ import annotations

import hashlib
import math
from datetime import date

import numpy as np

from monitoring.calibration import Calibration, turn_features
from monitoring.estimation import (
    WER_FEATURES,
    Estimate,
    domain_check,
    estimate_accuracy,
    estimate_wer,
    extrapolated,
)
from monitoring.figures import OUTSIDE_CALIBRATION, SMALL_CALIBRATION, DailyFigure
from monitoring.signals import CallSignals, TurnSignal

N_DRAWS = 400  # predictive draws per estimate: the interval's ends move by under a point beyond this
# Fewer golden turns than this and the calibration curve is a few coarse steps whose bootstrap cannot show
# how far off it is: measured with 76 turns, estimates 6-11 points above the truth (benchmarks/README.md)
RELIABLE_TURNS = 300


def _seed(day: date, slice_name: str, metric: str) -> int:
    return int.from_bytes(hashlib.blake2b(f"{day}|{slice_name}|{metric}".encode(), digest_size=4).digest(), "big")


def _figure(day: date, metric: str, slice_name: str, estimate: Estimate, calibrated_on: int) -> DailyFigure | None:
    if estimate.n == 0 or not math.isfinite(estimate.value):
        return None
    se = estimate.se if math.isfinite(estimate.se) else None
    flags = ((OUTSIDE_CALIBRATION,) if estimate.outside_domain else ()) + (
        (SMALL_CALIBRATION,) if calibrated_on < RELIABLE_TURNS else ())
    return DailyFigure(day, metric, slice_name, round(estimate.value, 5), estimate.n,
                       None if se is None else round(se, 5), round(estimate.low, 5), round(estimate.high, 5),
                       flags=flags)


def _heard_turns(calls: list[CallSignals]) -> list[TurnSignal]:
    return [t for c in calls for t in c.turns if t.source == "champion" and t.words is not None]


def _features(turns: list[TurnSignal]) -> dict[str, np.ndarray]:
    rows = [turn_features(t, t.duration_s) for t in turns]
    return {name: np.array([r[name] for r in rows]) for name in WER_FEATURES}


def requests_heard(calls: list[CallSignals]) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """The calls' opening requests the champion heard and read: their intent confidences and ASR features."""
    requests = [t for c in calls for t in c.turns[:1]
                if t.source == "champion" and t.words is not None and t.confidence is not None]
    return np.array([t.confidence for t in requests], float), _features(requests)


def estimate_figures(calibration: Calibration | None, day: date, slice_name: str,
                     calls: list[CallSignals]) -> list[DailyFigure]:
    """``est_intent_accuracy`` and ``est_wer`` of the slice's champion-heard turns, when calibrated."""
    turns = _heard_turns(calls)
    if calibration is None or not turns:
        return []
    features = _features(turns)
    domain = domain_check(calibration.wer.domain, features) if calibration.wer is not None else None
    out: list[DailyFigure | None] = []
    if calibration.wer is not None:
        out.append(_figure(day, "est_wer", slice_name, estimate_wer(
            calibration.wer, features, n_boot=N_DRAWS, seed=_seed(day, slice_name, "wer"), domain=domain),
            calibration.wer.n))
    confidence, request_features = requests_heard(calls)
    if calibration.intent is not None and confidence.size:
        beyond = (extrapolated(calibration.intent, calibration.wer.domain, request_features)
                  if calibration.wer is not None else None)
        out.append(_figure(day, "est_intent_accuracy", slice_name, estimate_accuracy(
            calibration.intent, confidence, request_features, n_boot=N_DRAWS, seed=_seed(day, slice_name, "intent"),
            domain=domain, beyond=beyond), calibration.intent.n))
    return [f for f in out if f is not None]
