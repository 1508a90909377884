"""``voiceloop qa sample``: the week's review sample, drawn from what the monitor knows about each call.

The monitor's per-call records give each call's risk signals (monitoring/signals.py) and its
slices; its alerts say which slices need eyes. QA may not import monitoring (they are siblings), so
this flow joins them: it turns monitoring records into :class:`qa.sampling.CallRisk`, fixes the
risk thresholds from the week before, and keeps the draw in the labels zone. The frame is the
week's calls with training consent and a redacted copy (calls without consent are kept only as
numbers: nobody can review them), so the week's estimates speak for those calls.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from core.settings import Settings
from governance.session import open_store
from governance.store import GovernedStore
from monitoring.daily import ALL, RepeatFacts, repeat_facts, slices_of
from monitoring.signals import CallSignals
from qa.labels_zone import SAMPLE_KIND
from qa.sampling import CallRisk, SamplingDesign, derive_thresholds
from qa.weekly_sample import WeeklySample, draw_week
from qa.weeks import parse_week, previous_week, week_of

PURPOSE = "labelling"


@dataclass(frozen=True)
class SampleSummary:
    week: str
    frame: int
    selected: int
    blind: int
    double: int
    alerted: int
    expected_size: float
    alerted_slices: tuple[str, ...]
    existing: bool  # the week had been drawn before: this is that draw

    @classmethod
    def of(cls, sample: WeeklySample, existing: bool) -> SampleSummary:
        calls = sample.calls
        return cls(sample.week, sample.frame, len(calls), sum(c.blind for c in calls), sum(c.double for c in calls),
                   sum(c.alerted for c in calls), round(sample.expected_size, 2), sample.alerted_slices, existing)


def call_risk(signals: CallSignals, repeated: bool | None) -> CallRisk:
    """What the sampler needs of a monitored call: its slices and risk signals (unknown ones stay None)."""
    confidences = [t.confidence for t in signals.turns if t.confidence is not None]
    logprobs = [t.avg_logprob for t in signals.turns if t.avg_logprob is not None]
    return CallRisk(call_id=signals.call_id, slices=tuple(slices_of(signals)),
                    intent_confidence=confidences[0] if confidences else None,
                    asr_logprob=sum(logprobs) / len(logprobs) if logprobs else None,
                    escalated=signals.escalated, repeated=repeated, sentiment_end=signals.sentiment_end)


def _signals_between(store: GovernedStore, first: datetime, last: datetime) -> list[CallSignals]:
    """Per-call monitoring records of calls started in [first, last) (found by start time, then read)."""
    wanted = [cid for cid, started in store.monitored_call_starts().items()
              if first <= datetime.fromisoformat(started) < last]
    records = store.read_monitoring("calls", wanted) if wanted else {}
    return [CallSignals.from_record(r) for r in records.values()]


def alerted_slices(store: GovernedStore, week: str) -> list[str]:
    """Slices (not ``all``) with an alert episode alive in the week or the week before."""
    monday, sunday = parse_week(week)
    since = (monday - timedelta(days=7)).isoformat()
    alerts = store.read_monitoring("alerts") if store.monitoring_keys("alerts") else {}
    return sorted({a["slice"] for a in alerts.values()
                   if a["slice"] != ALL and a.get("last_day", a["day"]) >= since and a["day"] <= sunday.isoformat()})


def design_of(settings: Settings, budget: float | None) -> SamplingDesign:
    config = settings.qa.sampling
    return SamplingDesign(budget=budget or config.budget, random_share=config.random_share,
                          alerted_cap_share=config.alerted_cap_share, double_review_share=config.double_review_share,
                          low_quantile=config.low_quantile)


def stored_sample(store: GovernedStore, week: str) -> WeeklySample:
    """The week's drawn sample; LookupError (naming the command that draws it) when there is none."""
    kept = store.read_labels(SAMPLE_KIND, [week]) if week in store.label_keys(SAMPLE_KIND) else {}
    if week not in kept:
        raise LookupError(f"{week} has no QA sample: draw it first with `voiceloop qa sample --week {week}`")
    return WeeklySample.from_record(kept[week])


def sample_week(settings: Settings, role: str, week: str, budget: float | None = None,
                now: datetime | None = None) -> SampleSummary:
    """Draw ``week``'s review sample once: probabilities are fixed before the draw, so a week drawn before is
    returned as it was, never drawn again."""
    store = open_store(settings, role, PURPOSE)
    if week in store.label_keys(SAMPLE_KIND):
        return SampleSummary.of(stored_sample(store, week), existing=True)
    monday, sunday = parse_week(week)
    start = datetime.combine(monday, datetime.min.time(), UTC)
    end = start + timedelta(days=7)
    window = timedelta(days=settings.monitor.repeat_window_days)
    signals = _signals_between(store, start - timedelta(days=7), end + window)
    repeats = repeat_facts(signals, settings.monitor.callback_hours, settings.monitor.repeat_window_days)
    reviewable = store.redacted_call_ids()
    this_week = [s for s in signals if week_of(s.start) == week and s.consent_training and s.call_id in reviewable]
    before = [s for s in signals if week_of(s.start) == previous_week(week)]
    if not this_week:
        raise LookupError(f"no reviewable calls in {week} ({monday} to {sunday}): run `voiceloop monitor` over "
                          "that week first (the sample is drawn from the monitor's per-call records)")
    design = design_of(settings, budget)
    thresholds = derive_thresholds([call_risk(s, repeats[s.call_id].repeated) for s in before], design)
    risks = [call_risk(s, _repeated(repeats[s.call_id])) for s in this_week]
    sample = draw_week(week, risks, {s.call_id: s.caller_ref for s in this_week}, thresholds, design,
                       alerted_slices(store, week), settings.qa.sampling.seed, now)
    store.write_labels(SAMPLE_KIND, {week: sample.to_record()})
    summary = SampleSummary.of(sample, existing=False)
    store.audit.append(store.actor, "qa.sample", zone="labels", call_ids=sample.call_ids,
                       detail=_audit_detail(summary))
    return summary


def _repeated(facts: RepeatFacts) -> bool | None:
    """A repeat seen is a repeat; none seen while the window is still open is unknown, not "no repeat"."""
    return True if facts.repeated else (False if facts.repeat_final else None)


def _audit_detail(summary: SampleSummary) -> dict[str, Any]:
    return {"week": summary.week, "frame": summary.frame, "selected": summary.selected, "blind": summary.blind,
            "double": summary.double, "alerted_slices": list(summary.alerted_slices)}
