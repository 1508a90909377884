"""The ``voiceloop`` command.

Examples::

    voiceloop simulate-calls --n 40 --out data/calls
    voiceloop simulate-calls --split golden --per-intent 10 --out data/golden
    voiceloop retrain                 # pull, redact, validate, train, gate, promote
    voiceloop retrain --json          # the same, summary as JSON for machines
    voiceloop status                  # champion bundle, recent runs and verdicts
    voiceloop history                 # every gate verdict, manual promotion and rollback
    voiceloop rollback --reason "INC-232" --as admin
    voiceloop serve                   # the champion over HTTP (docs at http://127.0.0.1:8080/docs)
    voiceloop schedule --cron "0 3 * * 1"
    voiceloop redact --in transcripts.jsonl --out redacted.jsonl
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

if TYPE_CHECKING:  # the command imports it: `voiceloop --help` stays fast
    from flows.summary import RetrainSummary

from voiceloop import (
    cli_audit,
    cli_consent,
    cli_governance,
    cli_monitor,
    cli_qa,
    cli_redact,
    cli_registry,
    cli_serve,
    cli_transcribe,
)
from voiceloop.cli_common import JsonOption, ParamsOption, RoleOption, acting_role, console, print_json, warn
from voiceloop.cli_common import fail as _fail
from voiceloop.cli_common import load as _settings

app = typer.Typer(help="voiceloop: the governed retraining loop for production voice bots.", no_args_is_help=True,
                  pretty_exceptions_enable=False)
# One way to add commands: each cli_* module declares its own on a `commands` Typer, merged in here.
for module in (cli_audit, cli_consent, cli_governance, cli_monitor, cli_qa, cli_redact, cli_registry, cli_serve,
               cli_transcribe):
    app.add_typer(module.commands)



@app.command("simulate-calls")
def simulate_calls(
    out: Annotated[Path, typer.Option(help="call store folder to write <call_id>.json + audio/ into")],
    n: Annotated[int, typer.Option(help="number of calls (train split)")] = 20,
    split: Annotated[str, typer.Option(help="train: BANKING77 train utterances; golden: test utterances, "
                                            "a held-out voice")] = "train",
    per_intent: Annotated[int, typer.Option(help="golden: labelled turns per intent (>=10 for a real gate)")] = 0,
    seed: Annotated[int, typer.Option(help="random seed; different seeds give different call ids")] = 0,
    consent_rate: Annotated[float | None, typer.Option(
        help="share of callers who consented to training (default: 0.9 for train, 1.0 for the curated golden set)"
    )] = None,
    production: Annotated[bool, typer.Option(
        "--production", help="write an unlabelled production stream to monitor instead (bot logs, handoff packets, "
                             "callbacks, drifts; docs/production-stream.md); needs --truth")] = False,
    days: Annotated[int, typer.Option(help="--production: days of calls")] = 7,
    calls_per_day: Annotated[int, typer.Option(help="--production: base calls a day (callbacks come on top)")] = 20,
    start: Annotated[str | None, typer.Option(
        help="--production: the first day, YYYY-MM-DD (UTC; default: --days days before today)")] = None,
    drift: Annotated[list[str] | None, typer.Option(
        help="--production: NAME@DAY[-DAY][:SHARE], repeatable: noisy-channel, new-accent, intent-shift, outage, "
             "slow; e.g. noisy-channel@15:0.3, outage@20-22")] = None,
    truth: Annotated[Path | None, typer.Option(
        help="--production: folder for the ground truth (<call_id>.json, stream.json); voiceloop never reads it"
    )] = None,
    bot_log: Annotated[bool, typer.Option(
        "--bot-log/--no-bot-log", help="--production: per bot turn the bot's log (intent, confidence, bundle, ASR "
                                       "confidence); without it the monitor runs the champion itself")] = True,
    cache: Annotated[Path | None, typer.Option(
        help="--production: render cache shared by scenarios (default: <out>/../.voiceloop-render-cache)")] = None,
    params: ParamsOption = None,
) -> None:
    """Build simulated calls: espeak-ng voices, telephone channel, fake PII, real ASR text.

    Train/golden: labelled calls to train and gate on. --production: days of unlabelled calls as a bot platform
    exports them, with drifts injected, to monitor. Example: voiceloop simulate-calls --production --days 30
    --calls-per-day 40 --start 2026-11-01 --drift noisy-channel@15:0.3 --truth data/truth --out data/production

    Train and golden calls are rendered and heard here (two render threads beside the recogniser), or on the Dask
    cluster that compute.dask_address in params.yaml names, one call per task; the files are the same either way.
    """
    settings = _settings(params)
    from voiceloop.simulate.calls import build_calls

    if production:
        from datetime import timedelta

        from voiceloop.simulate.drift import DriftSpecError, parse_drift
        from voiceloop.simulate.stream import build_stream

        if truth is None:
            raise typer.BadParameter("--production needs a folder for the ground truth", param_hint="--truth")
        try:
            specs = [parse_drift(each) for each in drift or []]
        except DriftSpecError as error:
            raise typer.BadParameter(str(error), param_hint="--drift") from None
        try:
            first = datetime.strptime(start, "%Y-%m-%d").date() if start else datetime.now(UTC).date()
        except ValueError:
            raise typer.BadParameter(f"{start!r} is not a date like 2026-11-01", param_hint="--start") from None
        if start is None:
            first -= timedelta(days=days)
        if days < 1 or calls_per_day < 1:
            raise typer.BadParameter("a stream needs at least one day and one call a day", param_hint="--days")
        with Progress(TextColumn("[bold]simulating production calls"), BarColumn(), MofNCompleteColumn(),
                      TimeElapsedColumn(), console=console) as bar:
            job = bar.add_task("calls", total=None)
            stream = build_stream(out, truth, days=days, calls_per_day=calls_per_day, start=first, seed=seed,
                                  drifts=specs, bot_log=bot_log, cache=cache,
                                  progress=lambda done, total: bar.update(job, completed=done, total=total))
        console.print(f"wrote {stream.calls} calls over {days} days from {first} to {out} ({stream.callbacks} "
                      f"callbacks, {stream.escalated} escalated, {stream.drifted} touched by drifts; "
                      f"{stream.rendered} rendered, {stream.reused} from the cache {stream.cache}); truth in {truth}")
        return
    if split not in ("train", "golden"):
        raise typer.BadParameter("split must be 'train' or 'golden'", param_hint="--split")
    from flows.fan_out import fan_out

    with Progress(TextColumn("[bold]simulating calls"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console) as bar, fan_out(settings.compute, settings.threads or None) as shards:
        job = bar.add_task("calls", total=None)
        report = build_calls(out, n, split=split, seed=seed, per_intent=per_intent,  # type: ignore[arg-type]
                             consent_rate=consent_rate if consent_rate is not None else
                             (1.0 if split == "golden" else 0.9),
                             progress=lambda done, total: bar.update(job, completed=done, total=total),
                             shards=shards)
    console.print(f"wrote {report.calls} calls to {out} ({report.customer_turns} customer turns, "
                  f"{report.audio_seconds:.0f} s of audio)")


def _summary_table(summary: RetrainSummary) -> Table:
    table = Table(title="voiceloop retrain", show_lines=False)
    table.add_column("step")
    table.add_column("result")
    table.add_column("time (s)", justify="right")
    table.add_column("CPU (s)", justify="right")
    timings, cpu = summary.timings_s, summary.cpu_s

    def row(step: str, result: str, stage: str = "") -> None:
        table.add_row(step, result, str(timings.get(stage, "")), str(cpu.get(stage, "")))

    for split, stats in summary.ingest.items():
        row(f"ingest ({split})", f"{stats.ingested} new, {stats.already_seen} seen, "
            f"{stats.no_consent} no consent, {stats.quarantined} quarantined"
            + (f", {stats.withdrawn} withdrew consent" if stats.withdrawn else "")
            + (f", {stats.erased} erased (skipped)" if stats.erased else ""))
    row("", "", "ingest")
    for withdrawal in summary.withdrawals:
        row("consent withdrawn", f"{withdrawal.withdrawal_id}: {withdrawal.calls} calls out of "
            f"{withdrawal.datasets_rebuilt} dataset versions (certificate written)")
    if summary.withdrawals:
        row("", "", "withdrawals")
    if (red := summary.redaction) is not None:
        row("redact", f"{red.calls} calls, {red.turns} turns, {red.leaking_turns} leaking turns quarantined", "redact")
    if (val := summary.validation) is not None:
        row("validate", f"{val.passed}/{val.rows} turns passed {val.expectations} expectations", "validate")
    waiting = summary.waiting_for_labels
    row("datasets", ", ".join(f"{k}@{v.digest[:10]} ({v.rows} rows)" for k, v in summary.datasets.items())
        + (f"; {waiting.calls} calls ({waiting.turns} customer turns) waiting for labels" if waiting.calls else ""),
        "datasets")
    for component, how in summary.warm_start.items():
        row(f"start ({component})", how, "warm_start" if component == "intent" else "")
    if (tr := summary.training) is not None:
        row("fine-tune intent", f"golden accuracy {tr.golden_accuracy:.4f}" + (" (reused run)" if tr.reused else ""),
            "finetune")
    if (asr := summary.asr) is not None:
        reused = " (reused run)" if asr.reused else ""
        row("fine-tune ASR", f"golden WER {asr.golden_wer:.4f}, digit strings {asr.digit_accuracy:.2f}, "
            f"{asr.clean_speech_errors} word errors on clean recordings{reused}", "finetune_asr")
    if "train_lanes" in timings:
        row("", "both fine-tunings side by side", "train_lanes")
    if (gate := summary.gate) is not None:
        verdict = "[green]PROMOTED[/]" if gate.promoted else "[yellow]NOT PROMOTED[/]"
        if gate.verdict == "underpowered":  # nothing failed: the golden set was too small to tell (training/gate.py)
            verdict = "[yellow]NOT PROMOTED (underpowered)[/]"
        row("gate", f"bundle v{gate.bundle_version}: {verdict}; champion is v{gate.champion}", "gate")
        for reason in gate.reasons:
            row("", f"[yellow]{reason}[/]")
    return table


@app.command()
def retrain(params: ParamsOption = None, as_role: RoleOption = None, json_out: JsonOption = False) -> None:
    """Run the retrain flow once, now (Prefect's ephemeral API unless PREFECT_API_URL is set).

    Each step is shown as it runs: live on a terminal (calls redacted, epochs trained, elapsed), one
    line per step start and end otherwise (CI). Library logs and warnings go to the run's log file,
    <project>/logs/retrain-<time>.log, named at the end. Example: voiceloop retrain --json > run.json
    """
    settings = _settings(params)
    role = acting_role(settings, as_role, "ingest")
    from flows.retrain import retrain as retrain_flow  # imports Prefect, which sets up its logging first
    from voiceloop.run_display import StepDisplay, run_log

    steps = Console(stderr=True)
    with run_log(settings.root, "retrain") as log_path:
        try:
            with StepDisplay(steps):
                summary = retrain_flow(params_file=str(params) if params else None, role=role)
        except Exception as error:  # the run's log has the traceback
            _fail(f"retrain failed: {error}. The run's log: {log_path}. Fix the cause and run `voiceloop retrain` "
                  "again: finished steps are skipped.")
            return
    if json_out:
        print_json(summary.to_json())
    else:
        Console().print(_summary_table(summary))
        warn(summary.audit_warning, steps)
    steps.print(f"log: {log_path}", soft_wrap=True, highlight=False)
    logging.getLogger("prefect").setLevel(logging.WARNING)  # its temporary server's goodbye at exit is not news


@app.command()
def status(params: ParamsOption = None, json_out: JsonOption = False, as_role: RoleOption = None) -> None:
    """Show the champion bundle, the latest bundles and their verdicts, who owns what the monitor watches (any
    defined role), and warn while the audit key and head share the project folder."""
    settings = _settings(params)
    from governance.audit import shared_folder_warning
    from training.registry import CHAMPION, Registry
    from training.retrain_deadline import stale_champion
    from voiceloop.cli_common import warn
    from voiceloop.cli_governance import champion_deadline_line

    acting_role(settings, as_role, None)
    registry = Registry(settings)
    champion = registry.by_alias(CHAMPION)
    history = registry.versions()[:10]
    now = datetime.now(UTC)
    stale = stale_champion(registry, settings.retention.retrain_deadline_days)
    warning = shared_folder_warning(settings)
    from governance.policy import load_policy

    owners = [{"component": o.component, "slice": o.slice, "team": o.team, "notified": bool(o.receiver),
               "escalation": bool(o.escalation)} for o in load_policy(settings.access.policy_file or None).owners]
    state = {"champion": champion.__dict__ if champion else None, "bundles": history,
             "retrain_required": stale.as_dict(now) if stale else None, "owners": owners,
             "tracking_uri": settings.tracking_uri, "project_dir": str(settings.root), "audit_warning": warning}
    if json_out:  # the warning travels in the JSON: stdout and stderr together stay one JSON document
        print_json(state)
        return
    warn(warning)
    out = Console()
    out.print(f"champion: [bold]{'v' + champion.version if champion else 'none yet'}[/]"
              + (f" ({', '.join(f'{k}={v}' for k, v in champion.components.items())})" if champion else ""))
    if stale is not None:
        out.print(champion_deadline_line(stale, now))
    table = Table(title="latest bundles")
    for column in ("version", "aliases", "verdict", "components", "run"):
        table.add_column(column)
    for row in history:
        table.add_row(row["version"], ", ".join(row["aliases"]), str(row["verdict"] or "-"),
                      ", ".join(f"{k}={v}" for k, v in row["components"].items()), (row["run_id"] or "")[:12])
    out.print(table)
    who = Table(title="who owns what (policy owners: alerts are routed to them)")
    for column in ("component", "slice", "team", "notified by webhook", "escalation"):
        who.add_column(column)
    for owner in owners:
        who.add_row(str(owner["component"]), str(owner["slice"]), str(owner["team"]),
                    "yes" if owner["notified"] else "no (listed only)", "yes" if owner["escalation"] else "-")
    out.print(who)


@app.command()
def quarantine(params: ParamsOption = None, stage: str | None = None, as_role: RoleOption = None,
               json_out: JsonOption = False) -> None:
    """List quarantined items and why (reasons only: no call content)."""
    settings = _settings(params)
    from governance.session import open_store

    store = open_store(settings, acting_role(settings, as_role, "qa-review"), "qa-review")
    items = store.quarantined(stage)
    if json_out:
        print_json(items)
        return
    table = Table(title=f"quarantine ({len(items)} items)")
    for column in ("stage", "item", "reason"):
        table.add_column(column)
    for item in items:
        table.add_row(item["stage"], item["item"], item["reason"])
    Console().print(table)


@app.command()
def schedule(
    cron: Annotated[str, typer.Option(help='cron expression, e.g. "0 3 * * 1" (Mondays 03:00)')],
    name: Annotated[str, typer.Option(help="deployment name")] = "weekly-retrain",
    timezone: Annotated[str, typer.Option(help="timezone of the cron expression")] = "UTC",
    serve: Annotated[bool, typer.Option(help="stay in the foreground and execute the scheduled runs")] = False,
    retention_cron: Annotated[str, typer.Option(help="cron of the retention job (raw data past retention.raw_days)")]
    = "0 2 * * *",
    deadlines_cron: Annotated[str, typer.Option(help="cron of the deadline check (overdue erasure requests, a "
                                                     "champion trained on erased calls past its deadline)")]
    = "0 7 * * *",
    monitor_cron: Annotated[str | None, typer.Option(help="cron of the production monitor (default: monitor.schedule, "
                                                          "daily 06:00)")] = None,
    params: ParamsOption = None,
) -> None:
    """Create (or update) the Prefect deployments: the retrain flow on --cron, and beside it retention, the
    deadline check and the production monitor on their own crons (daily by default), so none depends on someone
    remembering."""
    settings = _settings(params)
    from flows.schedule import (
        DEADLINES,
        MONITOR,
        RETENTION,
        schedule_retrain,
        schedule_side_jobs,
        serve_deployments,
        validate_cron,
    )
    from flows.server import ensure_server

    params_file = str(params) if params else None
    try:
        monitor_cron = monitor_cron or settings.monitor.schedule
        for each in (cron, retention_cron, deadlines_cron, monitor_cron):  # all checked before anything is deployed
            validate_cron(each, timezone)
        api_url = ensure_server(settings.root)
        infos = [schedule_retrain(cron, name=name, timezone=timezone, params_file=params_file, api_url=api_url)]
        infos += schedule_side_jobs({RETENTION: retention_cron, DEADLINES: deadlines_cron, MONITOR: monitor_cron},
                                    timezone=timezone, params_file=params_file, api_url=api_url)
    except (ValueError, FileNotFoundError) as error:  # bad cron/timezone, missing params file
        _fail(str(error), code=2)
        return
    except RuntimeError as error:  # the Prefect server could not be reached or started
        _fail(str(error))
        return
    for info in infos:
        console.print(f"deployment [bold]{info.name}[/] ({info.deployment_id}) scheduled '{info.cron}' on {api_url}")
        for when in info.next_runs:
            console.print(f"  next run: {when}")
    if serve:
        serve_deployments(cron, name=name, timezone=timezone, params_file=str(params) if params else None,
                          api_url=api_url)
    else:
        console.print("runs execute where `voiceloop schedule --serve` (or a Prefect worker) is running")


@app.command("build-datasets")
def build_datasets_command(params: ParamsOption = None, as_role: RoleOption = None,
                           json_out: JsonOption = False) -> None:
    """DVC stage: validate the redacted zone and build the dataset versions, with the flow's own steps.

    Writes the digests to <project>/dvc-stage/datasets.json (the stage's output): the same digests
    the retrain flow gives from the same redacted zone. Example: dvc repro datasets
    """
    settings = _settings(params)
    from governance.session import open_store
    from governance.validation import validate_redacted
    from training.build import build_datasets

    store = open_store(settings, acting_role(settings, as_role, "validation"), "validation")
    report = validate_redacted(store, settings.validation)
    built = build_datasets(store.as_purpose("training"), report.passed, settings)
    for skipped in built.skipped:
        console.print(f"[yellow]ASR data: skipped {escape(skipped)}[/yellow]")
    digests = {name: v.digest for name, v in built.versions.items()}
    out = settings.root / "dvc-stage" / "datasets.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(digests, indent=1, sort_keys=True) + "\n")
    if json_out:
        print_json(digests, indent=None)
    else:
        for name, digest in digests.items():
            console.print(f"{name}: {digest}")


@app.command("train-intent")
def train_intent_command(params: ParamsOption = None, as_role: RoleOption = None) -> None:
    """DVC stage: the flow's intent fine-tuning on the datasets of the last `build-datasets` (no gate).

    A run the flow already finished on the same datasets and settings is reused (MLflow). The model goes
    to <project>/dvc-stage/intent_model and its golden accuracy to <project>/dvc-stage/metrics.json.
    Example: dvc repro train-intent
    """
    settings = _settings(params)
    import shutil

    from core.corpus import intent_names
    from governance.session import open_store
    from training.datasets import callers_of, open_version
    from training.finetune import finetune_intent, intent_set_names
    from training.registry import Registry

    stage_dir = settings.root / "dvc-stage"
    digests = json.loads((stage_dir / "datasets.json").read_text())
    store = open_store(settings, acting_role(settings, as_role, "training"), "training")
    train_names, golden_name = intent_set_names(digests)
    train_sets = [open_version(store, n, digests[n]) for n in train_names]
    Registry(settings)  # sets up tracking
    golden = open_version(store, golden_name, digests[golden_name])
    run = finetune_intent(train_sets, golden, list(intent_names()), settings.intent, settings.root / "work",
                          tags={"voiceloop.dvc_stage": "train-intent"}, progress=True,
                          callers=callers_of(store, train_sets))
    shutil.rmtree(stage_dir / "intent_model", ignore_errors=True)
    shutil.copytree(run.model_dir, stage_dir / "intent_model")
    metrics = {"golden_accuracy": run.golden_accuracy, "golden_rows": len(run.golden_labels), "run_id": run.run_id}
    (stage_dir / "metrics.json").write_text(json.dumps(metrics, indent=1) + "\n")
    console.print(f"golden accuracy {run.golden_accuracy:.4f} on {len(run.golden_labels)} utterances"
                  + (" (the flow's run, reused)" if run.reused else ""))


def main() -> None:
    """Entry point: governance refusals become one clear line and exit code 2, never a traceback."""
    from governance.access import AccessDenied
    from governance.audit import AuditIntegrityError
    from governance.audit_chain import AuditKeyError
    from governance.crypto import RawKeyError
    from governance.policy import PolicyError

    try:
        app()
    except (AccessDenied, PolicyError, RawKeyError, AuditKeyError, AuditIntegrityError) as error:
        console.print(f"[bold red]error:[/] {error}")
        sys.exit(2)


if __name__ == "__main__":
    main()
