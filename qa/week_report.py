"""The week's reviewed figures per slice beside the monitor's label-free estimates, so a drifting monitor is caught.

:func:`build_report` turns one week's :class:`~qa.weekly_sample.WeeklySample`, the reviews of its
calls (the labels zone's ``reviews/<call_id>`` records, flows/qa_review.py) and the monitor's figures
for the week (plain dicts, ``DailyFigure.to_dict`` rows: qa does not import monitoring) into a
:class:`WeekReport`. Every figure is a design-based Hájek ratio (qa.design_estimates), each reviewed
call weighted 1/p by its inclusion probability, estimated per slice (``all`` and every slice a sampled
call belongs to) as a domain:

- **intent accuracy** of the champion over the turns whose reviewed intent is a request (anything but
  ``no_request``): y = turns the champion read the same intent (a reviewed ``out_of_scope`` is wrong
  for any in-scope intent; a champion that read no request, None, is wrong), x = such turns;
- **WER** of the champion's transcript against the reviewed one: y = word errors, x = reference words,
  over the turns with a champion transcript. The project's WER (training/asr/metrics.py), with
  ``<TYPE>`` placeholders scored as words: the same placeholder on both sides matches;
- **resolved rate**: y = 1 when the outcome is "yes", x = 1 for a "yes" or "no" (not "cannot tell");
- **intent accuracy from the blind calls only**: the blind floor is an equal-probability sample of
  the whole frame (probability ``blind_probability`` for every call), reviewed without the champion's
  answers, so no anchoring; far from the pre-filled figure, reviewers accept wrong answers.

**Non-response.** A sampled call not reviewed yet, or whose review was quarantined, has no review:
the estimates are over the reviewed calls only, with their design weights. That treats the missing
ones as missing at random within the design (a response that depends on the calls' y, such as hard
calls reviewed last, biases them). Each slice shows its sampled and reviewed calls, and the report
counts both.

**Reviewer agreement** over the double-reviewed calls (the first two answers): Cohen's kappa on the
per-turn intents, raw agreement, and the WER between the two reviewers' transcripts (the first as
reference); with the count of adjudicated calls.

**The monitor.** Its ``est_intent_accuracy`` and ``est_wer`` figures of the week's days, per slice,
combined as an n-weighted mean of the daily values, lows and highs. The reviewed value lies inside
that averaged interval or not ("covered"); averaging daily intervals gives a wider interval than
the week's pooled estimate would have, so "not covered" is the stronger signal. The monitor's intent
accuracy is over each call's opening request and its WER ignores placeholders: not quite the
reviewed figures' definitions, which the report notes.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from datetime import date
from typing import Any

from core.corpus import NO_REQUEST
from core.redacted_text import PLACEHOLDER
from qa.design_estimates import DesignEstimate, domain_estimate
from qa.weekly_sample import SampledCall, WeeklySample
from qa.weeks import parse_week
from training.asr.metrics import UtteranceErrors, utterance_errors

ALL = "all"  # the slice of every call (the monitor spells it the same)
ACCURACY, WER, RESOLVED, BLIND_ACCURACY = "intent_accuracy", "wer", "resolved_rate", "intent_accuracy_blind"
#: The monitor's label-free figure each reviewed metric is compared with (resolved has none).
MONITOR_METRICS: dict[str, str] = {ACCURACY: "est_intent_accuracy", BLIND_ACCURACY: "est_intent_accuracy",
                                   WER: "est_wer"}
TITLES: dict[str, str] = {ACCURACY: "Intent accuracy (champion)", WER: "Word error rate (champion)",
                          RESOLVED: "Resolved rate", BLIND_ACCURACY: "Intent accuracy, blind calls only"}
UNITS: dict[str, str] = {ACCURACY: "request turns", WER: "reference words", RESOLVED: "calls answered yes/no",
                         BLIND_ACCURACY: "request turns"}
RESOLVED_ANSWERS = ("yes", "no")


# -- per call ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Ratio:
    """One call's numerator and denominator of a figure (correct turns / request turns, ...)."""

    y: float
    x: float


@dataclass(frozen=True)
class CallScores:
    accuracy: Ratio
    wer: Ratio
    resolved: Ratio


def scoring_text(text: str) -> str:
    """``text`` with each ``<TYPE>`` placeholder as one word that survives normalisation (``<PERSON>`` -> piiperson)."""
    return PLACEHOLDER.sub(lambda m: " pii" + "".join(ch for ch in m.group().lower() if ch.isalpha()) + " ", text)


def word_errors(references: Sequence[str], hypotheses: Sequence[str]) -> list[UtteranceErrors]:
    """The project's per-utterance word errors, with placeholders scored as words."""
    return utterance_errors([scoring_text(r) for r in references], [scoring_text(h) for h in hypotheses])


def _totals(errors: Sequence[UtteranceErrors]) -> Ratio:
    return Ratio(float(sum(e.errors for e in errors)), float(sum(e.ref_words for e in errors)))


def _accuracy(turns: Sequence[Mapping[str, Any]]) -> Ratio:
    requests = [t for t in turns if t.get("intent") not in (None, NO_REQUEST)]
    return Ratio(float(sum(t.get("champion_intent") == t["intent"] for t in requests)), float(len(requests)))


def _wer(turns: Sequence[Mapping[str, Any]]) -> Ratio:
    heard = [t for t in turns if t.get("champion_transcript") is not None and t.get("transcript") is not None]
    return _totals(word_errors([t["transcript"] for t in heard], [t["champion_transcript"] for t in heard]))


def _resolved(outcome: str | None) -> Ratio:
    return Ratio(float(outcome == "yes"), float(outcome in RESOLVED_ANSWERS))


def call_scores(review: Mapping[str, Any]) -> CallScores:
    """One reviewed call's y and x for intent accuracy, WER and the resolved rate."""
    turns = review.get("turns", [])
    return CallScores(_accuracy(turns), _wer(turns), _resolved(review.get("resolved")))


# -- reviewer agreement ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Kappa:
    """Cohen's kappa of two raters over ``n`` items (None with fewer than 2 items or when neither varies)."""

    value: float | None
    agreement: float | None  # raw share of items both raters labelled alike
    n: int


def cohen_kappa(first: Sequence[str], second: Sequence[str]) -> Kappa:
    """(p_o - p_e) / (1 - p_e): p_o the raw agreement, p_e the agreement the raters' own label shares expect."""
    if len(first) != len(second):
        raise ValueError(f"two raters must label the same items, got {len(first)} and {len(second)} labels")
    n = len(first)
    if n == 0:
        return Kappa(None, None, 0)
    observed = sum(a == b for a, b in zip(first, second, strict=True)) / n
    expected = sum(first.count(label) * second.count(label) for label in set(first) | set(second)) / n**2
    if n < 2 or expected >= 1.0:
        return Kappa(None, observed, n)
    return Kappa((observed - expected) / (1.0 - expected), observed, n)


@dataclass(frozen=True)
class Agreement:
    """How far two reviewers of the same call agree: reviewer noise, the floor under any measured error."""

    calls: int  # double-reviewed calls with two answers
    turns: int  # turn pairs compared
    kappa: float | None
    raw_agreement: float | None
    reviewer_wer: float | None  # second reviewer's transcripts against the first's
    reference_words: int
    adjudicated: int  # calls a third reviewer settled


def _pairs(reviews: Iterable[Mapping[str, Any]]) -> list[tuple[Mapping[str, Any], Mapping[str, Any]]]:
    return [(r["answers"][0], r["answers"][1]) for r in reviews if r.get("double") and len(r.get("answers", [])) >= 2]


def reviewer_agreement(reviews: Iterable[Mapping[str, Any]]) -> Agreement:
    """Agreement of the first two answers of every double-reviewed call, pooled over the calls' turns."""
    reviews = list(reviews)
    pairs = _pairs(reviews)
    # One task's answers cover the same turns; zip without strict pairs what both answered should one fall short.
    intents = [(a, b) for first, second in pairs for a, b in zip(first["intents"], second["intents"], strict=False)]
    texts = [(a, b) for first, second in pairs
             for a, b in zip(first["transcripts"], second["transcripts"], strict=False)]
    kappa = cohen_kappa([str(a) for a, _ in intents], [str(b) for _, b in intents])
    words = _totals(word_errors([a for a, _ in texts], [b for _, b in texts]))
    return Agreement(len(pairs), kappa.n, kappa.value, kappa.agreement,
                     words.y / words.x if words.x else None, int(words.x),
                     sum(bool(r.get("adjudicated")) for r in reviews if r.get("double")))


# -- the monitor's week -------------------------------------------------------------------------------
@dataclass(frozen=True)
class MonitorWeek:
    """A monitor figure over the week's days: n-weighted means of the daily values and interval ends."""

    value: float
    low: float | None  # None when a day had no interval
    high: float | None
    n: int  # turns over the days
    days: int
    flags: tuple[str, ...]


def _weighted(values: Sequence[float], weights: Sequence[float]) -> float:
    total = sum(weights)
    return sum(v * w for v, w in zip(values, weights, strict=True)) / total if total > 0 else sum(values) / len(values)


def _combine(rows: Sequence[Mapping[str, Any]]) -> MonitorWeek:
    weights = [float(max(int(r.get("n") or 0), 0)) for r in rows]
    bounded = all(r.get("low") is not None and r.get("high") is not None for r in rows)
    return MonitorWeek(_weighted([float(r["value"]) for r in rows], weights),
                       _weighted([float(r["low"]) for r in rows], weights) if bounded else None,
                       _weighted([float(r["high"]) for r in rows], weights) if bounded else None,
                       int(sum(weights)), len({r["day"] for r in rows}),
                       tuple(dict.fromkeys(str(f) for r in rows for f in r.get("flags", ()))))


def monitor_week(figures: Iterable[Mapping[str, Any]], week: str) -> dict[tuple[str, str], MonitorWeek]:
    """The monitor's label-free estimates of ``week`` by (metric, slice), from its daily figure dicts."""
    monday, sunday = parse_week(week)
    wanted = set(MONITOR_METRICS.values())
    groups: dict[tuple[str, str], list[Mapping[str, Any]]] = {}
    for row in figures:
        if row.get("metric") in wanted and monday <= date.fromisoformat(str(row["day"])[:10]) <= sunday \
                and math.isfinite(float(row["value"])):
            groups.setdefault((str(row["metric"]), str(row["slice"])), []).append(row)
    return {key: _combine(rows) for key, rows in groups.items()}


# -- per slice ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SliceRow:
    """One slice of one metric: the reviewed estimate, how many calls it rests on, and the monitor's beside it."""

    slice: str
    estimate: DesignEstimate
    sampled: int  # sampled calls in the slice
    reviewed: int  # of them, reviewed (the estimate's calls)
    units: float  # the x's total over the reviewed calls (turns, reference words, calls)
    monitor: MonitorWeek | None
    difference: float | None  # reviewed - monitor
    covered: bool | None  # the reviewed value inside the monitor's averaged interval


@dataclass(frozen=True)
class MetricTable:
    metric: str
    title: str
    unit: str
    monitor_metric: str | None
    rows: tuple[SliceRow, ...]

    def row(self, slice_name: str) -> SliceRow:
        return next(r for r in self.rows if r.slice == slice_name)


def _slices_of(call: SampledCall) -> set[str]:
    return {ALL, *call.slices}


def _compare(value: float, monitor: MonitorWeek | None) -> tuple[float | None, bool | None]:
    if monitor is None or not math.isfinite(value):
        return None, None
    covered = None if monitor.low is None or monitor.high is None else monitor.low <= value <= monitor.high
    return value - monitor.value, covered


@dataclass(frozen=True)
class _Responses:
    """The calls a metric is estimated from: reviewed calls, their ratios and probabilities, among the sampled."""

    sampled: Sequence[SampledCall]
    reviewed: Sequence[SampledCall]
    ratios: Sequence[Ratio]
    probabilities: Sequence[float]


def _non_negative(estimate: DesignEstimate) -> DesignEstimate:
    """A ratio of counts (word errors over words) is never below 0: its interval's low end is cut there."""
    return replace(estimate, low=0.0) if estimate.low < 0 else estimate


def _row(name: str, data: _Responses, proportion: bool, monitor: MonitorWeek | None, level: float) -> SliceRow:
    member = [name in _slices_of(c) for c in data.reviewed]
    estimate = _non_negative(domain_estimate([r.y for r in data.ratios], [r.x for r in data.ratios],
                                             data.probabilities, member, proportion=proportion, level=level))
    difference, covered = _compare(estimate.value, monitor)
    return SliceRow(name, estimate, sum(name in _slices_of(c) for c in data.sampled), sum(member),
                    sum(r.x for r, m in zip(data.ratios, member, strict=True) if m), monitor, difference, covered)


def _metric_table(metric: str, data: _Responses, slices: Sequence[str],
                 monitor: Mapping[tuple[str, str], MonitorWeek], level: float = 0.95) -> MetricTable:
    """One metric's rows, a slice each, with the monitor's week beside them where it has the metric."""
    monitor_metric = MONITOR_METRICS.get(metric)
    rows = tuple(_row(name, data, metric != WER, monitor.get((monitor_metric, name)) if monitor_metric else None,
                      level) for name in slices)
    return MetricTable(metric, TITLES[metric], UNITS[metric], monitor_metric, rows)


# -- the week -----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class WeekReport:
    """The week's reviewed figures, reviewer agreement and the monitor comparison (``to_json`` for --json)."""

    week: str
    level: float
    frame: int  # calls of the week that could be drawn
    expected_size: float
    sampled: int
    reviewed: int  # sampled calls with a review (the rest: not reviewed yet, or quarantined)
    blind_sampled: int
    blind_reviewed: int
    blind_probability: float
    monitor_days: int  # days of the week the monitor has label-free estimates for
    metrics: tuple[MetricTable, ...]
    agreement: Agreement
    notes: tuple[str, ...]

    def metric(self, name: str) -> MetricTable:
        return next(m for m in self.metrics if m.metric == name)

    def to_json(self) -> dict[str, Any]:
        """A plain dict for JSON: NaN and infinite numbers (no estimate, an unbounded interval) become None."""
        return _finite(asdict(self))


def _finite(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def slice_names(sample: WeeklySample) -> list[str]:
    """``all`` first, then every slice a sampled call belongs to, sorted."""
    return [ALL, *sorted({name for call in sample.calls for name in call.slices} - {ALL})]


def _notes(sample: WeeklySample, reviewed: int, monitor_days: int) -> tuple[str, ...]:
    missing = len(sample.calls) - reviewed
    notes = [f"{reviewed} of {len(sample.calls)} sampled calls reviewed; {missing} not reviewed yet or quarantined. "
             "The estimates are over the reviewed calls only, each weighted 1/p: the missing ones are treated as "
             "missing at random within the design."]
    if monitor_days:
        notes.append("The monitor's figures are n-weighted means of its daily label-free estimates (values and "
                     "interval ends); its intent accuracy is over each call's opening request and its WER ignores "
                     "placeholders, while the reviewed figures count every request turn and score placeholders "
                     "as words.")
    else:
        notes.append("The monitor has no label-free estimates for this week's days: nothing to compare with.")
    return tuple(notes)


def build_report(sample: WeeklySample, reviews: Mapping[str, Mapping[str, Any]],
                 monitor_figures: Iterable[Mapping[str, Any]] = (), level: float = 0.95) -> WeekReport:
    """The week's report from its sample, the reviews by call id (others ignored) and the monitor's figure dicts."""
    reviewed = [c for c in sample.calls if c.call_id in reviews]
    scores = [call_scores(reviews[c.call_id]) for c in reviewed]
    probabilities = [c.probability for c in reviewed]
    blind = [i for i, c in enumerate(reviewed) if c.blind]
    tables = {
        ACCURACY: _Responses(sample.calls, reviewed, [s.accuracy for s in scores], probabilities),
        WER: _Responses(sample.calls, reviewed, [s.wer for s in scores], probabilities),
        RESOLVED: _Responses(sample.calls, reviewed, [s.resolved for s in scores], probabilities),
        BLIND_ACCURACY: _Responses([c for c in sample.calls if c.blind], [reviewed[i] for i in blind],
                                   [scores[i].accuracy for i in blind], [sample.blind_probability] * len(blind)),
    }
    monitor = monitor_week(monitor_figures, sample.week)
    slices = slice_names(sample)
    monitor_days = max((m.days for m in monitor.values()), default=0)
    return WeekReport(sample.week, level, sample.frame, sample.expected_size, len(sample.calls), len(reviewed),
                      sum(c.blind for c in sample.calls), len(blind), sample.blind_probability, monitor_days,
                      tuple(_metric_table(name, data, slices, monitor, level) for name, data in tables.items()),
                      reviewer_agreement(reviews[c.call_id] for c in reviewed),
                      _notes(sample, len(reviewed), monitor_days))
