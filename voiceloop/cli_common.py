"""What every ``voiceloop`` command shares: options, settings loading and error exits."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console

from voiceloop.config import Settings, load_settings
from voiceloop.runtime import prepare

console = Console(stderr=True)

ParamsOption = Annotated[Path | None, typer.Option("--params", help="params file (default: ./params.yaml)")]
JsonOption = Annotated[bool, typer.Option("--json", help="print machine-readable JSON on stdout")]
RoleOption = Annotated[str | None, typer.Option("--as", envvar="VOICELOOP_ROLE",
                                                help="role to act as (see docs/access.md); default identity.role")]


def load(params: Path | None) -> Settings:
    """Settings from ``--params`` (or the default file) with the runtime prepared for them."""
    if params is not None and not params.exists():
        raise typer.BadParameter(f"{params} does not exist", param_hint="--params")
    settings = load_settings(params)
    prepare(settings.root, settings.threads or None)
    return settings


def acting_role(settings: Settings, as_role: str | None, purpose: str, audit_action: str | None = None) -> str:
    """The acting role, refused (exit 2) when the policy does not define it or it may not act for ``purpose``.

    With ``audit_action``, a refusal is also written to the audit log (outcome ``denied``).
    """
    from governance.policy import PolicyError, load_policy

    role = as_role or settings.identity.role
    try:
        policy = load_policy(settings.access.policy_file or None)
        policy.require_role(role)
        refusal = None
    except PolicyError as error:
        refusal = str(error)
    if refusal is None and purpose not in policy.purposes_of(role):
        refusal = (f"role {role!r} may not act for purpose {purpose!r}; roles that may: "
                   f"{', '.join(policy.roles_for(purpose)) or 'none'} (act as one with --as ROLE or VOICELOOP_ROLE)")
    if refusal is not None:
        if audit_action:
            from governance.audit import Actor, open_audit

            open_audit(settings).append(Actor(role=role, purpose=purpose), audit_action, outcome="denied",
                                        detail={"reason": refusal})
        fail(refusal, 2)
    return role


def print_json(data: Any, indent: int | None = 1) -> None:
    """Machine-readable output (``--json``) on stdout; everything for humans goes to stderr."""
    sys.stdout.write(json.dumps(data, indent=indent, default=str) + "\n")


def fail(message: str, code: int = 1) -> NoReturn:
    """Print a clear error (never data) and exit non-zero."""
    console.print(f"[bold red]error:[/] {message}")
    raise typer.Exit(code)
