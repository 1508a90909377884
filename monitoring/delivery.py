"""Where the monitor's alerts and figures go: Alertmanager and the Pushgateway, local or configured.

``monitor.alertmanager_url`` / ``monitor.pushgateway_url`` name existing ones; empty, the local
instances ``voiceloop alertmanager start`` / ``voiceloop pushgateway start`` run from the project
folder are used when they are running, and otherwise the alerts stay in the store (listed by
``voiceloop alerts``) and no metric is exported: said in the run's summary, never silently.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from governance.policy import Policy
from monitoring.alertmanager import AlertNotice, LocalAlertmanager, Owner, alertmanager_config, post_alerts
from monitoring.figures import ALL, DailyFigure, lower_is_worse
from monitoring.pushgateway import LocalPushgateway, Sample, bounded_slices, push

if TYPE_CHECKING:
    from core.settings import Settings

ESCALATION = "escalation"
UNOWNED = "unowned"
#: How long a posted alert stays active in Alertmanager unless a later run posts it again (daily runs).
ACTIVE_FOR = timedelta(hours=26)


def owners_of(policy: Policy) -> list[Owner]:
    """One Alertmanager receiver per team the policy names (a team owning several components is one receiver)."""
    teams: dict[str, str] = {}
    for owner in policy.owners:
        teams[owner.team] = teams.get(owner.team) or owner.receiver
    teams.setdefault(UNOWNED, "")
    return [Owner(team, team, url) for team, url in sorted(teams.items())]


def local_alertmanager(settings: Settings, policy: Policy) -> LocalAlertmanager:
    escalation = next((o.escalation for o in policy.owners if o.escalation), "")
    config = alertmanager_config(owners_of(policy), escalation_receiver=Owner(ESCALATION, ESCALATION, escalation),
                                 escalate_after_s=settings.monitor.escalate_after_s, repeat_interval_s=4 * 3600,
                                 group_wait_s=30)
    return LocalAlertmanager(settings.root / "alertmanager", settings.monitor.alertmanager_port, config)


def local_pushgateway(settings: Settings) -> LocalPushgateway:
    return LocalPushgateway(settings.root / "pushgateway", settings.monitor.pushgateway_port)


def alertmanager_url(settings: Settings, policy: Policy) -> str | None:
    if settings.monitor.alertmanager_url:
        return settings.monitor.alertmanager_url
    status = local_alertmanager(settings, policy).status()
    return status.url if status.running else None


def pushgateway_url(settings: Settings) -> str | None:
    if settings.monitor.pushgateway_url:
        return settings.monitor.pushgateway_url
    status = local_pushgateway(settings).status()
    return status.url if status.running else None


def notice(alert: dict[str, Any], now: datetime) -> AlertNotice:
    reference = alert.get("reference_mean")
    against = f" (reference {reference:.3g})" if reference is not None else ""
    return AlertNotice(alert_id=alert["alert_id"], alertname=alert["rule"], severity=alert["severity"],
                       owner=alert["owner"], component=alert["component"], metric=alert["metric"],
                       slice=alert["slice"],
                       summary=f"{alert['metric']} on {alert['slice']} was {alert['value']:.3g}{against} on "
                               f"{alert['day']}; `voiceloop alerts show {alert['alert_id']}` lists the calls",
                       starts_at=datetime.fromisoformat(alert["raised_at"]) if alert.get("raised_at") else now,
                       ends_at=now + ACTIVE_FOR)


def deliver(settings: Settings, policy: Policy, alerts: list[dict[str, Any]],
            now: datetime | None = None) -> tuple[str | None, str | None]:
    """Post alerts to Alertmanager (new ones, and continuing ones again: each post keeps an alert firing for
    ``ACTIVE_FOR``); (url it went to or None, the error if it failed)."""
    url = alertmanager_url(settings, policy)
    if url is None or not alerts:
        return url, None
    now = now or datetime.now(UTC)
    try:
        post_alerts(url, [notice(alert, now) for alert in alerts])
    except Exception as error:  # unreachable, refused: the alerts are in the store; the summary says so
        return url, f"{type(error).__name__}: {error}"
    return url, None


def samples(figures: list[DailyFigure], top: int) -> list[Sample]:
    """The newest day's figures as gauges: ``all`` plus the ``top`` worst slices of each metric (bounded labels)."""
    if not figures:
        return []
    newest = max(f.day for f in figures)
    by_metric: dict[str, dict[str, float]] = {}
    for figure in figures:
        if figure.day == newest:
            by_metric.setdefault(figure.metric, {})[figure.slice] = figure.value
    out = []
    for metric, values in sorted(by_metric.items()):
        kept = bounded_slices(values, top, higher_is_worse=not lower_is_worse(metric))
        for slice_name, value in sorted(kept.items()):
            kind, _, name = slice_name.partition("=")
            out.append(Sample(f"voiceloop_monitor_{metric}", {"slice_kind": kind if name else ALL,
                                                              "slice": name or ALL}, value,
                              f"voiceloop monitor: {metric}, newest day"))
    return out


def export_figures(settings: Settings, figures: list[DailyFigure]) -> str:
    """Push the newest day's figures; says where, or why not."""
    url = pushgateway_url(settings)
    if url is None:
        return "not exported: no Pushgateway (set monitor.pushgateway_url or run `voiceloop pushgateway start`)"
    try:
        push(url, "voiceloop-monitor", samples(figures, settings.monitor.top_slices), {"project": settings.root.name})
    except Exception as error:  # unreachable: figures are in the store regardless
        return f"export to {url} failed: {type(error).__name__}: {error}"
    return f"exported to {url}"
