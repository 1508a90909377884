"""``voiceloop promote``, ``voiceloop rollback`` and ``voiceloop history``: the champion, moved by hand.

Examples::

    voiceloop history                                        # every gate verdict, promotion and rollback
    voiceloop history --json                                 # the same, with the evidence, for machines
    voiceloop promote --bundle 7 --reason "INC-231: v8 mishears card numbers" --as admin
    voiceloop rollback --reason "INC-232: intent confusions after v9" --as admin

Both moves need a role that may act for purpose ``promotion`` (``admin`` in the shipped policy)
and a reason; each is written to the audit log (``registry.promote-manual``, ``registry.rollback``),
refusals too. The serving runtime follows the ``champion`` alias, so a move takes effect on its
next reload.

Register with :func:`register` (``voiceloop/cli.py``).
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable
from dataclasses import asdict
from datetime import datetime
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from voiceloop.cli_common import JsonOption, ParamsOption, RoleOption, acting_role, console, fail, print_json
from voiceloop.cli_common import load as _settings

if TYPE_CHECKING:
    from core.settings import Settings
    from training.registry import AliasMove, Registry

ReasonOption = Annotated[str | None, typer.Option("--reason", help="why (an incident, a ticket): kept with the move "
                                                                   "and in the audit log; required")]


commands = typer.Typer()  # promote, rollback, history
_UNPRINTABLE = {"Cc", "Cf", "Cs", "Zl", "Zp"}  # controls (ANSI ESC), format marks (bidi overrides), separators


def _visible(text: object) -> str:
    """``text`` with every character that could act on a terminal written as its Python escape ("\\x1b")."""
    return "".join(ascii(ch)[1:-1] if unicodedata.category(ch) in _UNPRINTABLE else ch for ch in str(text))


def _plain(text: object) -> Text:
    """Anyone's text (a reason, a user name) for rich: shown as written, never read as markup or emoji codes."""
    return Text(_visible(text))


def _move(settings: Settings, as_role: str | None, action: str,
          make: Callable[[Registry, str], AliasMove], json_out: bool) -> None:
    """Check the role, make the move, audit it (or its refusal), print it."""
    from governance.audit import Actor, open_audit
    from training.registry import Registry
    from training.rollout import RolloutRefused

    role = acting_role(settings, as_role, "promotion", audit_action=action)
    actor = Actor(role=role, purpose="promotion")
    audit = open_audit(settings)
    try:
        move = make(Registry(settings), f"{actor.user} as {role}")
    except RolloutRefused as refused:
        audit.append(actor, action, outcome="refused", detail={"reason": str(refused)})
        fail(str(refused))
    audit.append(actor, action, detail={"bundle_version": move.version, "champion_before": move.champion_before,
                                        "reason": move.reason, "evidence": move.evidence})
    if json_out:
        print_json(asdict(move))
        return
    Console(stderr=True).print(Text.assemble(
        f"champion: v{move.champion_before or '-'} -> ", (f"v{move.champion_after}", "bold"),
        f" ({move.action}, by ", _plain(move.by), "); serving picks it up on its next reload"))


@commands.command("promote")
def promote(
    bundle: Annotated[str, typer.Option("--bundle", help="the bundle version to make the champion (7 or v7)")],
    reason: ReasonOption = None,
    json_out: JsonOption = False,
    params: ParamsOption = None,
    as_role: RoleOption = None,
) -> None:
    """Make a bundle the champion by hand, overriding the gate (needs the promotion purpose and a reason)."""
    from training.rollout import promote_by_hand

    settings = _settings(params)
    _move(settings, as_role, "registry.promote-manual",
          lambda registry, by: promote_by_hand(registry, bundle, reason, by), json_out)


@commands.command("rollback")
def rollback(
    reason: ReasonOption = None,
    json_out: JsonOption = False,
    params: ParamsOption = None,
    as_role: RoleOption = None,
) -> None:
    """Make the previous champion the champion again (needs the promotion purpose and a reason)."""
    from training.rollout import rollback as roll_back

    settings = _settings(params)
    _move(settings, as_role, "registry.rollback", lambda registry, by: roll_back(registry, reason, by), json_out)


def _evidence(move: AliasMove) -> str:
    evidence = move.evidence
    if move.action.startswith("gate."):
        criteria = evidence.get("criteria", [])

        def named(status: str) -> list[str]:  # records before issue 19 have no status: passed or failed
            return [c["name"] for c in criteria if c.get("decides", True)
                    and (c.get("status") or ("passed" if c.get("passed") else "failed")) == status]

        failed, weak = named("failed"), named("underpowered")
        return (f"{len(criteria)} criteria" + (f", failed: {', '.join(failed)}" if failed else "")
                + (f", underpowered: {', '.join(weak)}" if weak else ""))
    if move.action == "manual.promote":
        return f"gate verdict {evidence.get('gate_verdict') or 'none'}" + (" (override)" if evidence.get("override")
                                                                           else "")
    return f"rolled back v{evidence.get('rolled_back')}"


@commands.command("history")
def history(json_out: JsonOption = False, params: ParamsOption = None, as_role: RoleOption = None) -> None:
    """Every decision about the champion, oldest first: gate verdicts, manual promotions, rollbacks."""
    from training.registry import Registry

    settings = _settings(params)
    acting_role(settings, as_role, None, command="history")  # any role the policy defines; refusals audited
    moves = Registry(settings).moves()
    if json_out:
        print_json([asdict(m) for m in moves])
        return
    if not moves:
        console.print("no decisions yet: the first `voiceloop retrain` gates its bundle")
        return
    table = Table(title=_plain(f"champion history ({settings.tracking.bundle_name})"))
    for column in ("when (UTC)", "action", "bundle", "champion", "by", "reason", "evidence"):
        table.add_column(column)
    for move in moves:
        cells = (datetime.fromisoformat(move.at).strftime("%Y-%m-%d %H:%M:%S"), move.action, f"v{move.version}",
                 f"v{move.champion_before or '-'} -> v{move.champion_after or '-'}", move.by, move.reason or "",
                 _evidence(move))
        table.add_row(*(_plain(cell) for cell in cells))
    Console().print(table)
