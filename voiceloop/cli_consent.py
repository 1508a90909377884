"""``voiceloop consent``: a caller withdraws consent to training, or gives it again.

Examples::

    voiceloop consent withdraw --caller-id +15550001234 --as compliance-officer   # now, with a certificate
    voiceloop consent withdraw --caller-id - < id.txt                           # id from stdin
    voiceloop consent grant --caller-id +15550001234                            # their next calls count again
    voiceloop consent status --caller-id - --json --as compliance-officer < id.txt   # withdrawals and grants

A withdrawal covers every call of the caller held so far and their future calls until a grant; it
is carried out at once (dataset versions rebuilt, DVC objects purged, models tagged, certificate),
and ``consent.on_withdrawal`` says whether the calls' raw and redacted copies go too (docs/erasure.md).
``status`` tells a caller's history, as the audit trail does: it needs purpose ``audit`` and is
recorded (``audit.read``, the caller as the log's pseudonym).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

from voiceloop.cli_common import (
    JsonOption,
    ParamsOption,
    RoleOption,
    acting_role,
    console,
    print_json,
    read_audit_trail,
)
from voiceloop.cli_common import fail as _fail
from voiceloop.cli_common import load as _settings
from voiceloop.cli_governance import caller_option_value, certificate_table, step_progress

if TYPE_CHECKING:  # imported in the commands: `voiceloop --help` stays fast
    from core.settings import Settings
    from governance.store import GovernedStore

consent_app = typer.Typer(help="A caller withdraws consent to training (or gives it again).", no_args_is_help=True,
                          pretty_exceptions_enable=False)
commands = typer.Typer()
commands.add_typer(consent_app, name="consent")

CallerOption = Annotated[str, typer.Option("--caller-id", help="the caller's id in clear ('-': read it from stdin, "
                                                               "keeping it out of shell history)")]


def _withdrawal_store(params: Path | None, as_role: str | None) -> tuple[Settings, GovernedStore]:
    """The settings, and a store acting for the withdrawal purpose as the resolved role (exit 2 if it may not)."""
    from governance.session import open_store

    settings = _settings(params)
    return settings, open_store(settings, acting_role(settings, as_role, "withdrawal"), "withdrawal")


@consent_app.command("withdraw")
def withdraw(caller_id: CallerOption, json_out: JsonOption = False, params: ParamsOption = None,
             as_role: RoleOption = None) -> None:
    """Take every call of the caller out of training now, and keep their new calls out until a grant.

    Example: voiceloop consent withdraw --caller-id +15550001234 --as compliance-officer
    """
    from flows.erase import carry_out_withdrawal
    from governance.access import AccessDenied
    from governance.consent import withdraw_caller
    from qa.studio import StudioError
    from qa.studio_api import StudioApiError

    settings, store = _withdrawal_store(params, as_role)
    caller = caller_option_value(caller_id)
    try:
        withdrawal = withdraw_caller(store, caller)
        with step_progress("withdrawing", transient=json_out) as on_step:
            outcome = carry_out_withdrawal(settings, store, withdrawal, caller, on_step=on_step)
    except AccessDenied as error:
        _fail(str(error), 2)
    except (StudioError, StudioApiError) as error:
        _fail(f"{error}. The withdrawal is recorded and stopped at its QA step (the caller's review tasks in Label "
              "Studio); the next `voiceloop retrain` finishes it (its step after ingest carries out pending "
              "withdrawals) once Label Studio answers")
    if json_out:
        print_json({"certificate_file": str(outcome.path), **outcome.certificate})
    else:
        Console().print(certificate_table(outcome.certificate, outcome.path))


@consent_app.command("grant")
def grant(caller_id: CallerOption, json_out: JsonOption = False, params: ParamsOption = None,
          as_role: RoleOption = None) -> None:
    """Record that the caller consents again: their calls from now on are ingested (withdrawn ones stay out).

    Example: voiceloop consent grant --caller-id +15550001234 --as compliance-officer
    """
    from governance.consent import grant_caller

    _, store = _withdrawal_store(params, as_role)
    entry = grant_caller(store, caller_option_value(caller_id))
    if json_out:
        print_json(entry)
    else:
        console.print(f"consent recorded at {entry['at'][:19]}: the caller's new calls are ingested again")


@consent_app.command("status")
def status(caller_id: CallerOption, json_out: JsonOption = False, params: ParamsOption = None,
           as_role: RoleOption = None) -> None:
    """The caller's withdrawals and grants, oldest first (needs purpose audit; the read is recorded).

    Example: voiceloop consent status --caller-id - --json --as compliance-officer < caller-id.txt
    """
    from governance.consent import consent_history, is_withdrawn
    from governance.session import open_store

    settings = _settings(params)
    caller = caller_option_value(caller_id)
    history = read_audit_trail(
        settings, as_role, "consent status",
        lambda _log, role: consent_history(open_store(settings, role, "audit"), caller), caller=caller)
    if json_out:
        print_json({"history": history, "withdrawn": is_withdrawn(history)})
        return
    if not history:
        console.print("no withdrawal recorded: the caller's consent is what each call's document says")
    for entry in history:
        console.print(f"{entry['at'][:19]}  {entry['status']}  {entry.get('withdrawal_id', '')}")
