"""``voiceloop monitor``, ``alerts``, ``alertmanager`` and ``pushgateway``: watching production from the command line.

``monitor`` runs the monitor flow once (the deployment runs it daily: ``voiceloop schedule``);
``monitor report`` writes the HTML page; ``alerts`` lists alerts and ``alerts show ID`` the calls
behind one (checked and audited as a monitoring read); ``alertmanager``/``pushgateway`` start, stop
and report the local daemons, on 127.0.0.1 only, with their data under the project folder.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from voiceloop.cli_common import JsonOption, ParamsOption, RoleOption, acting_role, console, fail, load, print_json

if TYPE_CHECKING:
    from flows.monitor_summary import MonitorSummary

commands = typer.Typer()
monitor_app = typer.Typer(help="Watch production calls: with no command, run the monitor once now (ingest, signals, "
                               "figures, label-free estimates, alerts); `report` draws them (docs/monitoring.md).",
                          invoke_without_command=True)
alerts_app = typer.Typer(help="The monitor's alerts: list them, show the calls behind one, acknowledge one.",
                         invoke_without_command=True)
alertmanager_app = typer.Typer(help="A local Alertmanager for the monitor's alerts (127.0.0.1, data in the project).",
                               no_args_is_help=True)
pushgateway_app = typer.Typer(help="A local Prometheus Pushgateway for the monitor's figures (127.0.0.1).",
                              no_args_is_help=True)
commands.add_typer(monitor_app, name="monitor")
commands.add_typer(alerts_app, name="alerts")
commands.add_typer(alertmanager_app, name="alertmanager")
commands.add_typer(pushgateway_app, name="pushgateway")


def _summary_table(summary: MonitorSummary) -> Table:
    table = Table(title="voiceloop monitor")
    table.add_column("step")
    table.add_column("result")
    table.add_column("time (s)", justify="right")
    c, t = summary.collect, summary.timings_s
    table.add_row("collect", f"{c.listed} files, {c.ingested} new with consent, {c.no_consent} without (numbers only), "
                  f"{c.quarantined} quarantined, {c.fields_quarantined} bad fields set aside; {c.monitored} calls "
                  f"watched ({c.bot_logged_turns} turns from bot logs, {c.champion_turns} heard by the champion "
                  f"{c.champion or ''})", str(t.get("collect", "")))
    if (cal := summary.calibration) is not None:
        table.add_row("calibrate", f"bundle {cal.bundle} on {cal.golden}: {cal.turns} turns, intent ECE "
                      f"{cal.intent_ece_raw} -> {cal.intent_ece_calibrated}, WER MAE {cal.wer_mae}",
                      str(t.get("calibrate", "")))
    else:
        table.add_row("calibrate", "no calibration (no golden set with audio yet): no label-free estimates",
                      str(t.get("calibrate", "")))
    span = f"{summary.days[0]} .. {summary.days[-1]}" if summary.days else "no days yet"
    reference = " .. ".join(summary.reference) or "not yet"
    table.add_row("figures", f"{summary.calls} calls over {len(summary.days)} days ({span}); reference {reference}",
                  str(t.get("figures", "")))
    delivered = summary.delivered_to or "the store only (no Alertmanager: `voiceloop alertmanager start`)"
    if summary.delivery_error:
        delivered = f"[red]NOT delivered: {summary.delivery_error}[/]"
    table.add_row("alerts", f"{len(summary.alerts)} new, {summary.alerts_continuing} continuing "
                  f"({summary.change_tests} change tests); sent to {delivered}", str(t.get("alerts", "")))
    for alert in summary.alerts:
        table.add_row("", f"[yellow]{alert['alert_id']}[/] {alert['severity']} {alert['metric']} on {alert['slice']} "
                      f"({alert['day']}), owner {alert['owner']}")
    table.add_row("export", summary.export, str(t.get("export", "")))
    return table


@monitor_app.callback()
def monitor(ctx: typer.Context, params: ParamsOption = None, as_role: RoleOption = None,
            json_out: JsonOption = False) -> None:
    """Run the monitor once, now: ingest and redact new calls, read their signals, the days' figures with
    label-free accuracy and WER estimates, alerts to their owners, figures to the Pushgateway.

    Example: voiceloop monitor --json > monitor.json ; voiceloop monitor report --out monitor.html
    """
    if ctx.invoked_subcommand is not None:
        return
    settings = load(params)
    role = acting_role(settings, as_role, "ingest")  # a run ingests and redacts before it watches (the pipeline)
    from flows.monitor import monitor as monitor_flow
    from voiceloop.run_display import StepDisplay, run_log

    with run_log(settings.root, "monitor") as log_path:
        try:
            with StepDisplay(Console(stderr=True)):
                summary = monitor_flow(params_file=str(params) if params else None, role=role)
        except Exception as error:  # the run's log has the traceback
            fail(f"monitor failed: {error}. The run's log: {log_path}. Fix the cause and run it again: calls "
                 "already watched are not read again.")
    if json_out:
        print_json(summary.to_json())
    else:
        console.print(_summary_table(summary))


def _watcher(params: Path | None, as_role: str | None) -> Any:
    from governance.session import open_store

    settings = load(params)
    return settings, open_store(settings, acting_role(settings, as_role, "monitoring"), "monitoring")


@monitor_app.command("report")
def report(out: Annotated[Path, typer.Option(help="HTML file to write")] = Path("monitor-report.html"),
           params: ParamsOption = None, as_role: RoleOption = None) -> None:
    """Write one HTML page: a trend plot per metric and slice with alerts marked, the alerts, the worst slices."""
    _settings, store = _watcher(params, as_role)
    from monitoring.report import render_report
    from monitoring.watch import load_figures

    page = render_report(load_figures(store), list(store.read_monitoring("alerts").values()),
                         generated_at=datetime.now(UTC))
    out.write_text(page, encoding="utf-8")
    console.print(f"wrote {out} ({len(page) // 1024} KiB)")


@alerts_app.callback()
def alerts(ctx: typer.Context, params: ParamsOption = None, as_role: RoleOption = None,
           json_out: JsonOption = False) -> None:
    """List the monitor's alerts, newest first (ids, rules, slices, owners; never the calls)."""
    if ctx.invoked_subcommand is not None:
        return
    _settings, store = _watcher(params, as_role)
    records = sorted(store.read_monitoring("alerts").values(), key=lambda r: (r["day"], r["alert_id"]), reverse=True)
    rows = [{k: v for k, v in r.items() if k != "call_ids"} | {"calls": len(r["call_ids"])} for r in records]
    if json_out:
        print_json(rows)
        return
    table = Table(title="voiceloop alerts")
    for column in ("alert", "day", "severity", "owner", "metric", "slice", "value", "reference", "calls"):
        table.add_column(column)
    for r in rows:
        reference = r.get("reference_mean")
        table.add_row(r["alert_id"], r["day"] + (f"..{r['last_day']}" if r["last_day"] != r["day"] else ""),
                      r["severity"], r["owner"], r["metric"], r["slice"], f"{r['value']:.4g}",
                      "" if reference is None else f"{reference:.4g}", str(r["calls"]))
    console.print(table if rows else "no alerts")


@alerts_app.command("show")
def show(alert_id: str, params: ParamsOption = None, as_role: RoleOption = None, json_out: JsonOption = False) -> None:
    """The calls behind one alert (their ids; reading them is checked and audited as a monitoring read)."""
    _settings, store = _watcher(params, as_role)
    found = store.read_monitoring("alerts", [alert_id])
    if alert_id not in found:
        fail(f"no alert {alert_id!r}; `voiceloop alerts` lists them", code=2)
    record = found[alert_id]
    if json_out:
        print_json(record)
        return
    console.print(f"{alert_id}: {record['metric']} on {record['slice']} ({record['day']}..{record['last_day']}), "
                  f"{record['severity']}, owner {record['owner']}; {len(record['call_ids'])} calls:")
    for call_id in record["call_ids"]:
        print(call_id)


@alerts_app.command("ack")
def ack(alert_id: str, by: Annotated[str, typer.Option(help="who acknowledges (recorded)")],
        comment: Annotated[str, typer.Option(help="why, or what is being done")] = "acknowledged",
        hours: Annotated[float, typer.Option(help="how long notifications stay silenced")] = 24.0,
        params: ParamsOption = None, as_role: RoleOption = None) -> None:
    """Acknowledge an alert: a silence on its id in Alertmanager (stops its escalation), audited."""
    settings, store = _watcher(params, as_role)
    from monitoring.alertmanager import acknowledge
    from monitoring.delivery import alertmanager_url

    if alert_id not in store.read_monitoring("alerts", [alert_id]):
        fail(f"no alert {alert_id!r}; `voiceloop alerts` lists them", code=2)
    url = alertmanager_url(settings, store.policy)
    if url is None:
        fail("no Alertmanager to acknowledge in: run `voiceloop alertmanager start` or set monitor.alertmanager_url")
    silence = acknowledge(url, alert_id, by, comment, hours * 3600)
    store.audit.append(store.actor, "monitoring.alert-acknowledged", zone="monitoring",
                       detail={"alert_id": alert_id, "by": by, "comment": comment, "silence": silence})
    console.print(f"{alert_id} acknowledged (silence {silence} for {hours:g} h)")


def _daemon(kind: str, params: Path | None) -> Any:
    from governance.policy import load_policy
    from monitoring.delivery import local_alertmanager, local_pushgateway

    settings = load(params)
    if kind == "alertmanager":
        return local_alertmanager(settings, load_policy(settings.access.policy_file or None))
    return local_pushgateway(settings)


def _daemon_commands(app: typer.Typer, kind: str) -> None:
    @app.command("start")
    def start(params: ParamsOption = None) -> None:
        """Start it in the background on 127.0.0.1 (its config, data, log and pid file under the project folder)."""
        try:
            status = _daemon(kind, params).start()
        except RuntimeError as error:
            fail(str(error))
        console.print(f"{kind} running at {status.url} (pid {status.pid}); log {status.log_file}")

    @app.command("stop")
    def stop(params: ParamsOption = None) -> None:
        """Stop it (its data stays in the project folder)."""
        console.print(f"{kind} stopped" if _daemon(kind, params).stop() else f"{kind} was not running")

    @app.command("status")
    def status(params: ParamsOption = None, json_out: JsonOption = False) -> None:
        """Whether it runs, where, and its pid."""
        state = _daemon(kind, params).status()
        if json_out:
            print_json({"running": state.running, "url": state.url, "pid": state.pid, "folder": str(state.folder)})
        else:
            console.print(f"{kind}: running at {state.url} (pid {state.pid})" if state.running
                          else f"{kind}: not running (`voiceloop {kind} start`)")


_daemon_commands(alertmanager_app, "alertmanager")
_daemon_commands(pushgateway_app, "pushgateway")
