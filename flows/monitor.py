"""The monitor flow: collect new calls -> calibrate the champion -> the days' figures -> alerts -> export.

Wiring only, as the retrain flow: each task calls one step of ``monitoring/``, which owns its checks
and audit entries. Every step is idempotent: a call with a monitoring record is not read again, a
calibration is kept per (champion, golden version), days are recomputed from the per-call records,
and an alert already raised (same rule, slice and first day) is not raised twice.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from prefect import flow, task
from prefect.cache_policies import NO_CACHE
from prefect.runtime import flow_run

from core import progress
from core.compute import ShardMap
from core.runtime import prepare
from core.settings import Settings, load_settings
from flows.fan_out import fan_out
from flows.monitor_summary import MonitorSummary
from governance.session import open_store
from governance.store import GovernedStore
from monitoring.alerting import AlertRun, raise_alerts
from monitoring.calibration import Calibration, calibration_for
from monitoring.champion import Champion, champion_version, load_champion
from monitoring.collect import CollectReport, collect
from monitoring.delivery import deliver, export_figures
from monitoring.figures import DailyFigure
from monitoring.signals import CallSignals
from monitoring.watch import Window, compute_figures, load_calls, write_days


class _Champion:
    """The champion, loaded once per run and only if a step needs it."""

    def __init__(self) -> None:
        self.loaded: Champion | None = None

    def __call__(self, settings: Settings) -> Champion:
        if self.loaded is None:
            self.loaded = load_champion(settings)
        return self.loaded


@task(name="collect-calls", cache_policy=NO_CACHE)
def collect_calls(settings: Settings, store: GovernedStore, champion: _Champion, shards: ShardMap) -> CollectReport:
    def tell(stage: str, done: int, total: int) -> None:
        progress.counter(stage, "calls" if stage != "hear" else "turns")(done, total)

    return collect(settings, store, champion, tell, shards=shards)


@task(name="calibrate", cache_policy=NO_CACHE)
def calibrate(settings: Settings, store: GovernedStore, champion: _Champion, shards: ShardMap) -> Calibration | None:
    return calibration_for(store.as_purpose("monitoring"), champion_version(settings), lambda: champion(settings),
                           settings.monitor.asr_batch, progress.counter("calibrate", "golden turns"), shards)


@task(name="figures", cache_policy=NO_CACHE)
def figures(settings: Settings, store: GovernedStore,
            calibration: Calibration | None) -> tuple[list[DailyFigure], Window | None, list[CallSignals]]:
    watcher = store.as_purpose("monitoring")
    calls = load_calls(watcher)
    computed, window = compute_figures(calls, settings.monitor, calibration)
    write_days(watcher, calls, computed, window)
    return computed, window, calls


@task(name="alerts", cache_policy=NO_CACHE)
def alerts(settings: Settings, store: GovernedStore, computed: list[DailyFigure], window: Window | None,
           calls: list[CallSignals]) -> AlertRun:
    """New alerts recorded and audited, then sent to Alertmanager; with ``monitor.on_alert: retrain`` a new
    ASR or intent alert starts the retrain deployment."""
    run = raise_alerts(settings, store.as_purpose("monitoring"), computed, window, calls)
    run.delivered_to, run.delivery_error = deliver(settings, store.policy, run.to_deliver)
    run.notes.extend(on_alert_actions(settings, run.raised))
    return run


def on_alert_actions(settings: Settings, raised: list[dict[str, Any]]) -> list[str]:
    """With ``monitor.on_alert: retrain``, a new ASR or intent alert asks the Prefect server for a run of the
    retrain deployment (``voiceloop-retrain/weekly-retrain``); the runner serving it runs it. Says what it did."""
    if settings.monitor.on_alert != "retrain" or not any(a["component"] in ("asr", "intent") for a in raised):
        return []
    from flows.schedule import DEFAULT_NAME, FLOW_NAME, request_run
    from flows.server import project_server_url

    name = f"{FLOW_NAME}/{DEFAULT_NAME}"
    url = os.environ.get("PREFECT_API_URL") or project_server_url(settings.root)
    if not url:
        return [f"on_alert=retrain: no Prefect server to start {name} on; `voiceloop schedule` starts one"]
    try:
        run_id = request_run(url)
    except Exception as error:  # no deployment, server gone: the alert stands; say why nothing started
        return [f"on_alert=retrain: could not start {name} ({type(error).__name__}: {error})"]
    return [f"on_alert=retrain: asked {url} for a run of {name} (flow run {run_id})"]


@task(name="export", cache_policy=NO_CACHE)
def export(settings: Settings, computed: list[DailyFigure]) -> str:
    return export_figures(settings, computed)


@flow(name="voiceloop-monitor", log_prints=False)
def monitor(params_file: str | None = None, role: str = "pipeline") -> MonitorSummary:
    """Watch production: new calls' signals, the days' figures with label-free estimates, alerts to their owners."""
    settings = load_settings(Path(params_file) if params_file else None)
    prepare(settings.root, settings.threads or None)
    store = open_store(settings, role, "monitoring", flow_run_id=str(flow_run.get_id() or ""))
    timed = progress.Stopwatch()
    champion = _Champion()
    # Redaction and the champion's hearing on the run's worker processes (flows/fan_out.py), started on the first
    # shard: a run with nothing new to hear and a kept calibration starts none.
    with fan_out(settings.compute, settings.threads or None) as shards:
        collected = timed("collect", collect_calls, settings, store, champion, shards)
        calibration = timed("calibrate", calibrate, settings, store, champion, shards)
    computed, window, calls = timed("figures", figures, settings, store, calibration)
    raised = timed("alerts", alerts, settings, store, computed, window, calls)
    exported = timed("export", export, settings, computed)
    return MonitorSummary.of(str(flow_run.get_id() or ""), collected, calibration, computed, window, len(calls),
                             raised, exported, timed.wall)
