"""Alert rules load strictly, thresholds and change tests fire when they should, and a stable stream stays quiet.

Everything here is synthetic and small: figures are made with numpy, the change tests' limits come
from the (cached) calibration in ``monitoring.change``, and the hand-checked cases override the
limit so their arithmetic can be followed on paper.
"""

from __future__ import annotations

import math
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pytest

from monitoring import change
from monitoring.figures import DailyFigure
from monitoring.rules import SHIPPED_RULES, Change, Rule, RuleError, Threshold, load_rules, parse_rules

START = date(2025, 3, 3)
CHANNELS = {"channel=telephone8k": 0.7, "channel=web16k": 0.3}
VOICES = {"voice=en-gb+f4": 0.4, "voice=en-us+m3": 0.3, "voice=en-in+f2": 0.3}


def _day(i: int) -> date:
    return START + timedelta(days=i)


def _rule(text: str) -> Rule:
    return parse_rules(f"version: 1\nrules:\n{text}", "test.yaml")[0]


def _series(metric: str, values: list[float], ns: list[int], se: float | None = None, slice_: str = "all",
            first: int = 0) -> list[DailyFigure]:
    pairs = enumerate(zip(values, ns, strict=True))
    return [DailyFigure(_day(first + i), metric, slice_, v, n, se) for i, (v, n) in pairs]


# -- the rules file ----------------------------------------------------------------------------------
def test_the_shipped_rules_load_and_cover_the_documented_defaults() -> None:
    rules = {rule.name: rule for rule in load_rules()}
    assert rules == {rule.name: rule for rule in load_rules(SHIPPED_RULES)}
    slow, broken = rules["latency_p95_slow"].condition, rules["latency_p95_broken"].condition
    assert isinstance(slow, Threshold) and (slow.op, slow.value) == (">", 500)
    assert isinstance(broken, Threshold) and (broken.op, broken.value) == (">", 1000)
    assert (rules["latency_p95_slow"].severity, rules["latency_p95_broken"].severity) == ("warning", "critical")
    handoff = rules["handoff_incomplete"].condition
    assert isinstance(handoff, Threshold) and (handoff.op, handoff.value) == ("<", 0.9)
    changes = {(r.metric, r.condition.direction, r.slices) for r in rules.values() if isinstance(r.condition, Change)}
    for metric, direction in [("callback_24h_rate", "up"), ("false_containment_24h_rate", "up"),
                              ("est_intent_accuracy", "down"), ("est_wer", "up"), ("sentiment_end", "down"),
                              ("escalation_rate", "up")]:
        assert (metric, direction, ("all",)) in changes
    for metric, direction in [("est_wer", "up"), ("est_intent_accuracy", "down"), ("asr_logprob_mean", "down")]:
        assert (metric, direction, ("channel", "voice")) in changes
    new = rules["new_slice_seen"]
    assert new.applies_to("channel=voip8k") and new.applies_to("voice=en-au+m1") and not new.applies_to("all")
    assert not new.applies_to("intent=card_arrival")
    assert rules["wer_up"].applies_to("all") and not rules["wer_up"].applies_to("channel=web16k")


def test_a_single_slice_and_a_list_select_what_they_name() -> None:
    rule = _rule("  - {name: r, metric: est_wer, slices: [channel=web16k, voice], severity: warning, component: asr,\n"
                 "     condition: {type: change, direction: up}}")
    assert rule.applies_to("channel=web16k") and rule.applies_to("voice=en-gb+f4")
    assert not rule.applies_to("channel=telephone8k") and not rule.applies_to("all")


@pytest.mark.parametrize(
    ("rule", "key", "says"),
    [
        ("{name: r1, metric: est_werr, severity: warning, component: asr, condition: {type: change, direction: up}}",
         "metric", "unknown metric 'est_werr'"),
        ("{name: r1, metric: est_wer, severity: warning, component: asr,"
         " condition: {type: threshold, op: '>=', value: 1}}",
         "condition.op", "'>' or '<'"),
        ("{name: r1, metric: est_wer, component: asr, condition: {type: change, direction: up}}",
         "severity", "Field required"),
        ("{name: r1, metric: est_wer, severity: warning, component: asr, condition: {type: change, direction: up},"
         " window: 3}", "window", "Extra inputs"),
        ("{name: r1, metric: est_wer, slices: [channel, colour], severity: warning, component: asr,"
         " condition: {type: change, direction: up}}", "slices", "unknown slice 'colour'"),
        ("{name: r1, metric: new_slice, severity: warning, component: asr, condition: {type: change, direction: up}}",
         "(rule)", "threshold condition"),
    ],
)
def test_a_bad_rule_names_the_file_the_rule_and_the_key(tmp_path: Path, rule: str, key: str, says: str) -> None:
    path = tmp_path / "alert_rules.yaml"
    path.write_text(f"version: 1\nrules:\n  - {rule}\n")
    with pytest.raises(RuleError) as error:
        load_rules(path)
    message = str(error.value)
    assert message.startswith(f"{path}: rule 'r1': key '{key}'"), message
    assert says in message


def test_a_nameless_rule_duplicate_names_and_broken_files_are_reported(tmp_path: Path) -> None:
    with pytest.raises(RuleError, match=r"test.yaml: rule #1: key 'name': Field required"):
        parse_rules("rules:\n  - {metric: est_wer, severity: warning, component: asr,"
                    " condition: {type: change, direction: up}}\n", "test.yaml")
    twice = ("  - {name: a, metric: est_wer, severity: warning, component: asr,"
             " condition: {type: change, direction: up}}\n")
    with pytest.raises(RuleError, match=r"rule 'a': key 'name': used by two rules"):
        parse_rules(f"rules:\n{twice}{twice}", "test.yaml")
    with pytest.raises(RuleError, match=r"test.yaml: not valid YAML at line"):
        parse_rules("rules: [\n", "test.yaml")
    with pytest.raises(RuleError, match=r"alert rules file not found"):
        load_rules(tmp_path / "missing.yaml")


# -- thresholds, min_n, rolling windows ---------------------------------------------------------------------
HANDOFF = ("metric: handoff_complete_rate, severity: warning, component: service,"
           " condition: {type: threshold, op: '<', value: 0.9}")
#            day:       1     2     3     4     5
HANDOFF_DAYS = _series("handoff_complete_rate", [0.97, 0.80, 0.95, 0.70, 0.98], [30, 10, 30, 20, 40])


def test_a_threshold_fires_on_a_breach_and_not_on_a_day_below_min_n() -> None:
    rule = _rule(f"  - {{name: daily, {HANDOFF}, min_n: 20}}")
    events = change.evaluate(rule, {f.day: f for f in HANDOFF_DAYS}, [])
    # day 2 (0.80) would breach, but from 10 calls it is not judged; day 4 (0.70, 20 calls) is
    assert [(e.day, e.value, e.reference_mean) for e in events] == [(_day(3), 0.70, None)]
    assert events[0].statistic == pytest.approx(0.70 - 0.9) and events[0].severity == "warning"
    loose = _rule(f"  - {{name: daily, {HANDOFF}, min_n: 5}}")
    assert [e.day for e in change.evaluate(loose, {f.day: f for f in HANDOFF_DAYS}, [])] == [_day(1), _day(3)]
    latency = _rule("  - {name: p95, metric: latency_p95_ms, severity: critical, component: serving,"
                    " condition: {type: threshold, op: '>', value: 1000}}")
    quiet = _series("latency_p95_ms", [420.0, 980.0, 999.9], [200, 200, 200])
    assert change.evaluate(latency, {f.day: f for f in quiet}, []) == []


def test_a_breach_lasting_days_is_one_event() -> None:
    rule = _rule("  - {name: p95, metric: latency_p95_ms, severity: warning, component: serving,"
                 " condition: {type: threshold, op: '>', value: 500}}")
    days = _series("latency_p95_ms", [450.0, 610.0, 640.0, 700.0, 480.0, 530.0], [200] * 6)
    assert [e.day for e in change.evaluate(rule, {f.day: f for f in days}, [])] == [_day(1), _day(5)]


def test_a_rolling_three_day_window_pools_by_calls() -> None:
    rule = _rule(f"  - {{name: pooled, {HANDOFF}, window_days: 3, min_n: 20}}")
    events = change.evaluate(rule, {f.day: f for f in HANDOFF_DAYS}, [])
    # by hand, n-weighted:  day 2 (29.1 + 8) / 40 = 0.9275;  day 3 (29.1 + 8 + 28.5) / 70 = 0.9371;
    # day 4 (8 + 28.5 + 14) / 60 = 0.8417 < 0.9: fires;  day 5 (28.5 + 14 + 39.2) / 90 = 0.9078
    assert [(e.day, round(e.value, 4)) for e in events] == [(_day(3), 0.8417)]
    pooled = change.pool(HANDOFF_DAYS[1:4])
    assert (pooled.day, pooled.n, pooled.value) == (_day(3), 60, pytest.approx(50.5 / 60))
    with_se = change.pool(_series("est_wer", [0.10, 0.20, 0.30], [40, 20, 40], se=0.05))
    # w = (0.4, 0.2, 0.4): value 0.2, se = sqrt(0.16 + 0.04 + 0.16) * 0.05
    assert with_se.value == pytest.approx(0.2) and with_se.se == pytest.approx(0.6 * 0.05)


def test_the_confidence_bound_keeps_a_small_noisy_pool_quiet() -> None:
    rule = _rule("  - {name: sure, metric: handoff_complete_rate, severity: warning, component: service,"
                 " condition: {type: threshold, op: '<', value: 0.9, confidence: 0.95}, window_days: 3}")
    # 26/30 = 0.867 < 0.9, but its Wilson 95% upper bound is 0.95: not a finding
    noisy = _series("handoff_complete_rate", [26 / 30], [30])
    assert change.evaluate(rule, {f.day: f for f in noisy}, []) == []
    # 40/60 = 0.667: upper bound 0.77, clearly below
    bad = _series("handoff_complete_rate", [40 / 60], [60])
    assert len(change.evaluate(rule, {f.day: f for f in bad}, [])) == 1


# -- CUSUM and EWMA by hand ------------------------------------------------------------------------------------
def test_cusum_and_ewma_by_hand() -> None:
    # S_t = max(0, S_{t-1} + z_t - 0.5): 0, 1.0, 2.5, max(0, 2.5 - 1 - 0.5) = 1.0, 3.5 > 3: alarm, reset
    path, alarms = change.cusum([0.2, 1.5, 2.0, -1.0, 3.0, 0.9], k=0.5, h=3.0)
    assert path == pytest.approx([0.0, 1.0, 2.5, 1.0, 3.5, 0.4]) and alarms == [4]
    # E_t = 0.5 z_t + 0.5 E_{t-1}: 0.5, 1.25 > 2 * sqrt(0.5 / 1.5) = 1.155: alarm, reset; 0.5 * 0 + 0 = 0
    path, alarms = change.ewma([1.0, 2.0, 0.0], lam=0.5, limit=2.0)
    assert path == pytest.approx([0.5, 1.25, 0.0]) and alarms == [1]


def _alternating_reference(metric: str = "sentiment_end") -> list[DailyFigure]:
    return _series(metric, [0.9, 1.1] * 7, [100] * 14, se=0.05, first=-14)


def test_a_change_test_standardises_against_the_reference_by_hand() -> None:
    rule = _rule("  - {name: up, metric: sentiment_end, severity: warning, component: service,"
                 " condition: {type: change, direction: up, k: 0.5}}")
    reference = _alternating_reference()
    ref = change.reference_of("sentiment_end", reference)
    var = 14 * 0.1**2 / 13  # 14 days at +-0.1 around 1.0
    assert (ref.days, ref.mean, ref.sampling_var) == (14, pytest.approx(1.0), pytest.approx(0.0025))
    assert ref.between_day_var == pytest.approx(var - 0.0025)
    values = [1.05, 1.20, 1.25, 0.90, 1.35]
    z = [(v - 1.0) / math.sqrt(var - 0.0025 + 0.05**2) for v in values]
    s, expected = 0.0, []
    for zt in z:
        s = max(0.0, s + zt - 0.5)
        expected.append(s)
        s = 0.0 if s > 3.0 else s
    assert expected[2] > 3.0 and max(expected[3:]) < 3.0  # by hand: one alarm, on day 3
    monitored = _series("sentiment_end", values, [100] * 5, se=0.05)
    events = change.evaluate(rule, {f.day: f for f in monitored}, reference, limit=3.0)
    assert [(e.day, e.direction, e.limit) for e in events] == [(_day(2), "up", 3.0)]
    assert events[0].statistic == pytest.approx(expected[2]) and events[0].reference_mean == pytest.approx(1.0)
    down = _rule("  - {name: dn, metric: sentiment_end, severity: warning, component: service,"
                 " condition: {type: change, direction: down, method: ewma, lambda: 0.5}}")
    falling = _series("sentiment_end", [0.7, 0.6], [100, 100], se=0.05)
    events = change.evaluate(down, {f.day: f for f in falling}, reference, limit=2.0)
    # -z = 2.89, 3.85: E = 1.45 > 1.155 (alarm, reset), then 1.93 > 1.155
    assert [(e.day, e.direction) for e in events] == [(_day(0), "down"), (_day(1), "down")]


def test_a_rate_without_se_uses_the_binomial_se_of_the_reference_mean() -> None:
    reference = _series("callback_24h_rate", [0.1] * 14, [100] * 14, first=-14)
    ref = change.reference_of("callback_24h_rate", reference)
    p = (0.1 * 1400 + 1) / 1402
    assert ref.sampling_var == pytest.approx(p * (1 - p) / 100) and ref.between_day_var == 0.0
    rule = _rule("  - {name: cb, metric: callback_24h_rate, severity: warning, component: service,"
                 " condition: {type: change, direction: up, k: 0.5}}")
    events = change.evaluate(rule, {_day(0): DailyFigure(_day(0), "callback_24h_rate", "all", 0.16, 100)},
                             reference, limit=1.0)
    assert events[0].statistic == pytest.approx((0.16 - 0.1) / math.sqrt(p * (1 - p) / 100) - 0.5)


def test_a_short_reference_runs_no_change_test_but_thresholds_still_run() -> None:
    rules = load_rules()
    reference = _series("est_wer", [0.15] * 10, [40] * 10, se=0.02, first=-10)
    latency = _series("latency_p95_ms", [1200.0], [200])
    monitored = _series("est_wer", [0.9, 0.9], [40, 40], se=0.02) + latency
    result = change.evaluate_all(rules, monitored, reference)
    assert [e.rule for e in result.events] == ["latency_p95_broken", "latency_p95_slow"]
    assert result.tests == 0
    assert any("wer_up on all: reference too short (10 usable days < 14)" in note for note in result.notes)


# -- calibration ---------------------------------------------------------------------------------------------
def test_calibration_matches_siegmund_with_known_parameters_and_grows_with_uncertainty() -> None:
    rate = change.per_test_rate(21)
    assert rate == pytest.approx(0.1 * 0.5 / 28 / 21)
    known = change.threshold_for(rate, 1.5)
    assert known == pytest.approx(change.siegmund_threshold(rate, 1.5), abs=0.3)
    estimated = change.threshold_for(rate, 1.5, reference_days=28)
    assert known < estimated < 6.0
    assert change.threshold_for(rate, 1.5, reference_days=60) <= estimated  # calibrated as 56 days: never looser
    assert change.threshold_for(rate, 1.5, window_days=3, reference_days=28) > estimated  # overlap: correlated days


# -- stable streams and step changes ---------------------------------------------------------------------------
def _stream(days: int, calls: int, seed: int, day_noise: float = 1.0, onset: int | None = None,
            callback_step: float = 0.0, wer_step: float = 0.0) -> list[DailyFigure]:
    """Every figure the default rules read: rates from ``calls`` a day, day-to-day noise, slices."""
    rng = np.random.default_rng(seed)
    after = np.arange(days) >= (onset if onset is not None else days)
    figures: list[DailyFigure] = []

    def add(metric: str, slice_: str, values: np.ndarray, ns: np.ndarray, se: np.ndarray | None = None,
            interval: bool = False) -> None:
        for i in range(days):
            s = None if se is None else float(se[i])
            low, high = (float(values[i]) - 1.96 * s, float(values[i]) + 1.96 * s) if interval and s else (None, None)
            figures.append(DailyFigure(_day(i), metric, slice_, float(values[i]), int(ns[i]), s, low, high))

    n = np.full(days, calls)
    p_callback = np.clip(0.10 + day_noise * rng.normal(0, 0.01, days) + callback_step * after, 0.01, 0.99)
    add("callback_24h_rate", "all", rng.binomial(n, p_callback) / n, n)
    escalated = rng.binomial(n, 0.25)
    add("escalation_rate", "all", escalated / n, n)
    add("handoff_complete_rate", "all", rng.binomial(np.maximum(escalated, 1), 0.98) / np.maximum(escalated, 1),
        escalated)
    contained = n - escalated
    add("false_containment_rate", "all", rng.binomial(contained, 0.08) / contained, contained)
    add("latency_p95_ms", "all", rng.normal(350, 25, days), 4 * n, np.full(days, 15.0))
    sentiment_se = np.full(days, 0.3 / math.sqrt(calls))
    add("sentiment_end", "all", 0.1 + day_noise * rng.normal(0, 0.02, days) + rng.normal(0, sentiment_se), n,
        sentiment_se)
    common_wer = day_noise * rng.normal(0, 0.01, days)
    for slice_, share in {"all": 1.0, **CHANNELS, **VOICES}.items():
        ns = np.maximum(1, np.round(n * share)).astype(int)
        wer_se, acc_se, logprob_se = 0.13 / np.sqrt(ns), 0.2 / np.sqrt(ns), 0.3 / np.sqrt(ns)
        step = wer_step * after * (1.0 if slice_ == "channel=web16k" else share if slice_ == "all" else 0.0)
        add("est_wer", slice_, 0.15 + common_wer + step + rng.normal(0, wer_se), ns, wer_se, interval=True)
        add("est_intent_accuracy", slice_, 0.88 + day_noise * rng.normal(0, 0.01, days) + rng.normal(0, acc_se), ns,
            acc_se, interval=True)
        if slice_ != "all":
            add("asr_logprob_mean", slice_, -0.3 + day_noise * rng.normal(0, 0.02, days) + rng.normal(0, logprob_se),
                ns, logprob_se)
            add("new_slice", slice_, np.zeros(days), ns)
    return figures


@pytest.mark.parametrize("day_noise", [1.0, 4.0])
def test_a_stable_stream_raises_at_most_a_tenth_of_a_false_alarm_per_28_days(day_noise: float) -> None:
    # 1000 resampled months of 21 change tests and 8 threshold tests; day_noise 4: day-to-day
    # variation dominates sampling, the case the calibration assumes
    stream = _stream(days=365, calls=40, seed=11, day_noise=day_noise)
    assert change.false_alarm_rate(load_rules(), stream, months=1000, seed=3) <= change.FALSE_ALARMS_PER_28_DAYS


def test_fresh_stable_months_through_evaluate_all_stay_quiet() -> None:
    fresh = _stream(days=56 * 3, calls=40, seed=12)
    for month in range(3):
        reference = [f for f in fresh if 56 * month <= (f.day - START).days < 56 * month + 28]
        watched = [f for f in fresh if 56 * month + 28 <= (f.day - START).days < 56 * (month + 1)]
        result = change.evaluate_all(load_rules(), watched, reference)
        assert result.tests == 20 and result.events == [], result.events
        assert result.per_test_rate == pytest.approx(change.per_test_rate(20)) and result.notes == []


def _first_alarm_after(events: list[change.ChangeEvent], onset: date, rule: str) -> int:
    days = [(e.day - onset).days for e in events if e.rule == rule]
    assert all(d >= 0 for d in days), f"{rule} alarmed before the change"
    return min(days, default=99)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_step_change_alarms_within_two_days(seed: int) -> None:
    rules = load_rules()
    # callback rate 0.10 -> 0.30 from day 15 of the watched month (100 calls a day)
    stream = _stream(days=56, calls=100, seed=seed, onset=28 + 14, callback_step=0.2)
    reference, watched = [f for f in stream if f.day < _day(28)], [f for f in stream if f.day >= _day(28)]
    events = change.evaluate_all(rules, watched, reference).events
    assert _first_alarm_after(events, _day(42), "callback_rate_up") <= 2
    # est_wer +0.15 on a 30% slice (channel=web16k): the slice rule sees it whole
    stream = _stream(days=56, calls=100, seed=seed, onset=28 + 14, wer_step=0.15)
    reference, watched = [f for f in stream if f.day < _day(28)], [f for f in stream if f.day >= _day(28)]
    events = change.evaluate_all(rules, watched, reference).events
    assert _first_alarm_after(events, _day(42), "slice_wer_up") <= 2
    assert {e.slice for e in events if e.rule == "slice_wer_up"} == {"channel=web16k"}


def test_a_slice_absent_from_the_reference_raises_new_slice_once() -> None:
    stream = _stream(days=35, calls=40, seed=5)
    reference, watched = [f for f in stream if f.day < _day(28)], [f for f in stream if f.day >= _day(28)]
    voip = [DailyFigure(_day(28 + i), "new_slice", "channel=voip8k", 1.0 if i == 0 else 0.0, 6) for i in range(7)]
    voip += [DailyFigure(_day(28 + i), "est_wer", "channel=voip8k", 0.4, 6, 0.05) for i in range(7)]
    result = change.evaluate_all(load_rules(), watched + voip, reference)
    assert [(e.rule, e.slice, e.day) for e in result.events] == [("new_slice_seen", "channel=voip8k", _day(28))]
    assert any("slice_wer_up on channel=voip8k: reference too short (0 usable days" in n for n in result.notes)


def test_replays_derive_new_slices_from_the_replayed_reference() -> None:
    rules = [r for r in load_rules() if r.metric == "new_slice"]
    stream = _stream(days=60, calls=40, seed=6)
    # the stream's own first-day flags (a monitor started without a reference) are not replayed
    flagged = [DailyFigure(f.day, f.metric, f.slice, 1.0 if f.day == START else 0.0, f.n)
               if f.metric == "new_slice" else f for f in stream]
    assert change.false_alarm_rate(rules, flagged, months=500, seed=1) == 0.0
    # a slice seen on 2 days of 60 is new to most resampled references it shows up after
    rare = [DailyFigure(_day(d), "new_slice", "voice=cy-gb+f1", 0.0, 3) for d in (10, 40)]
    rate = change.false_alarm_rate(rules, flagged + rare, months=500, seed=1)
    p_month, p_ref = 1 - (58 / 60) ** 28, (58 / 60) ** 28  # the month holds one of its days; the reference none
    assert rate == pytest.approx(p_month * p_ref, abs=0.06)
