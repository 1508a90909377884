"""Judge the days' figures by the alert rules, and make each new alarm an alert a person will see.

An alert gets an id (a hash of its rule, slice and first day: the same alarm found by a later run
is the same alert), an owner from the policy (the slice's own, else the component's), an audit
entry, a record in the monitoring zone that keeps the calls behind it (``voiceloop alerts show``
reads them, checked and audited), and, when Alertmanager is reachable, a notification routed by
the owner label. The alert itself carries no call id and no text.

An alarm on the same rule and slice within ``EPISODE_DAYS`` of an earlier alert continues that
alert's episode instead of opening a new one: a metric that stays bad is one alert, not one a day.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any

from governance.store import GovernedStore
from monitoring.change import ChangeEvent, evaluate_all
from monitoring.daily import slices_of
from monitoring.figures import ALL, DailyFigure
from monitoring.rules import load_rules
from monitoring.signals import CallSignals

if TYPE_CHECKING:
    from core.settings import Settings
    from monitoring.watch import Window

EPISODE_DAYS = 3


@dataclass
class AlertRun:
    """What one judging found: new alerts (id, rule, slice, day, owner ... no call ids), the earlier alerts whose
    episode went on (posted again, so Alertmanager keeps them firing while the metric stays bad), and notes."""

    raised: list[dict[str, Any]] = field(default_factory=list)
    continued: list[dict[str, Any]] = field(default_factory=list)
    tests: int = 0
    notes: list[str] = field(default_factory=list)
    delivered_to: str | None = None
    delivery_error: str | None = None

    @property
    def continuing(self) -> int:
        return len(self.continued)

    @property
    def to_deliver(self) -> list[dict[str, Any]]:
        return self.raised + self.continued


def alert_id(rule: str, slice_name: str, day: date) -> str:
    digest = hashlib.blake2b(f"{rule}|{slice_name}|{day.isoformat()}".encode(), digest_size=5).hexdigest()
    return f"al-{day.strftime('%Y%m%d')}-{digest}"


def _judged(figures: list[DailyFigure], window: Window) -> tuple[list[DailyFigure], list[DailyFigure]]:
    """(monitored, reference) figures: each metric's days after its reference window, and the reference's own.

    A slice the reference never saw (a new channel) is judged against the whole reference population: the
    ``all`` slice's reference figures stand in for its own.
    """
    references = {metric: window.reference_for(metric) for metric in {f.metric for f in figures}}
    ends = {metric: max(days) if days else window.last for metric, days in references.items()}
    reference = [f for f in figures if f.day in references[f.metric]]
    monitored = [f for f in figures if f.day > ends[f.metric] or (f.metric == "new_slice")]
    seen = {(f.metric, f.slice) for f in reference}
    population = [f for f in reference if f.slice == ALL]
    for metric, slice_name in {(f.metric, f.slice) for f in monitored} - seen:
        reference += [replace(f, slice=slice_name) for f in population if f.metric == metric]
    return monitored, reference


def _calls_behind(calls: list[CallSignals], event: ChangeEvent) -> list[str]:
    return sorted(c.call_id for c in calls if c.day == event.day.isoformat() and event.slice in slices_of(c))


def _episode_of(episodes: list[dict[str, Any]], day: date) -> dict[str, Any] | None:
    """The alert whose episode ``day`` belongs to: from its first day to ``EPISODE_DAYS`` after its last.

    Days can arrive out of order (a backfill, late calls), so an alarm before an episode's first day
    starts an alert of its own rather than vanishing into a later one.
    """
    for record in episodes:
        first, last = date.fromisoformat(record["day"]), date.fromisoformat(record["last_day"])
        if first <= day <= last + timedelta(days=EPISODE_DAYS):
            return record
    return None


def _public(record: dict[str, Any]) -> dict[str, Any]:
    """An alert as it leaves the store: everything but the calls behind it."""
    return {k: v for k, v in record.items() if k != "call_ids"}


def raise_alerts(settings: Settings, store: GovernedStore, figures: list[DailyFigure], window: Window | None,
                 calls: list[CallSignals], now: datetime | None = None) -> AlertRun:
    """Judge every rule on the figures; record, audit and deliver the new alerts (``store`` acts for monitoring)."""
    run = AlertRun()
    if window is None:
        return run
    rules = load_rules(settings.monitor.rules_file or None)
    monitored, reference = _judged(figures, window)
    evaluation = evaluate_all(rules, monitored, reference)
    run.tests, run.notes = evaluation.tests, list(evaluation.notes)
    known = store.read_monitoring("alerts")
    episodes: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for record in known.values():
        episodes.setdefault((record["rule"], record["slice"]), []).append(record)
    records: dict[str, dict[str, Any]] = {}
    now = now or datetime.now(UTC)
    for event in evaluation.events:
        key = (event.rule, event.slice)
        episode = _episode_of(episodes.get(key, []), event.day)
        if episode is not None:
            if event.day > date.fromisoformat(episode["last_day"]):
                episode["last_day"] = event.day.isoformat()
                episode["call_ids"] = sorted(set(episode["call_ids"]) | set(_calls_behind(calls, event)))
                records[episode["alert_id"]] = episode
            continue
        identifier = alert_id(event.rule, event.slice, event.day)
        if identifier in known:
            continue
        owner = store.policy.owner_of(event.component, event.slice)
        record = {"alert_id": identifier, **asdict(event), "day": event.day.isoformat(),
                  "last_day": event.day.isoformat(), "owner": owner.team if owner else "unowned",
                  "raised_at": now.isoformat(), "call_ids": _calls_behind(calls, event)}
        records[identifier] = record
        episodes.setdefault(key, []).append(record)
        run.raised.append(_public(record))
    raised = {alert["alert_id"] for alert in run.raised}
    run.continued = [_public(r) for i, r in records.items() if i not in raised]
    if records:
        store.write_monitoring("alerts", records)
    for alert in run.raised:
        store.audit.append(store.actor, "monitoring.alert", zone="monitoring",
                           detail={k: alert[k] for k in ("alert_id", "rule", "metric", "slice", "day", "severity",
                                                         "owner", "value", "reference_mean")})
    return run
