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


def print_json(data: Any, indent: int | None = 1) -> None:
    """Machine-readable output (``--json``) on stdout; everything for humans goes to stderr."""
    sys.stdout.write(json.dumps(data, indent=indent, default=str) + "\n")


def fail(message: str, code: int = 1) -> NoReturn:
    """Print a clear error (never data) and exit non-zero."""
    console.print(f"[bold red]error:[/] {message}")
    raise typer.Exit(code)
