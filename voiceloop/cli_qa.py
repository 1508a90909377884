"""``voiceloop qa``: the weekly QA review of production calls, from sample to Label Studio and back as labels.

The week's loop (docs/qa.md): ``qa sample --week W`` draws the calls to review, ``qa serve``
starts the project's Label Studio (or use an existing one: ``qa.label_studio_url``), ``qa push``
puts the sample there, reviewers answer, ``qa pull`` brings finished reviews back as labels. For
the demo, ``qa simulate-review --truth DIR`` answers as three reviewers from the simulator's truth.
Every command acts for the purpose ``labelling`` (roles ml-engineer, reviewer, admin).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, TypeVar

import typer

from voiceloop.cli_common import JsonOption, ParamsOption, RoleOption, acting_role, console, fail, load, print_json

if TYPE_CHECKING:
    from core.settings import Settings
    from qa.studio import LocalLabelStudio

commands = typer.Typer()
qa_app = typer.Typer(help="The weekly QA review in Label Studio: sample, serve, push, pull (docs/qa.md).",
                     no_args_is_help=True)
commands.add_typer(qa_app, name="qa")

T = TypeVar("T")
WeekOption = Annotated[str, typer.Option("--week", help="ISO week, e.g. 2026-W49")]
PURPOSE = "labelling"


def _role(params: Path | None, as_role: str | None) -> tuple[Settings, str]:
    settings = load(params)
    return settings, acting_role(settings, as_role, PURPOSE)


def _studio_step(run: Callable[[], T], json_out: bool, describe: Callable[[T], str]) -> None:
    """Run a step that talks to Label Studio; its failures (unreachable, refused, no sample) end the command."""
    from qa.studio import StudioError
    from qa.studio_api import StudioApiError

    try:
        summary = run()
    except (StudioError, StudioApiError, LookupError) as error:
        fail(str(error))
    if json_out:
        print_json(asdict(summary))  # type: ignore[call-overload]  # T: a summary dataclass
    else:
        console.print(describe(summary))


@qa_app.command("sample")
def sample(week: WeekOption, budget: Annotated[float | None, typer.Option(help="expected calls to review; default "
                                                                          "qa.sampling.budget")] = None,
           params: ParamsOption = None, as_role: RoleOption = None, json_out: JsonOption = False) -> None:
    """Draw the week's review sample from the monitor's per-call records (once per week; audited).

    Every call of the week has a known chance of selection: an even random floor (reviewed blind),
    more for risky calls (low confidence, escalated, repeated, negative ending), and calls of slices
    the monitor alerted on first, up to a cap. Example: voiceloop qa sample --week 2026-W49 --budget 60
    """
    settings, role = _role(params, as_role)
    from flows.qa_sample import sample_week
    from qa.weeks import BadWeek

    try:
        summary = sample_week(settings, role, week, budget)
    except (BadWeek, LookupError) as error:
        fail(str(error), 2)
    if json_out:
        print_json(asdict(summary))
        return
    again = " (drawn before: the week's sample is fixed)" if summary.existing else ""
    console.print(f"{summary.week}: {summary.selected} of {summary.frame} calls sampled{again} (expected "
                  f"{summary.expected_size:g}); {summary.blind} blind, {summary.double} for two reviewers, "
                  f"{summary.alerted} from alerted slices {', '.join(summary.alerted_slices) or '(none)'}")


@qa_app.command("push")
def push(week: WeekOption, params: ParamsOption = None, as_role: RoleOption = None,
         json_out: JsonOption = False) -> None:
    """Put the week's sampled calls into Label Studio as review tasks (redacted audio and text only; audited).

    Blind calls carry no answer; the others, the champion's transcript and intent to correct. A call pushed
    before is not pushed again. Example: voiceloop qa push --week 2026-W49 --as ml-engineer
    """
    settings, role = _role(params, as_role)
    from flows.qa_review import PushSummary, push_week

    def done(summary: PushSummary) -> str:
        return (f"{summary.week}: {summary.pushed} tasks pushed to project {summary.project_id} ({summary.blind} "
                f"blind), {summary.already} pushed before"
                + (f"; {len(summary.no_audio)} without redacted audio (text only)" if summary.no_audio else ""))

    _studio_step(lambda: push_week(settings, role, week, progress=console.print), json_out, done)


@qa_app.command("pull")
def pull(week: Annotated[str | None, typer.Option("--week", help="only this ISO week's tasks")] = None,
         params: ParamsOption = None, as_role: RoleOption = None, json_out: JsonOption = False) -> None:
    """Bring finished reviews back as labels: redacted and leak-checked, reconciled, bad ones quarantined.

    Example: voiceloop qa pull --week 2026-W49 --as reviewer --json
    """
    settings, role = _role(params, as_role)
    from flows.qa_review import PullSummary, pull_reviews

    def done(summary: PullSummary) -> str:
        return (f"{summary.labelled} calls labelled ({summary.already} before), {summary.waiting} waiting for "
                f"answers, {len(summary.adjudication)} for a third reviewer, {len(summary.quarantined)} "
                f"quarantined, {len(summary.pii_flagged)} flagged as still holding PII (redaction misses)")

    _studio_step(lambda: pull_reviews(settings, role, week, progress=console.print), json_out, done)


@qa_app.command("simulate-review")
def simulate_review(truth: Annotated[Path, typer.Option(help="the simulator's --truth folder")],
                    week: Annotated[str | None, typer.Option("--week", help="only this ISO week's tasks")] = None,
                    word_noise: Annotated[float, typer.Option(help="chance a word is misheard")] = 0.03,
                    intent_noise: Annotated[float, typer.Option(help="chance of a wrong intent")] = 0.05,
                    anchoring: Annotated[float, typer.Option(help="chance a pre-filled answer is accepted")] = 0.3,
                    seed: int = 0, params: ParamsOption = None, as_role: RoleOption = None,
                    json_out: JsonOption = False) -> None:
    """For the demo: answer open review tasks through Label Studio's API as three simulated reviewers.

    Example: voiceloop qa simulate-review --truth data/production/truth --week 2026-W49 --as ml-engineer
    """
    settings, role = _role(params, as_role)
    from flows.qa_simulate import simulate_review as simulate
    from qa.simulated_reviewer import ReviewerNoise

    if not truth.is_dir():
        fail(f"{truth} is not a folder: pass the --truth folder `voiceloop simulate-calls --production` wrote", 2)
    summary = simulate(settings, role, truth, ReviewerNoise(word_noise, intent_noise, anchoring), seed, week)
    if json_out:
        print_json(asdict(summary))
        return
    console.print(f"{summary.answered} answers given ({summary.adjudicated} adjudications); "
                  f"{summary.no_truth} tasks without a truth file skipped")


def _studio(params: Path | None) -> LocalLabelStudio:
    from flows.qa_studio import files_root, local_studio
    from governance.session import open_store

    settings = load(params)
    store = open_store(settings, acting_role(settings, None, PURPOSE), PURPOSE)
    return local_studio(settings, files_root(settings, store))


@qa_app.command("serve")
def serve(params: ParamsOption = None) -> None:
    """Start the project's Label Studio on 127.0.0.1 (made in its own virtual environment on first use).

    Its data, log and admin login (credentials.json) live in <project>/label-studio. Example: voiceloop qa serve
    """
    from qa.studio import StudioError

    studio = _studio(params)
    try:
        studio.ensure_installed()
        status = studio.start()
    except StudioError as error:
        fail(str(error))
    console.print(f"Label Studio running at {status.url} (pid {status.pid}); log {status.log_file}. "
                  f"Its admin login is in {studio.folder / 'credentials.json'}.")


@qa_app.command("stop")
def stop(params: ParamsOption = None) -> None:
    """Stop the project's Label Studio (its data stays in the project folder)."""
    stopped = _studio(params).stop()
    console.print("Label Studio stopped" if stopped else "Label Studio was not running")


@qa_app.command("report")
def report(week: WeekOption,
           out: Annotated[Path | None, typer.Option("--out", help="write the HTML page to this file")] = None,
           params: ParamsOption = None, as_role: RoleOption = None, json_out: JsonOption = False) -> None:
    """The week's reviewed intent accuracy, WER and resolved rate per slice, design-weighted, beside the monitor's
    label-free estimates, with reviewer agreement (audited reads). Example: voiceloop qa report --week 2026-W49
    --out qa-2026-W49.html
    """
    settings, role = _role(params, as_role)
    from rich.table import Table

    from flows.qa_report import agreement_text, render_html, summary_rows, week_report
    from qa.weeks import BadWeek

    try:
        result = week_report(settings, role, week)
    except (BadWeek, LookupError) as error:
        fail(str(error), 2)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(render_html(result), encoding="utf-8")
    if json_out:
        print_json(result.to_json())
        return
    table = Table(title=f"{result.week}: {result.reviewed} of {result.sampled} sampled calls reviewed (all calls)")
    for header in ("metric", "estimate", f"{result.level:.0%} interval", "reviewed/sampled", "monitor", "difference",
                   "covered?"):
        table.add_column(header)
    for row in summary_rows(result):
        table.add_row(*row)
    console.print(table)
    console.print(agreement_text(result.agreement))
    if out is not None:
        console.print(f"page written to {out}")
