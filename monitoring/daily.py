"""Per-call signals -> the day's figures, overall and per slice: the call metrics that matter, and drift inputs.

A call belongs to the day it started (UTC). Repeat calls look forward from each call: the same caller
(by pseudonym) again within ``callback_hours`` (the early signal) or ``repeat_window_days``; a figure
whose window reaches past the newest call the monitor has seen is marked provisional, since later
calls can still raise it. Label-free accuracy estimates are added by ``monitoring.estimates``.
"""

from __future__ import annotations

import bisect
import math
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta

import numpy as np

from monitoring.figures import ALL, SLICE_KINDS, DailyFigure, slice_key
from monitoring.signals import CallSignals


@dataclass(frozen=True)
class RepeatFacts:
    """Whether a call's caller called again, within the early window and within the full window."""

    callback: bool  # again within callback_hours
    repeated: bool  # again within repeat_window_days
    callback_final: bool  # the callback window has passed (as of the newest call seen)
    repeat_final: bool


def repeat_facts(calls: list[CallSignals], callback_hours: float, window_days: int) -> dict[str, RepeatFacts]:
    """Each call's repeat facts, from the later calls of the same caller (by pseudonym)."""
    if not calls:
        return {}
    as_of = max(c.start for c in calls)
    starts: dict[str, list[datetime]] = defaultdict(list)
    for call in calls:
        starts[call.caller_ref].append(call.start)
    for times in starts.values():
        times.sort()
    early, full = timedelta(hours=callback_hours), timedelta(days=window_days)
    facts: dict[str, RepeatFacts] = {}
    for call in calls:
        times = starts[call.caller_ref]
        later = times[bisect.bisect_right(times, call.start):]
        facts[call.call_id] = RepeatFacts(
            callback=any(t - call.start <= early for t in later),
            repeated=any(t - call.start <= full for t in later),
            callback_final=call.start + early <= as_of,
            repeat_final=call.start + full <= as_of,
        )
    return facts


def slices_of(call: CallSignals) -> list[str]:
    """The slices a call counts in: ``all`` and one value per kind it has."""
    values = {"channel": call.channel, "voice": call.voice, "intent": call.first_intent, "bundle": call.bundle}
    return [ALL] + [slice_key(kind, value) for kind in SLICE_KINDS if (value := values[kind])]


def _rate(day: date, metric: str, slice_name: str, hits: int, n: int, provisional: bool = False) -> DailyFigure:
    p = hits / n
    return DailyFigure(day, metric, slice_name, round(p, 5), n, round(math.sqrt(p * (1 - p) / n), 5),
                       provisional=provisional)


def _mean(day: date, metric: str, slice_name: str, values: list[float]) -> DailyFigure:
    array = np.asarray(values, dtype=float)
    se = float(array.std(ddof=1) / math.sqrt(array.size)) if array.size > 1 else None
    return DailyFigure(day, metric, slice_name, round(float(array.mean()), 5), int(array.size),
                       None if se is None else round(se, 5))


def _percentile(day: date, metric: str, slice_name: str, values: list[float], q: float) -> DailyFigure:
    return DailyFigure(day, metric, slice_name, round(float(np.percentile(values, q)), 1), len(values))


def call_figures(day: date, slice_name: str, calls: list[CallSignals], repeats: dict[str, RepeatFacts],
                 repeat_types_counted: bool = True) -> list[DailyFigure]:
    """The figures of one day's calls in one slice (empty parts give no figure, never a made-up zero)."""
    out: list[DailyFigure] = []
    add = out.append
    latencies = [ms for c in calls for ms in c.latencies_ms]
    if latencies:
        add(_percentile(day, "latency_p50_ms", slice_name, latencies, 50))
        add(_percentile(day, "latency_p95_ms", slice_name, latencies, 95))
    decided = [c for c in calls if c.outcome]
    if decided:
        add(_rate(day, "containment_rate", slice_name, sum(c.contained for c in decided), len(decided)))
        add(_rate(day, "escalation_rate", slice_name, sum(c.escalated for c in decided), len(decided)))
    facts = [repeats[c.call_id] for c in calls]
    add(_rate(day, "callback_24h_rate", slice_name, sum(f.callback for f in facts), len(calls),
              provisional=not all(f.callback_final for f in facts)))
    add(_rate(day, "repeat_7d_rate", slice_name, sum(f.repeated for f in facts), len(calls),
              provisional=not all(f.repeat_final for f in facts)))
    if decided:
        final = all(repeats[c.call_id].repeat_final for c in decided)
        resolved = sum(c.contained and not repeats[c.call_id].repeated for c in decided)
        add(_rate(day, "resolution_rate", slice_name, resolved, len(decided), provisional=not final))
        contained = [c for c in decided if c.contained]
        if contained:
            falsely = sum(repeats[c.call_id].repeated for c in contained)
            add(_rate(day, "false_containment_rate", slice_name, falsely, len(contained), provisional=not final))
            early = sum(repeats[c.call_id].callback for c in contained)
            add(_rate(day, "false_containment_24h_rate", slice_name, early, len(contained),
                      provisional=not all(repeats[c.call_id].callback_final for c in contained)))
    for metric, values in (
        ("sentiment_start", [c.sentiment_start for c in calls]),
        ("sentiment_end", [c.sentiment_end for c in calls]),
        ("sentiment_change", [c.sentiment_end - c.sentiment_start for c in calls
                              if c.sentiment_end is not None and c.sentiment_start is not None]),
        ("duration_s_mean", [c.duration_s for c in calls]),
        ("snr_db_mean", [c.snr_est_db for c in calls]),
        ("intent_confidence_mean", [t.confidence for c in calls for t in c.turns]),
        ("asr_logprob_mean", [t.avg_logprob for c in calls for t in c.turns]),
        ("no_speech_prob_mean", [t.no_speech_prob for c in calls for t in c.turns]),
        ("audio_dbfs_mean", [t.dbfs for c in calls for t in c.turns]),
    ):
        present = [float(v) for v in values if v is not None]
        if present:
            add(_mean(day, metric, slice_name, present))
    escalated = [c for c in calls if c.escalated]
    if escalated:
        add(_rate(day, "handoff_complete_rate", slice_name, sum(c.handoff_complete for c in escalated), len(escalated)))
        if repeat_types_counted:
            add(_rate(day, "handoff_repeat_rate", slice_name, sum(bool(c.handoff_repeated_types) for c in escalated),
                      len(escalated)))
    return out


def by_day_and_slice(calls: Iterable[CallSignals]) -> dict[tuple[date, str], list[CallSignals]]:
    groups: dict[tuple[date, str], list[CallSignals]] = defaultdict(list)
    for call in calls:
        for slice_name in slices_of(call):
            groups[(date.fromisoformat(call.day), slice_name)].append(call)
    return groups


Extra = Callable[[date, str, list[CallSignals]], list[DailyFigure]]


def daily_figures(calls: list[CallSignals], callback_hours: float, window_days: int,
                  extra: Extra | None = None) -> list[DailyFigure]:
    """Every figure of every day and slice the calls cover (``extra`` adds the label-free estimates)."""
    repeats = repeat_facts(calls, callback_hours, window_days)
    figures: list[DailyFigure] = []
    for (day, slice_name), group in sorted(by_day_and_slice(calls).items()):
        figures += call_figures(day, slice_name, group, repeats)
        if extra is not None:
            figures += extra(day, slice_name, group)
    return figures


def intent_mix_shift(calls: list[CallSignals], reference_days: set[date]) -> list[DailyFigure]:
    """Per day, how far the day's mix of opening-request intents is from the reference's: Pearson's chi-square
    over its degrees of freedom (about 1 when the mix differs only by chance).

    Expected counts come from the reference mix smoothed by half a call per intent (over every intent
    seen on any day), so an intent the reference never heard weighs heavily but finitely. A reference
    day is compared with the other reference days, so it is judged like any other day. Chi-square
    rather than the total variation distance: with 40 calls over 77 intents a day's distance is mostly
    sampling noise (0.53 on a stable stream, day-to-day SD 0.034), and half the asks moving to three
    rare intents moved it 0-4 SDs a day, and the chi-square 2-20 (benchmarks/README.md, "Monitoring").
    """
    mixes: dict[date, Counter[str]] = defaultdict(Counter)
    for call in calls:
        if call.first_intent:
            mixes[date.fromisoformat(call.day)][call.first_intent] += 1
    intents = set().union(*mixes.values()) if mixes else set()
    pooled = sum((mixes[d] for d in reference_days if d in mixes), Counter())
    out = []
    for day, mix in sorted(mixes.items()):
        reference = pooled - mix if day in reference_days else pooled
        total, ref_total = sum(mix.values()), sum(reference.values())
        if not total or not ref_total or len(intents) < 2:
            continue
        share = {i: (reference[i] + 0.5) / (ref_total + 0.5 * len(intents)) for i in intents}
        chi2 = sum((mix[i] - total * share[i]) ** 2 / (total * share[i]) for i in intents)
        out.append(DailyFigure(day, "intent_mix_shift", ALL, round(chi2 / (len(intents) - 1), 5), total))
    return out


def new_slices(figures: list[DailyFigure], reference_days: set[date]) -> list[DailyFigure]:
    """A ``new_slice`` figure (1.0) on the first day each slice value appears that the reference never saw."""
    seen_in_reference = {f.slice for f in figures if f.day in reference_days}
    first_day: dict[str, DailyFigure] = {}
    for figure in sorted(figures, key=lambda f: f.day):
        if figure.slice == ALL or figure.slice in seen_in_reference or figure.slice.startswith("intent="):
            continue
        if reference_days and figure.day <= max(reference_days):
            continue
        first_day.setdefault(figure.slice, figure)
    return [DailyFigure(f.day, "new_slice", f.slice, 1.0, f.n, flags=("new-slice",)) for f in first_day.values()]
