"""``voiceloop erase``, ``voiceloop lineage`` and ``voiceloop retention``: the data-subject side of governance.

Examples::

    voiceloop erase --caller-id +15550001234 --as compliance-officer    # record the request and carry it out
    voiceloop erase --caller-id - --request-only < id.txt                # record only (id from stdin)
    voiceloop erase --list --as compliance-officer                       # open requests, overdue first
    voiceloop erase --verify-certificate .voiceloop/erasure-certificates/er-20260101-ab12cd34.json
    voiceloop lineage --call-id call-train-s1-000003 --json
    voiceloop lineage --model voiceloop-intent --version 3
    voiceloop retention apply --dry-run --as compliance-officer
    voiceloop retention check-deadlines --as compliance-officer          # overdue requests, stale champion

Every command checks the acting role first; a refusal is recorded in the audit log. ``erase --list``
reads the audit trail, so it needs purpose ``audit`` and is recorded (``audit.read``).

Register with :func:`register` (``voiceloop/cli.py``).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from voiceloop.cli_common import (
    JsonOption,
    ParamsOption,
    RoleOption,
    acting_role,
    console,
    open_audit_log,
    print_json,
    read_audit_trail,
)
from voiceloop.cli_common import fail as _fail
from voiceloop.cli_common import load as _settings

if TYPE_CHECKING:  # imported in the commands: `voiceloop --help` stays fast
    from core.settings import Settings

retention_app = typer.Typer(help="Delete raw call data past its retention window.", no_args_is_help=True,
                            pretty_exceptions_enable=False)
commands = typer.Typer()  # erase, lineage and the retention group
commands.add_typer(retention_app, name="retention")


# -- shared ---------------------------------------------------------------------------------------
def _size(n: int) -> str:
    value = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"


# -- erase ------------------------------------------------------------------------------------------
@commands.command("erase")
def erase(
    caller_id: Annotated[str | None, typer.Option("--caller-id", help="the caller's id in clear ('-': read it "
                                                                      "from stdin, keeping it out of shell history)")]
    = None,
    request_only: Annotated[bool, typer.Option("--request-only", help="record the request, carry it out later")]
    = False,
    request_id: Annotated[str | None, typer.Option("--request-id", help="carry out this recorded request "
                                                                        "(default: the caller's open one)")] = None,
    list_requests: Annotated[bool, typer.Option("--list", help="show open requests (pending and overdue); needs "
                                                               "purpose audit")] = False,
    verify_certificate: Annotated[Path | None, typer.Option("--verify-certificate",
                                                            help="check an erasure certificate's signature")] = None,
    json_out: JsonOption = False,
    params: ParamsOption = None,
    as_role: RoleOption = None,
) -> None:
    """Right to erasure: record a caller's request, carry it out everywhere, certify it."""
    modes = [bool(caller_id), list_requests, verify_certificate is not None]
    if sum(modes) != 1:
        raise typer.BadParameter("give exactly one of --caller-id, --list, --verify-certificate")
    if (request_only or request_id) and not caller_id:
        raise typer.BadParameter("--request-only and --request-id go with --caller-id")
    settings = _settings(params)
    if list_requests:
        _list_requests(settings, json_out, as_role)
    elif verify_certificate is not None:
        _verify(settings, verify_certificate, json_out, as_role)
    else:
        _erase(settings, caller_option_value(caller_id or ""), request_only, request_id, json_out, as_role)


def caller_option_value(value: str) -> str:
    """A ``--caller-id`` value: as given, or read from stdin for '-' (out of shell history)."""
    caller = sys.stdin.readline().strip() if value == "-" else value.strip()
    if not caller:
        raise typer.BadParameter("the caller id is empty", param_hint="--caller-id")
    return caller


def _list_requests(settings: Settings, json_out: bool, as_role: str | None) -> None:
    from governance.erasure import open_requests

    now = datetime.now(UTC)
    requests = read_audit_trail(settings, as_role, "erase --list", lambda log, _role: open_requests(log, now))
    if json_out:
        print_json([r.as_dict(now) for r in requests])
        return
    table = Table(title=f"open erasure requests ({len(requests)})")
    for column in ("request", "requested (UTC)", "deadline", "status"):
        table.add_column(column, no_wrap=True)
    table.add_column("caller (pseudonym)", overflow="fold")
    for r in requests:
        days = (r.deadline - now.date()).days
        status = (f"[bold red]overdue[/] ({-days} d)" if r.status(now) == "overdue" else f"pending ({days} d left)")
        table.add_row(r.request_id, f"{r.requested_at:%Y-%m-%d %H:%M}", r.deadline.isoformat(), status, r.caller or "")
    Console().print(table)


def _verify(settings: Settings, path: Path, json_out: bool, as_role: str | None) -> None:
    """Any defined role: like ``audit verify``, it answers for the document given and shows no entry."""
    from governance.erasure import verify_certificate

    acting_role(settings, as_role, None)
    try:
        document = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        _fail(f"cannot read certificate {path}: {error}", 2)
    check = verify_certificate(open_audit_log(settings), document)
    if json_out:
        print_json(check.__dict__)
    elif check.ok:
        Console().print(f"[green]valid:[/] {check.reason}")
    else:
        Console().print(f"[bold red]INVALID:[/] {check.reason}")
    if not check.ok:
        raise typer.Exit(1)


def _erase(settings: Settings, caller_id: str, request_only: bool, request_id: str | None, json_out: bool,
           as_role: str | None) -> None:
    from governance.access import AccessDenied
    from governance.erasure import ErasureError, record_request
    from governance.session import open_store

    role = acting_role(settings, as_role, "erasure")
    if request_only:
        store = open_store(settings, role, "erasure")
        request = record_request(store.audit, store.actor, caller_id, settings.retention.erasure_deadline_days)
        if json_out:
            print_json(request.as_dict(datetime.now(UTC)))
        else:
            console.print(f"recorded erasure request [bold]{request.request_id}[/] (deadline {request.deadline}); "
                          "carry it out with `voiceloop erase --caller-id ...`")
        return
    from flows.erase import erase_caller
    from qa.studio import StudioError
    from qa.studio_api import StudioApiError

    with step_progress("erasing", transient=json_out) as on_step:
        try:
            outcome = erase_caller(settings, role, caller_id, request_id=request_id, on_step=on_step)
        except (AccessDenied, ErasureError) as error:
            _fail(str(error), 2)
        except (StudioError, StudioApiError) as error:
            _fail(f"{error}. The erasure stopped at its QA step (the caller's review tasks in Label Studio): run the "
                  "same command again once Label Studio answers; it resumes where it stopped")
    if json_out:
        print_json({"certificate_file": str(outcome.path), **outcome.certificate})
    else:
        Console().print(certificate_table(outcome.certificate, outcome.path))


@contextmanager
def step_progress(first: str, transient: bool) -> Iterator[Callable[[str, int, int], None]]:
    """A progress bar for an erasure-like run, and the ``on_step(label, done, total)`` that moves it."""
    with Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console, transient=transient) as bar:
        job = bar.add_task(first, total=None)
        yield lambda label, done, total: bar.update(job, description=label, completed=done, total=total)


def certificate_table(certificate: dict[str, Any], path: Path) -> Table:
    """What an erasure or a consent withdrawal removed, as its certificate says."""
    what = "consent withdrawal" if certificate.get("kind") == "consent-withdrawal" else "erasure"
    table = Table(title=f"{what} {certificate['request_id']} completed", show_header=False)
    table.add_column("what")
    table.add_column("removed")
    table.add_row("calls", ", ".join(certificate["call_ids"]) or "none held")
    for zone, record in certificate["zones"].items():
        table.add_row(f"zone {zone}", f"{len(record['call_ids'])} calls, {record['files']} files, "
                                      f"{_size(record['bytes'])}")
    for d in certificate["datasets"]:
        table.add_row(f"dataset {d['name']}", f"{d['old_digest'][:12]} -> {(d['new_digest'] or 'empty')[:12]} "
                                              f"({d['rows_before'] - d['rows_after']} rows removed)")
    for where in ("cache", "remote"):
        part = certificate["dvc"].get(where)
        if part:
            table.add_row(f"DVC {where}", f"{len(part['objects'])} objects, {_size(part['bytes'])}")
    models = certificate["models"]
    table.add_row("retrain required", ", ".join(models.get("model_versions", []) + models.get("bundle_versions", []))
                  or "no model saw these calls")
    golden = certificate["golden"]
    table.add_row("golden baseline", f"champion v{golden['champion_version']} re-measured: "
                  f"{golden['accuracy']:.4f} on {golden['rows']} rows" if golden.get("rebaselined")
                  else golden.get("reason", "caller not in the current golden set"))
    table.add_row("certificate", str(path))
    return table


# -- lineage ----------------------------------------------------------------------------------------
@commands.command("lineage")
def lineage(
    call_id: Annotated[str | None, typer.Option("--call-id", help="where this call went: datasets, runs, models")]
    = None,
    model: Annotated[str | None, typer.Option("--model", help="registered model name (with --version)")] = None,
    version: Annotated[str | None, typer.Option("--version", help="model version")] = None,
    json_out: JsonOption = False,
    params: ParamsOption = None,
    as_role: RoleOption = None,
) -> None:
    """Trace a call to the datasets, runs, models and bundles that used it, or a model back to its data."""
    if bool(call_id) == bool(model) or bool(model) != bool(version):
        raise typer.BadParameter("give --call-id ID, or --model NAME --version N")
    settings = _settings(params)
    from governance.session import open_store
    from training.registry import Registry

    # metadata only: no zone right is needed, any defined role will do
    store = open_store(settings, acting_role(settings, as_role, None), "audit")
    registry = Registry(settings)
    data = _call_lineage(store, registry, call_id) if call_id else _model_lineage(store, registry, model or "",
                                                                                   version or "")
    tables = data.pop("tables")
    if json_out:
        print_json(data)
        return
    out = Console()
    for title, rows in tables.items():
        if rows:
            table = Table(title=title)
            for column in rows[0]:
                table.add_column(column)
            for row in rows:
                table.add_row(*[str(v) for v in row.values()])
            out.print(table)
        else:
            out.print(f"{title}: none")


def _call_lineage(store: Any, registry: Any, call_id: str) -> dict[str, Any]:
    from governance.lineage import locate_call
    from training.lineage import lineage_of_datasets

    where = locate_call(store, call_id)
    models = lineage_of_datasets(registry, [(d.name, d.digest) for d in where.datasets])
    data = {**where.as_dict(), **models.as_dict()}
    data["tables"] = {
        f"call {call_id}": [{"raw": where.raw, "redacted": where.redacted, "quarantine": ", ".join(where.quarantine),
                             "QA review": where.reviewed, "erased by": where.erased_by or "-"}],
        "dataset versions holding it": [{"name": d.name, "digest": d.digest[:16], "rows": d.rows,
                                         "current": d.current, "review used": (d.reviewed_label or "-")[:16]}
                                        for d in where.datasets],
        **_model_tables(models.runs, models.models, models.bundles),
    }
    return data


def _model_lineage(store: Any, registry: Any, name: str, version: str) -> dict[str, Any]:
    from governance.lineage import dataset_facts
    from training.lineage import lineage_of_model

    try:
        found = lineage_of_model(registry, name, version)
    except LookupError as error:
        _fail(str(error), 2)
    datasets = dataset_facts(store, found.run.datasets) if found.run else []
    rows_logged = found.run.input_rows if found.run else {}
    data = {**found.as_dict(), "datasets": [d.__dict__ for d in datasets]}
    data["tables"] = {
        f"{name}/{version}": [{"run": found.model.run_id, "retrain required": found.model.retrain_required or "-"}],
        "datasets it was trained and evaluated on": [
            {"name": d.name, "digest": d.digest[:16], "rows": d.rows if d.present else rows_logged.get(d.name, "?"),
             "calls": d.calls if d.present else "?", "in store": d.present, "current": d.current}
            for d in datasets],
        **_model_tables([], [], found.bundles),
    }
    return data


def _model_tables(runs: list[Any], models: list[Any], bundles: list[Any]) -> dict[str, list[dict[str, Any]]]:
    tables: dict[str, list[dict[str, Any]]] = {}
    if runs:
        tables["MLflow runs"] = [{"run": r.run_id, "name": r.name, "started": r.started_at, "status": r.status,
                                  "retrain required": r.retrain_required or "-"} for r in runs]
    if runs or models:
        tables["model versions"] = [{"model": f"{m.name}/{m.version}", "run": m.run_id,
                                     "retrain required": m.retrain_required or "-"} for m in models]
    tables["bundle versions"] = [{"version": b.version, "aliases": ", ".join(b.aliases) or "-",
                                  "components": ", ".join(f"{k}={v}" for k, v in b.components.items()),
                                  "retrain required": b.retrain_required or "-"} for b in bundles]
    return tables


# -- retention --------------------------------------------------------------------------------------
@retention_app.command("apply")
def retention_apply(
    dry_run: Annotated[bool, typer.Option("--dry-run", help="report what would be deleted; delete nothing")] = False,
    json_out: JsonOption = False,
    params: ParamsOption = None,
    as_role: RoleOption = None,
) -> None:
    """Delete raw calls older than retention.raw_days (and redacted ones unless retention.keep_redacted)."""
    settings = _settings(params)
    from flows.governance_jobs import run_retention
    from governance.access import AccessDenied

    try:
        report = run_retention(settings, acting_role(settings, as_role, "retention"), dry_run)
    except AccessDenied as error:
        _fail(str(error), 2)
    if json_out:
        print_json(report.as_dict())
        return
    verb = "would delete" if dry_run else "deleted"
    table = Table(title=f"retention ({'dry run' if dry_run else 'applied'}): raw calls started before "
                        f"{report.cutoff[:19]} ({report.raw_days} days)")
    for column in ("zone", verb, "files", "bytes"):
        table.add_column(column)
    for zone, ids in (("raw", report.raw), ("redacted", report.redacted), ("quarantine", report.quarantine)):
        done = report.deleted.get(zone, {})
        table.add_row(zone, f"{len(ids)} {'items' if zone == 'quarantine' else 'calls'}",
                      str(done.get("files", "-")), _size(done["bytes"]) if done else "-")
    Console().print(table)
    if report.keep_redacted:
        console.print("redacted calls are kept (retention.keep_redacted): datasets rebuild from them unchanged")


@retention_app.command("check-deadlines")
def retention_check_deadlines(json_out: JsonOption = False, params: ParamsOption = None,
                              as_role: RoleOption = None) -> None:
    """Put overdue erasure requests and a champion trained on erased calls past retention.retrain_deadline_days
    on record (audit log, once each); with retention.rollback_when_overdue, serve the newest clean bundle.

    Example: voiceloop retention check-deadlines --as compliance-officer --json
    """
    settings = _settings(params)
    from flows.governance_jobs import check_deadlines

    now = datetime.now(UTC)
    report = check_deadlines(settings, acting_role(settings, as_role, "retention"), now)
    if json_out:
        print_json(report.to_json(now))
        return
    for request in report.overdue_requests:
        console.print(f"[bold red]OVERDUE[/] erasure request {request['request_id']} (deadline {request['deadline']})")
    stale = report.retrain.stale
    if stale is None:
        console.print("champion: not trained on erased or withdrawn calls")
    else:
        console.print(champion_deadline_line(stale, now))
    if report.retrain.rolled_back_to:
        console.print(f"rolled back: bundle v{report.retrain.rolled_back_to} serves now")


def champion_deadline_line(stale: Any, now: datetime) -> str:
    """One line on a champion trained on erased or withdrawn calls (``voiceloop status`` shows it too)."""
    state = "[bold red]OVERDUE[/]" if stale.overdue(now) else "due"
    return (f"champion v{stale.version} was trained on erased or withdrawn calls ({', '.join(stale.requests)}): "
            f"retrain by {stale.deadline[:10]} - {state}")
