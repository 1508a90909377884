"""Evidently's per-column drift tests of the customer turns' inputs (``input_drift_share``), on synthetic streams.

Real Evidently, no mocks: 20 days of 40 calls of 3 customer turns over three channels, drawn from one
seeded distribution, so a stable stream should show little drift and a new, noisy channel a lot.
"""

from __future__ import annotations

import json
import math
from datetime import date, timedelta

import numpy as np
import pytest

from core.settings import MonitorConfig
from monitoring.figures import METRICS, DailyFigure
from monitoring.input_drift import AGAINST_ALL, COLUMNS, METRIC, input_drift_figures
from monitoring.report import metric_sections
from monitoring.rules import load_rules
from monitoring.signals import CallSignals, TurnSignal
from monitoring.watch import reference_window

START = date(2026, 11, 1)
DAYS = 20
CHANNELS = ("telephone8k", "clean16k", "voip16k")
NOISY = "gsm-noisy8k"
NEW_FROM = START + timedelta(days=14)  # day 15: the first day after the 14-day reference


def _turns(rng: np.random.Generator, count: int, snr_shift: float = 0.0, logprob_shift: float = 0.0,
           missing_snr: bool = False) -> list[TurnSignal]:
    return [TurnSignal(index=2 * k, duration_s=float(rng.gamma(4.0, 0.6)), dbfs=float(rng.normal(-22.0, 3.0)),
                       source="champion", intent="card_arrival", confidence=float(rng.beta(8.0, 2.0)),
                       avg_logprob=float(rng.normal(-0.35, 0.1)) + logprob_shift,
                       no_speech_prob=float(rng.beta(1.0, 20.0)),
                       snr_db=math.nan if missing_snr and k % 2 else float(rng.normal(18.0, 4.0)) + snr_shift)
            for k in range(count)]


def _call(day: date, number: int, channel: str, turns: list[TurnSignal]) -> CallSignals:
    return CallSignals(call_id=f"call-{day:%m%d}-{channel}-{number:03d}", caller_ref=f"caller-{number:03d}",
                       started_at=f"{day.isoformat()}T{9 + number % 9:02d}:{number % 60:02d}:00+00:00",
                       consent_training=True, channel=channel, voice="en-gb+f4", duration_s=30.0,
                       outcome="contained", turns=turns)


def _stream(seed: int, noisy: bool = False) -> list[CallSignals]:
    """Every day alike; with ``noisy``, from day 15 also 15 calls a day on a new channel, far quieter and less sure."""
    rng = np.random.default_rng(seed)
    calls = []
    for offset in range(DAYS):
        day = START + timedelta(days=offset)
        calls += [_call(day, i, CHANNELS[i % 3], _turns(rng, 3)) for i in range(40)]
        if noisy and day >= NEW_FROM:
            calls += [_call(day, 100 + i, NOISY, _turns(rng, 3, snr_shift=-14.0, logprob_shift=-0.5))
                      for i in range(15)]
    return calls


def _reference(calls: list[CallSignals]) -> set[date]:
    window = reference_window(sorted({date.fromisoformat(c.day) for c in calls}), MonitorConfig(reference_days=14))
    return set(window.reference)


@pytest.fixture(scope="module")
def stable() -> tuple[list[CallSignals], list[DailyFigure]]:
    calls = _stream(seed=7)
    return calls, input_drift_figures(calls, _reference(calls))


@pytest.fixture(scope="module")
def noisy() -> tuple[list[CallSignals], list[DailyFigure]]:
    calls = _stream(seed=11, noisy=True)
    return calls, input_drift_figures(calls, _reference(calls))


def test_a_stable_stream_shows_little_drift(stable: tuple[list[CallSignals], list[DailyFigure]]) -> None:
    calls, figures = stable
    assert _reference(calls) == {START + timedelta(days=d) for d in range(14)}
    assert {f.metric for f in figures} == {METRIC}
    # every day is judged, reference days against the other reference days; all and the channels only
    assert len(figures) == DAYS * 4
    assert {f.slice for f in figures} == {"all"} | {f"channel={c}" for c in CHANNELS}
    day_all = next(f for f in figures if f.slice == "all" and f.day == START)
    assert day_all.n == 120  # the day's customer turns in the slice
    monitored = [f for f in figures if f.day >= NEW_FROM]
    assert np.mean([f.value for f in monitored]) < 0.2
    assert all(f.value < 1.0 for f in figures)  # never every column at once
    assert not any(AGAINST_ALL in f.flags for f in figures)


def test_a_new_noisy_channel_is_compared_with_the_whole_reference_and_drifts(
        noisy: tuple[list[CallSignals], list[DailyFigure]]) -> None:
    _calls, figures = noisy
    new = [f for f in figures if f.slice == f"channel={NOISY}"]
    assert [f.day for f in new] == [NEW_FROM + timedelta(days=d) for d in range(DAYS - 14)]
    for figure in new:
        assert figure.n == 45
        assert {"drifted:snr_db", "drifted:avg_logprob"} <= set(figure.flags)
        assert AGAINST_ALL in figure.flags  # the reference never saw the channel: all its turns stand in
        assert figure.value >= round(1 / 3, 5)  # figures are rounded to 5 places
    assert not any(AGAINST_ALL in f.flags for f in figures if f.slice != f"channel={NOISY}")


def test_figures_hold_numbers_and_column_names_only(noisy: tuple[list[CallSignals], list[DailyFigure]]) -> None:
    calls, figures = noisy
    exported = json.dumps([f.to_dict() for f in figures])
    assert not any(c.call_id in exported or c.caller_ref in exported for c in calls)
    allowed = {f"drifted:{c}" for c in COLUMNS} | {AGAINST_ALL}
    assert {flag for f in figures for flag in f.flags} <= allowed


def test_too_few_turns_or_values_give_no_figure_and_missing_is_not_zero() -> None:
    rng = np.random.default_rng(3)
    reference = {START + timedelta(days=d) for d in range(7)}
    calls = [_call(START + timedelta(days=d), i, "telephone8k", _turns(rng, 3)) for d in range(7) for i in range(20)]
    small = START + timedelta(days=8)
    calls += [_call(small, i, "telephone8k", _turns(rng, 3)) for i in range(3)]  # 9 turns: too few to test
    gappy = START + timedelta(days=9)
    calls += [_call(gappy, i, "telephone8k", _turns(rng, 3, missing_snr=True)) for i in range(20)]
    figures = input_drift_figures(calls, reference)
    assert not [f for f in figures if f.day == small]
    [gap] = [f for f in figures if f.day == gappy and f.slice == "all"]
    assert "drifted:snr_db" not in gap.flags  # a third of the values missing (NaN), not read as 0 dB
    assert input_drift_figures(calls, set()) == []  # no reference: nothing to compare with
    assert input_drift_figures([], reference) == []


def test_the_figure_is_reported_in_the_drift_section_and_has_no_alert_rule() -> None:
    assert METRIC in METRICS
    assert ("Audio and drift", [METRIC]) in metric_sections([METRIC])
    assert not [r for r in load_rules() if r.metric == METRIC]
