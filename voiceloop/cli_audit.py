"""``voiceloop audit``: browse, verify and report on the tamper-evident audit log.

Examples::

    voiceloop audit log --since 7d --role analyst --as compliance-officer   # the last week's entries of one role
    voiceloop audit log --call-id 3f2a9c --json             # everything that names one call
    voiceloop audit log --caller +15550001234               # matched through the keyed pseudonym
    voiceloop audit verify                                  # exit 0: "N entries, chain intact, head matches"
    voiceloop audit report --out audit-report.html          # for compliance officers
    voiceloop audit rotate-key --as admin                   # new audit key; the log records the rotation

Reading the trail (log, report) needs a role holding purpose ``audit`` and is itself recorded
(``audit.read``); ``verify`` reveals no entry and stays open to every defined role (docs/audit.md).
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

from voiceloop.cli_common import (
    AUDIT_PURPOSE,
    JsonOption,
    ParamsOption,
    RoleOption,
    acting_role,
    console,
    fail,
    open_audit_log,
    print_json,
    read_audit_trail,
    warn,
)
from voiceloop.cli_common import load as _settings

if TYPE_CHECKING:  # imported in the commands: `voiceloop --help` stays fast
    from governance.audit import AuditEntry, AuditLog
    from governance.audit_report import ReportData

audit_app = typer.Typer(help="The tamper-evident audit log: who touched which calls, in which role, and why.",
                        no_args_is_help=True, pretty_exceptions_enable=False)
commands = typer.Typer()  # the audit group
commands.add_typer(audit_app, name="audit")
SinceOption = Annotated[str | None, typer.Option("--since", help="ISO date/time (UTC unless given) or an age: "
                                                                  "30m, 12h, 7d, 2w")]
_AGE = re.compile(r"^(\d+)\s*([mhdw])$")
_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
_MAX_LIMIT = 10**9  # past any log; a larger count would overflow the database's integer (0 shows all anyway)


def parse_since(value: str, now: datetime | None = None) -> datetime:
    """``7d`` -> seven days ago; ``2026-05-01`` / ``2026-05-01T12:00+02:00`` -> that moment (UTC if naive)."""
    match = _AGE.match(value.strip().lower())
    if match:
        try:
            return (now or datetime.now(UTC)) - timedelta(**{_UNITS[match[2]]: int(match[1])})
        except OverflowError:  # past what a date can hold (before year 1)
            raise typer.BadParameter(f"{value!r} reaches back before year 1: give a shorter age or an ISO date",
                                     param_hint="--since") from None
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        raise typer.BadParameter(f"{value!r} is neither an ISO date nor an age like 7d", param_hint="--since") from None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def _short(values: list[str], keep: int = 3) -> str:
    return ", ".join(values[:keep]) + (f" +{len(values) - keep}" if len(values) > keep else "")


def _row(entry: AuditEntry) -> list[str]:
    detail = json.dumps(entry.detail, sort_keys=True, default=str)
    outcome = f"[red]{entry.outcome}[/]" if entry.outcome != "ok" else entry.outcome
    return [str(entry.id), entry.when.strftime("%Y-%m-%d %H:%M:%S"), entry.actor, entry.role, entry.purpose,
            entry.action, outcome, entry.zone or "", _short(entry.call_ids), detail if len(detail) <= 60
            else detail[:59] + "…"]


@audit_app.command("log")
def log_command(
    since: SinceOption = None,
    role: Annotated[str | None, typer.Option(help="only entries of this role")] = None,
    call_id: Annotated[str | None, typer.Option("--call-id", help="entries whose calls include it, or that "
                                                                  "name it in their detail or note")] = None,
    caller: Annotated[str | None, typer.Option(help="a caller id in clear, matched through its pseudonym")] = None,
    action: Annotated[str | None, typer.Option(help="exact action, or a prefix like 'erasure.*'")] = None,
    denied: Annotated[bool, typer.Option("--denied", help="only denied attempts")] = False,
    limit: Annotated[int, typer.Option(min=0, max=_MAX_LIMIT, help="show the most recent N matches (0: all)")] = 100,
    json_out: JsonOption = False,
    params: ParamsOption = None,
    as_role: RoleOption = None,
) -> None:
    """Show audit entries, oldest first, filtered (needs purpose audit; the read is recorded)."""
    start = parse_since(since) if since else None
    entries = read_audit_trail(
        _settings(params), as_role, "audit log",
        lambda log, _role: list(log.entries(since=start, role=role, call_id=call_id, caller=caller, action=action,
                                            outcome="denied" if denied else None, limit=limit or None,
                                            newest_first=True))[::-1],
        filters={"since": since, "role": role, "call_id": call_id, "action": action, "denied": denied,
                 "limit": limit}, caller=caller)
    if json_out:
        print_json([{"id": e.id, **e.as_dict()} for e in entries])
        return
    table = Table(title=f"audit log ({len(entries)} entries{', most recent ' + str(limit) if limit else ''})")
    for column in ("id", "time (UTC)", "user", "role", "purpose", "action", "outcome", "zone", "calls", "detail"):
        table.add_column(column, justify="right" if column == "id" else "left")
    for entry in entries:
        table.add_row(*_row(entry))
    Console().print(table)


@audit_app.command("verify")
def verify_command(json_out: JsonOption = False, params: ParamsOption = None, as_role: RoleOption = None) -> None:
    """Check every entry's MAC and link, and the chain's end against the head file and its mirror.
    Exit 1 if tampered, naming the copy that disagrees. Any defined role: it shows no entry and writes none.
    """
    settings = _settings(params)
    from governance.audit import shared_folder_warning

    acting_role(settings, as_role, None)
    result = open_audit_log(settings).verify()
    warning = shared_folder_warning(settings)
    if json_out:
        print_json({**asdict(result), "warning": warning}, indent=None)
    elif result.ok:
        Console().print(f"[green]{result.summary()}[/]")
    else:
        Console().print(f"[bold red]TAMPERED:[/] {result.reason}"
                        + (f" (first bad entry: {result.first_bad_id})" if result.first_bad_id else "")
                        + f"; {result.checked} entries checked before it")
    if not json_out:  # the JSON carries it
        warn(warning)
    if not result.ok:
        raise typer.Exit(1)


@audit_app.command("report")
def report_command(
    out: Annotated[Path | None, typer.Option(help="HTML file to write (default: <project>/reports/"
                                                  "audit-report-<date>.html)")] = None,
    since: SinceOption = None,
    params: ParamsOption = None,
    as_role: RoleOption = None,
) -> None:
    """Write a self-contained HTML report for compliance officers (needs purpose audit; the read is recorded)."""
    settings = _settings(params)
    from governance.audit_report import write_report
    from training.registry import Registry
    from training.retrain_deadline import stale_champion

    now = datetime.now(UTC)
    start = parse_since(since) if since else None
    target = out or settings.root / "reports" / f"audit-report-{now:%Y-%m-%d}.html"

    def report(log: AuditLog, _role: str) -> ReportData:
        stale = stale_champion(Registry(settings), settings.retention.retrain_deadline_days)
        return write_report(log, target, since=start, now=now, stale_champion=stale.as_dict(now) if stale else None)

    data = read_audit_trail(settings, as_role, "audit report", report, filters={"since": since, "out": str(target)})
    state = "chain intact" if data.verify.ok else f"[bold red]VERIFICATION FAILED[/] ({data.verify.reason})"
    console.print(f"wrote {target}: {state}; {sum(g.entries for g in data.raw_access)} raw accesses, "
                  f"{len(data.denied)} denied, {len(data.overdue)} overdue erasure requests"
                  + (f"; champion v{data.stale_champion['version']} trained on erased calls: "
                     f"{data.stale_champion['status']}" if data.stale_champion else ""))


@audit_app.command("rotate-key")
def rotate_key_command(params: ParamsOption = None, as_role: RoleOption = None) -> None:
    """Retire the audit key and start a new one (needs purpose key-rotation); the log records the hand-over,
    MACed with the old key."""
    settings = _settings(params)
    from governance.audit_chain import AuditKeyError, rotate_key_files

    acting_role(settings, as_role, "key-rotation")
    log = open_audit_log(settings)  # the chain must verify under the old key before it is handed over
    before = log.verify()
    if not before.ok:
        fail(f"the log fails verification, not rotating: {before.reason}", 1)
    try:
        old_id, new_id = rotate_key_files(settings.keys_dir)
    except AuditKeyError as error:
        fail(str(error), 2)
    open_audit_log(settings).record_key_rotation()
    console.print(f"audit key rotated: {old_id} -> {new_id} (the old key stays in {settings.keys_dir} as "
                  f"audit.{old_id}.key: it is needed to verify the entries it MACed)")


@audit_app.command("reanchor")
def reanchor_command(
    reason: Annotated[str, typer.Option(help="why the head file had to be rewritten (recorded in the log)")],
    params: ParamsOption = None,
    as_role: RoleOption = None,
) -> None:
    """Rewrite a lost head file (or write a newly set head mirror) from the table, if the chain verifies;
    needs purpose audit, and the log records who did it and why."""
    settings = _settings(params)
    from governance.audit import Actor, AuditIntegrityError

    role = acting_role(settings, as_role, AUDIT_PURPOSE)
    log = open_audit_log(settings)
    try:
        result = log.reanchor(Actor(role=role, purpose=AUDIT_PURPOSE), reason=reason)
    except AuditIntegrityError as error:
        fail(str(error), 1)
    console.print(f"head re-anchored: {result.summary()}")
