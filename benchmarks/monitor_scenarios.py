"""The monitor measured against the simulator's truth: false alarms, detection delays, estimates vs the truth, speed.

Input: a trained project (its params.yaml beside its state, e.g. the test suite's flow template:
``/tmp/pytest-of-$USER/pytest-current/flow-template0``) and streams made by
``voiceloop simulate-calls --production --no-bot-log`` into ``<streams>/<scenario>/{calls,truth}``
(``stable``; ``noisy``: ``--drift noisy-channel@15:0.3``; ``outage``: ``--drift outage@20-22``; ``shift``:
``--drift intent-shift@15``; the same seed, days and start). The stable project is monitored first; the
other scenarios start from a copy of it, so the monitor only reads the calls a drift changed (a changed call
is read again).

    python benchmarks/monitor_scenarios.py --template DIR --streams DIR --work DIR

Prints one JSON line per figure (benchmarks/README.md, "Monitoring"). The truth is read here only:
voiceloop never reads it.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import time
from collections import defaultdict
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import yaml

from benchmarks.common import emit

ONSET = {"noisy": 15, "outage": 20, "shift": 15}


def _copy_project(source: Path, dest: Path, call_store: Path, monitor: dict[str, Any]) -> Path:
    """A copy of a project folder with every absolute path (params, MLflow's database) re-pointed at it."""
    from tests.flow_helpers import _repoint_sqlite

    if dest.exists():
        shutil.rmtree(dest)
    shutil.copytree(source, dest, ignore=shutil.ignore_patterns("prefect", "cache", "work", "logs"))
    params = dest / "params.yaml"
    settings = yaml.safe_load(params.read_text().replace(str(source), str(dest)))
    settings["sources"]["call_store"] = str(call_store)
    settings["monitor"] = {**settings.get("monitor", {}), **monitor}
    params.write_text(yaml.safe_dump(settings))
    for db in dest.rglob("mlflow.db"):
        _repoint_sqlite(db, str(source), str(dest))
    return params


def _run(params: Path) -> tuple[dict[str, Any], float]:
    from flows.monitor import monitor

    started = time.perf_counter()
    summary = monitor(params_file=str(params)).to_json()
    return summary, time.perf_counter() - started


def _store(params: Path) -> Any:
    from core.settings import load_settings
    from governance.session import open_store

    return open_store(load_settings(params), "pipeline", "monitoring")


def _day(first: date, n: int) -> date:
    return first + timedelta(days=n - 1)


def _truth(streams: Path, scenario: str) -> dict[str, dict[str, Any]]:
    return {p.stem: json.loads(p.read_text()) for p in (streams / scenario / "truth").glob("call-*.json")}


def _stream_days(truth: dict[str, dict[str, Any]]) -> set[date]:
    return {date.fromisoformat(t["date"]) for t in truth.values()}


def _alerts(store: Any, days: set[date]) -> list[dict[str, Any]]:
    return [a for a in store.read_monitoring("alerts").values() if date.fromisoformat(a["day"]) in days]


def _true_accuracy(records: list[Any], truth: dict[str, dict[str, Any]]) -> tuple[int, int]:
    """(right, asked) of the champion's reading of each call's opening request, against the truth's intent."""
    right = asked = 0
    for call in records:
        said = {t["turn"]: t.get("intent") for t in truth[call.call_id]["turns"] if t["speaker"] == "customer"}
        first = next((t for t in call.turns[:1] if t.source == "champion"), None)
        if first is None or said.get(first.index) is None:
            continue
        asked += 1
        right += first.intent == said[first.index]
    return right, asked


def weekly_accuracy(scenario: str, store: Any, calibration: Any, truth: dict[str, dict[str, Any]],
                    slice_name: str = "all") -> None:
    """Estimated vs true intent accuracy per week (days 1-7, 8-14 ...), over ``slice_name``'s calls."""
    import numpy as np
    from scipy.stats import norm

    from monitoring.daily import slices_of
    from monitoring.estimates import estimate_figures, requests_heard
    from monitoring.watch import load_calls

    calls = [c for c in load_calls(store) if c.call_id in truth and slice_name in slices_of(c)]
    first = min(date.fromisoformat(t["date"]) for t in truth.values())
    weeks: dict[int, list[Any]] = defaultdict(list)
    for call in calls:
        weeks[(date.fromisoformat(call.day) - first).days // 7].append(call)
    covered = 0
    for week, group in sorted(weeks.items()):
        estimate = {f.metric: f for f in estimate_figures(calibration, _day(first, 7 * week + 1), slice_name, group)}
        right, asked = _true_accuracy(group, truth)
        accuracy = estimate.get("est_intent_accuracy")
        if accuracy is None or not asked:
            continue
        truly = right / asked
        inside = accuracy.low is not None and accuracy.low <= truly <= (accuracy.high or 0)
        covered += inside
        # the noise floor: had every turn been right with exactly its calibrated probability, the week's true
        # accuracy would still scatter around the estimate by this much (binomial), whatever the estimator
        p = calibration.intent.calibrate(*requests_heard(group))
        floor = float(np.sqrt(np.sum(p * (1 - p))) / p.size)
        emit(benchmark="monitor", scenario=scenario, figure="weekly_intent_accuracy", slice=slice_name, week=week + 1,
             estimated=accuracy.value, low=accuracy.low, high=accuracy.high, true=round(truly, 4), turns=asked,
             error=round(accuracy.value - truly, 4), covered=inside, flags=list(accuracy.flags),
             noise_sd=round(floor, 4), chance_within_3_points_if_calibrated=round(2 * norm.cdf(0.03 / floor) - 1, 3))
    if weeks:
        emit(benchmark="monitor", scenario=scenario, figure="weekly_intervals_covering_truth", slice=slice_name,
             covered=covered, weeks=len(weeks))


def evaluate(scenario: str, params: Path, streams: Path, elapsed: float, summary: dict[str, Any]) -> None:
    from monitoring.calibration import ESTIMATORS, Calibration

    store = _store(params)
    truth = _truth(streams, scenario)
    days = _stream_days(truth)
    first = min(days)
    emit(benchmark="monitor", scenario=scenario, figure="run", seconds=round(elapsed, 1),
         calls_read=summary["collect"]["monitored"], champion_turns=summary["collect"]["champion_turns"],
         timings=summary["timings_s"])
    alerts = sorted(_alerts(store, days), key=lambda a: (a["day"], a["rule"]))
    emit(benchmark="monitor", scenario=scenario, figure="alerts", count=len(alerts),
         alerts=[(a["day"], a["rule"], a["slice"]) for a in alerts])
    calibrations = [Calibration.from_record(r) for key, r in store.read_monitoring("calibration").items()
                    if key.endswith(f"-e{ESTIMATORS}")]  # fitted by today's estimators
    if calibrations:
        weekly_accuracy(scenario, store, calibrations[0], truth)
    if scenario == "noisy":
        weekly_accuracy(scenario, store, calibrations[0], truth, "channel=gsm-noisy8k") if calibrations else None
        seen = [a for a in alerts if a["slice"] == "channel=gsm-noisy8k"]
        onset = _day(first, ONSET[scenario])
        emit(benchmark="monitor", scenario=scenario, figure="noisy_channel_detection",
             first_alert=seen[0]["day"] if seen else None, rules=sorted({a["rule"] for a in seen}),
             days_after_onset=(date.fromisoformat(seen[0]["day"]) - onset).days if seen else None)
    if scenario == "shift":
        seen = [a for a in alerts if a["metric"] == "intent_mix_shift"]
        onset = _day(first, ONSET[scenario])
        emit(benchmark="monitor", scenario=scenario, figure="intent_shift_detection",
             first_alert=seen[0]["day"] if seen else None,
             days_after_onset=(date.fromisoformat(seen[0]["day"]) - onset).days if seen else None)
    if scenario == "outage":
        onset = _day(first, ONSET[scenario])
        for metric in ("callback_24h_rate", "false_containment_24h_rate", "false_containment_rate"):
            seen = [a for a in alerts if a["metric"] == metric and date.fromisoformat(a["day"]) >= onset]
            emit(benchmark="monitor", scenario=scenario, figure=f"outage_{metric}_alert",
                 first_alert=seen[0]["day"] if seen else None,
                 days_after_onset=(date.fromisoformat(seen[0]["day"]) - onset).days if seen else None)
        outage_direction(store, truth, onset)


def outage_direction(store: Any, truth: dict[str, dict[str, Any]], onset: date) -> None:
    """Sentiment at the end and handoff completeness on the outage days against the week before, monitor and truth."""
    from monitoring.watch import load_figures

    figures = [f for f in load_figures(store) if f.slice == "all"]
    before = {onset - timedelta(days=i) for i in range(1, 8)}
    during = {onset + timedelta(days=i) for i in range(3)}
    for metric in ("sentiment_end", "sentiment_change", "handoff_complete_rate", "escalation_rate"):
        mean = {name: statistics.fmean(f.value for f in figures if f.metric == metric and f.day in days)
                for name, days in (("before", before), ("during", during))}
        emit(benchmark="monitor", scenario="outage", figure=f"outage_{metric}", before=round(mean["before"], 4),
             during=round(mean["during"], 4))
    for name, days in (("before", before), ("during", during)):
        calls = [t for t in truth.values() if date.fromisoformat(t["date"]) in days]
        escalated = [t for t in calls if t["escalated"]]
        emit(benchmark="monitor", scenario="outage", figure=f"truth_{name}", calls=len(calls),
             resolved=round(sum(t["resolved"] for t in calls) / len(calls), 4),
             handoff_complete=round(sum(t["handoff"]["complete"] for t in escalated) / max(len(escalated), 1), 4))


def false_alarms(params: Path, streams: Path) -> None:
    """Alarms per 28 days over 200 months replayed from the stable stream's days (resampled by day)."""
    from core.settings import load_settings
    from monitoring.change import false_alarm_rate
    from monitoring.rules import load_rules
    from monitoring.watch import load_figures

    days = _stream_days(_truth(streams, "stable"))
    settings = load_settings(params)
    skip = min(days) + timedelta(days=settings.monitor.repeat_window_days)  # the days repeats cannot see yet
    figures = [f for f in load_figures(_store(params)) if f.day in days and f.day >= skip]
    rate = false_alarm_rate(load_rules(settings.monitor.rules_file or None), figures, months=200, seed=0,
                            reference_days=14)
    emit(benchmark="monitor", scenario="stable", figure="false_alarms_per_28_days", months=200, rate=round(rate, 4),
         days=len({f.day for f in figures}))


def one_day(template: Path, streams: Path, work: Path) -> None:
    """Monitoring one day of 40 calls without bot logs: ingest, redaction, the champion, figures, alerts.

    The champion's calibration is made first (once per champion, kept): the figure is a daily run's.
    """
    calls = work / "one-day-calls"
    shutil.rmtree(calls, ignore_errors=True)
    (calls / "audio").mkdir(parents=True)
    params = _copy_project(template, work / "one-day", calls, {"reference_days": 14})
    _run(params)  # an empty call store: calibrates the champion
    truth = _truth(streams, "stable")
    first = min(t["date"] for t in truth.values())
    for call_id, t in truth.items():
        if t["date"] == first:
            shutil.copy(streams / "stable/calls" / f"{call_id}.json", calls)
            shutil.copy(streams / "stable/calls/audio" / f"{call_id}.wav", calls / "audio")
    summary, elapsed = _run(params)
    emit(benchmark="monitor", figure="one_day_seconds", calls=summary["collect"]["monitored"],
         seconds=round(elapsed, 1), timings=summary["timings_s"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--template", type=Path, required=True, help="a trained project: params.yaml + its state")
    parser.add_argument("--streams", type=Path, required=True, help="<streams>/<scenario>/{calls,truth}")
    parser.add_argument("--work", type=Path, required=True, help="scratch folder for the projects")
    parser.add_argument("--scenarios", nargs="+", default=["stable", "noisy", "outage", "shift"])
    parser.add_argument("--one-day", action="store_true", help="also time one day of 40 calls")
    parser.add_argument("--reuse", action="store_true",
                        help="monitor the projects already under --work again (after a change to the estimators or "
                             "rules: the calls stay collected, calibration and figures are redone)")
    args = parser.parse_args()
    from core.runtime import prepare

    args.work.mkdir(parents=True, exist_ok=True)
    prepare(args.work / "tools")
    base = args.work / "stable"
    for scenario in args.scenarios:
        source = args.template if scenario == "stable" else base
        params = args.work / scenario / "params.yaml"
        if not (args.reuse and params.exists()):
            params = _copy_project(source, args.work / scenario if scenario != "stable" else base,
                                   args.streams / scenario / "calls", {"reference_days": 14})
        summary, elapsed = _run(params)
        evaluate(scenario, params, args.streams, elapsed, summary)
        if scenario == "stable":
            false_alarms(params, args.streams)
    if args.one_day:
        one_day(args.template, args.streams, args.work)


if __name__ == "__main__":
    main()
