"""What every ``voiceloop`` command shares: options, settings loading and error exits."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn, TypeVar

import typer
from rich.console import Console
from rich.markup import escape

from core.runtime import prepare
from core.settings import Settings, load_settings

if TYPE_CHECKING:  # imported where used: `voiceloop --help` stays fast
    from governance.audit import AuditLog

T = TypeVar("T")

console = Console(stderr=True)

ParamsOption = Annotated[Path | None, typer.Option("--params", help="params file (default: ./params.yaml)")]
JsonOption = Annotated[bool, typer.Option("--json", help="print machine-readable JSON on stdout")]
RoleOption = Annotated[str | None, typer.Option(
    "--as", help="role to act as (see docs/access.md); default $VOICELOOP_ROLE, then identity.role")]


def load(params: Path | None) -> Settings:
    """Settings from ``--params`` (or the default file) with the runtime prepared for them."""
    if params is not None and not params.exists():
        raise typer.BadParameter(f"{params} does not exist", param_hint="--params")
    settings = load_settings(params)
    prepare(settings.root, settings.threads or None)
    return settings


AUDIT_PURPOSE = "audit"
AUDIT_READ = "audit.read"  # the action of a read of the audit trail (and of its refusal)
ROLE_REFUSED = "role.refused"  # the action of any other refused role: the entry's purpose says what was asked
_ROLE_COLUMN = 64  # the audit log's role column: a refused role is recorded cut to it


def acting_role(settings: Settings, as_role: str | None, purpose: str | None, audit_action: str = ROLE_REFUSED,
                command: str | None = None, configured: str | None = None) -> str:
    """The acting role (:func:`governance.identity.resolve_role`; ``configured``: the role this command takes
    when none is asked for, default ``identity.role``), or exit 2 when it is unknown or may not act for
    ``purpose`` (None: any role the policy defines). Every refusal is written to the audit log first
    (outcome ``denied``, action ``audit_action``, the reason and ``command`` in its detail).
    """
    from governance.identity import requested_role, resolve_role
    from governance.policy import PolicyError

    try:
        return resolve_role(settings, purpose, as_role, configured)
    except PolicyError as error:
        detail = {"reason": str(error), **({"command": command} if command else {})}
        _audit_refusal(settings, requested_role(settings, as_role, configured), purpose or "", audit_action, detail)
        fail(str(error), 2)


def _audit_refusal(settings: Settings, role: str, purpose: str, action: str, detail: dict[str, Any]) -> None:
    """Record a refused role; a log that cannot take the entry is named, and the refusal stands."""
    from governance.audit import Actor, AuditIntegrityError, AuditKeyError, open_audit

    try:
        open_audit(settings).append(Actor(role=role[:_ROLE_COLUMN], purpose=purpose), action, outcome="denied",
                                    detail=detail)
    except (AuditIntegrityError, AuditKeyError) as error:
        warn(f"this refusal could not be written to the audit log: {error}")


def open_audit_log(settings: Settings) -> AuditLog:
    """The audit log, or exit 1 naming the key or integrity problem that stops it opening."""
    from governance.audit import AuditIntegrityError, AuditKeyError, open_audit

    try:
        return open_audit(settings)
    except (AuditKeyError, AuditIntegrityError) as error:
        fail(str(error), 1)


def read_audit_trail(settings: Settings, as_role: str | None, command: str, read: Callable[[AuditLog, str], T], *,
                     filters: dict[str, Any] | None = None, caller: str | None = None) -> T:
    """``read(log, role)`` for a role holding purpose ``audit``, and an ``audit.read`` entry recording it.

    The one way a command reads the audit trail: the role is checked first (a refusal is recorded,
    nothing is read); the entry names the ``command`` and its ``filters`` (never call content; a
    ``caller`` only as the log's pseudonym) and is written after the read, so what the command
    shows is the log as it stood. A log that refuses writes because it fails verification is still
    read, with a warning that this read is not recorded: investigating tampering must stay possible.
    """
    from governance.audit import Actor, AuditIntegrityError, AuditKeyError

    role = acting_role(settings, as_role, AUDIT_PURPOSE, audit_action=AUDIT_READ, command=command)
    log = open_audit_log(settings)
    result = read(log, role)
    given = {name: value for name, value in (filters or {}).items() if value is not None and value is not False}
    detail = {"command": command, "filters": given}
    try:
        log.append(Actor(role=role, purpose=AUDIT_PURPOSE), AUDIT_READ, caller=caller, detail=detail)
    except (AuditIntegrityError, AuditKeyError) as error:
        warn(f"this read is not in the audit log, which refuses writes: {error}")
    return result


def warn(message: str | None, out: Console | None = None) -> None:
    """One yellow warning line on ``out`` (default stderr); nothing for None. Long runs show the flow's own
    warnings the same way (voiceloop/run_display.py)."""
    if message:
        (out or console).print(f"[yellow]warning:[/] {escape(message)}", highlight=False, soft_wrap=True)


def print_json(data: Any, indent: int | None = 1) -> None:
    """Machine-readable output (``--json``) on stdout; everything for humans goes to stderr."""
    sys.stdout.write(json.dumps(data, indent=indent, default=str) + "\n")


def fail(message: str, code: int = 1) -> NoReturn:
    """Print a clear error (never data) and exit non-zero."""
    console.print(f"[bold red]error:[/] {escape(message)}", highlight=False)
    raise typer.Exit(code)
