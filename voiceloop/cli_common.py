"""What every ``voiceloop`` command shares: options, settings loading and error exits."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console

from core.runtime import prepare
from core.settings import Settings, load_settings

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


def acting_role(settings: Settings, as_role: str | None, purpose: str | None, audit_action: str | None = None) -> str:
    """The acting role (:func:`governance.identity.resolve_role`), or exit 2 when it is unknown or may not
    act for ``purpose`` (None: any role the policy defines). With ``audit_action``, a refusal is also written
    to the audit log (outcome ``denied``).
    """
    from governance.identity import requested_role, resolve_role
    from governance.policy import PolicyError

    try:
        return resolve_role(settings, purpose, as_role)
    except PolicyError as error:
        if audit_action and purpose:
            from governance.audit import Actor, open_audit

            role = requested_role(settings, as_role)
            open_audit(settings).append(Actor(role=role, purpose=purpose), audit_action, outcome="denied",
                                        detail={"reason": str(error)})
        fail(str(error), 2)


def print_json(data: Any, indent: int | None = 1) -> None:
    """Machine-readable output (``--json``) on stdout; everything for humans goes to stderr."""
    sys.stdout.write(json.dumps(data, indent=indent, default=str) + "\n")


def fail(message: str, code: int = 1) -> NoReturn:
    """Print a clear error (never data) and exit non-zero."""
    console.print(f"[bold red]error:[/] {message}")
    raise typer.Exit(code)
