"""Scheduled jobs: cron schedules on Prefect deployments of the ``retrain`` flow and, beside it, of
retention and the deadline check (``flows/governance_jobs.py``) and the monitor (``flows/monitor.py``),
each a :class:`Job` of ``JOBS``.

Three pieces, and who does what:

* **Prefect server** (``flows.server.ensure_server``): stores the deployment and its cron
  schedule; its *scheduler* service turns the schedule into flow runs in state ``Scheduled``
  (up to ~100 runs / 100 days ahead). It is your ``PREFECT_API_URL`` if set, else a
  project-local ``prefect server start`` kept running in the background
  (``<project>/prefect/server.json``, log in ``<project>/prefect/server.log``).
* **Deployment** ``voiceloop-retrain/<name>`` (``schedule_retrain``): the flow's import path
  (``flows.retrain.retrain``), its default parameters and the cron schedule. It is a *served*
  deployment: no work pool or worker is involved. ``schedule_side_jobs`` deploys
  ``voiceloop-retention/retention``, ``voiceloop-deadline-check/deadline-check`` and
  ``voiceloop-monitor/monitor`` (daily at 06:00 UTC by default) the same way.
* **Runner** (``serve_deployments`` / ``voiceloop schedule --serve``): a long-running process
  that polls the server and executes the deployments' due runs (the retrain's, and the side
  jobs' when deployed) in subprocesses on this machine. The server only *creates* runs; without
  a runner they stay Scheduled and turn ``Late``, and are picked up when a runner starts.

Typical use: ``voiceloop schedule --cron "0 3 * * 1"`` (every Monday 03:00 UTC) once, then
keep ``voiceloop schedule --cron "0 3 * * 1" --serve`` running (systemd, tmux, a container).
Re-running ``schedule_retrain`` with another cron updates the same deployment in place and
drops the runs the old schedule had created.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

if TYPE_CHECKING:
    from prefect.client.orchestration import SyncPrefectClient
    from prefect.client.schemas.responses import DeploymentResponse
    from prefect.deployments.runner import RunnerDeployment

FLOW_NAME = "voiceloop-retrain"
DEFAULT_NAME = "weekly-retrain"


class InvalidScheduleError(ValueError):
    """The cron expression or timezone cannot be scheduled."""


@dataclass(frozen=True)
class ScheduleInfo:
    """A retrain deployment as the server sees it."""

    deployment_id: str
    name: str  # full deployment name: "voiceloop-retrain/<name>"
    cron: str | None
    timezone: str | None
    next_runs: list[datetime] = field(default_factory=list)
    paused: bool = False
    parameters: dict[str, Any] = field(default_factory=dict)


def validate_cron(cron: str, timezone: str = "UTC") -> None:
    """Reject what Prefect's server would reject, with a message a CLI user can act on.

    Standard 5-field cron (minute hour day-of-month month day-of-week) or an ``@daily``-style
    alias; Prefect's croniter would also take a 6th (seconds) field, which we refuse since
    the scheduler works in minutes.
    """
    from prefect.server.schemas.schedules import CronSchedule

    text = cron.strip()
    fields = text.split()
    hint = 'use 5 fields "minute hour day-of-month month day-of-week", e.g. "0 3 * * 1" (Mondays 03:00)'
    if not text.startswith("@") and len(fields) != 5:
        raise InvalidScheduleError(f"Invalid cron {cron!r}: {len(fields)} field(s); {hint}")
    try:
        ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise InvalidScheduleError(
            f"Invalid timezone {timezone!r}: use an IANA name such as 'UTC' or 'Europe/Paris'"
        ) from exc
    try:
        CronSchedule(cron=text, timezone=timezone)
    except ValueError as exc:  # pydantic.ValidationError is a ValueError
        raise InvalidScheduleError(f"Invalid cron {cron!r}: {hint}") from exc


def next_fire_times(
    cron: str, timezone: str = "UTC", n: int | None = 3, until: datetime | None = None
) -> list[datetime]:
    """The next ``n`` times the cron fires (or every time up to ``until``), computed by the server's own
    schedule code."""
    from prefect.server.schemas.schedules import CronSchedule
    from prefect.utilities.asyncutils import run_coro_as_sync

    try:
        coro = CronSchedule(cron=cron, timezone=timezone).get_dates(n=n, end=until)
        dates = cast("list[datetime] | None", run_coro_as_sync(coro))
    except Exception:  # display only: never fail scheduling over it
        return []
    return [datetime.fromtimestamp(d.timestamp(), tz=UTC) for d in dates or []]


@contextlib.contextmanager
def _client(api_url: str) -> Iterator[SyncPrefectClient]:
    """A client bound to ``api_url`` (not the ambient/ephemeral API) for this block only."""
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings({PREFECT_API_URL: api_url}), get_client(sync_client=True) as client:
        yield client


def _retrain_signature(params_file: str | None = None, role: str = "pipeline") -> None:
    """Mirror of ``flows.retrain.retrain``'s parameters (a test compares the two).

    Registering a schedule only needs the flow's name, parameters and import path; importing
    the real module would load torch, transformers, MLflow and Great Expectations (15-20 s
    here) just to write a database row. Runs still execute the real flow: the runner imports
    the job's entry point in each run's subprocess.
    """


def _governance_signature(params_file: str | None = None, role: str = "compliance-officer") -> None:
    """Mirror of the parameters of ``flows.governance_jobs``' two flows (a test compares them)."""


@dataclass(frozen=True)
class Job:
    """A flow that ``voiceloop schedule`` deploys: its name, import path, parameters and default cron."""

    flow_name: str
    entrypoint: str  # module.function, imported by the runner in each run's subprocess
    signature: Callable[..., None]  # a light mirror of the flow's parameters
    description: str
    default_cron: str | None = None  # None: the schedule must be given (the retrain's)

    @property
    def default_name(self) -> str:
        return DEFAULT_NAME if self is RETRAIN else self.flow_name.removeprefix("voiceloop-")

    def version(self) -> str | None:
        """Hash of the flow's file, as Prefect computes a flow's default version."""
        import importlib.util

        from prefect.utilities.hashing import file_hash

        spec = importlib.util.find_spec(self.entrypoint.rsplit(".", 1)[0])
        return file_hash(spec.origin) if spec and spec.origin else None


RETRAIN = Job(FLOW_NAME, "flows.retrain.retrain", _retrain_signature,
              "Pull new calls, redact, validate, build datasets, fine-tune, gate and promote.")
RETENTION = Job("voiceloop-retention", "flows.governance_jobs.retention_job", _governance_signature,
                "Delete raw call data past its retention window.", default_cron="0 2 * * *")
DEADLINES = Job("voiceloop-deadline-check", "flows.governance_jobs.deadline_check_job", _governance_signature,
                "Audit overdue erasure requests and an overdue stale champion; roll back when configured.",
                default_cron="0 7 * * *")
MONITOR = Job("voiceloop-monitor", "flows.monitor.monitor", _retrain_signature,
              "Watch production: new calls' signals, the days' figures, label-free estimates, alerts to owners.",
              default_cron="0 6 * * *")
JOBS = (RETRAIN, RETENTION, DEADLINES, MONITOR)
#: The jobs deployed beside the retrain, each on its own cron: retention, the deadline check, the monitor.
SIDE_JOBS = (RETENTION, DEADLINES, MONITOR)
ENTRYPOINT = RETRAIN.entrypoint


def _runner_deployment(name: str, schedules: list[Any], parameters: dict[str, Any],
                       job: Job = RETRAIN) -> RunnerDeployment:
    from prefect import Flow
    from prefect.types.entrypoint import EntrypointType

    proxy: Flow[..., None] = Flow(job.signature, name=job.flow_name)
    # MODULE_PATH: runners import the installed package, whatever their cwd.
    deployment = cast(
        "RunnerDeployment",  # sync call: async_dispatch returns the object itself
        proxy.to_deployment(
            name=name,
            schedules=schedules,
            parameters=parameters,
            entrypoint_type=EntrypointType.MODULE_PATH,
            description=job.description,
            tags=["voiceloop", "scheduled"],
            version=job.version(),
        ),
    )
    deployment.entrypoint = job.entrypoint
    return deployment


def _build(cron: str, name: str, timezone: str, params_file: str | None,
           job: Job = RETRAIN) -> tuple[RunnerDeployment, dict[str, Any]]:
    from prefect.schedules import Cron

    validate_cron(cron, timezone)
    parameters: dict[str, Any] = {}
    if params_file is not None:
        path = Path(params_file).expanduser().resolve()  # runs start later, from another cwd
        if not path.is_file():
            raise FileNotFoundError(f"params file not found: {path}")
        parameters["params_file"] = str(path)
    return _runner_deployment(name, [Cron(cron.strip(), timezone=timezone)], parameters, job), parameters


def schedule_retrain(
    cron: str,
    *,
    name: str = DEFAULT_NAME,
    timezone: str = "UTC",
    params_file: str | None = None,
    api_url: str,
    job: Job = RETRAIN,
) -> ScheduleInfo:
    """Create or update the deployment ``<job's flow>/<name>`` (the retrain's by default) with this cron schedule.

    Raises :class:`InvalidScheduleError` (a ValueError) before any server is contacted.
    """
    from prefect.settings import PREFECT_API_URL, temporary_settings

    deployment, parameters = _build(cron, name, timezone, params_file, job)
    with temporary_settings({PREFECT_API_URL: api_url}):
        deployment_id = deployment.apply()
    return ScheduleInfo(
        deployment_id=str(deployment_id),
        name=f"{job.flow_name}/{name}",
        cron=cron.strip(),
        timezone=timezone,
        next_runs=next_fire_times(cron.strip(), timezone),
        parameters=parameters,
    )


def schedule_side_jobs(crons: dict[Job, str] | None = None, *, timezone: str = "UTC",
                       params_file: str | None = None, api_url: str,
                       jobs: tuple[Job, ...] = SIDE_JOBS) -> list[ScheduleInfo]:
    """Deploy the jobs beside the retrain (``jobs``: retention, the deadline check, the monitor), each on its own
    cron (``crons``, else the job's default)."""
    crons = crons or {}
    for job in jobs:  # every cron checked before anything is applied
        validate_cron(crons.get(job) or str(job.default_cron), timezone)
    return [schedule_retrain(crons.get(job) or str(job.default_cron), name=job.default_name, timezone=timezone,
                             params_file=params_file, api_url=api_url, job=job) for job in jobs]


def _info(client: SyncPrefectClient, deployment: DeploymentResponse, n: int = 3) -> ScheduleInfo:
    from prefect.client.schemas.filters import (
        DeploymentFilter,
        DeploymentFilterId,
        FlowRunFilter,
        FlowRunFilterExpectedStartTime,
        FlowRunFilterState,
        FlowRunFilterStateName,
    )
    from prefect.client.schemas.schedules import CronSchedule
    from prefect.client.schemas.sorting import FlowRunSort

    cron = timezone = None
    for item in deployment.schedules:
        if item.active and isinstance(item.schedule, CronSchedule):
            cron, timezone = item.schedule.cron, item.schedule.timezone
            break
    runs = client.read_flow_runs(
        deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[deployment.id])),
        flow_run_filter=FlowRunFilter(
            state=FlowRunFilterState(name=FlowRunFilterStateName(any_=["Scheduled"])),
            expected_start_time=FlowRunFilterExpectedStartTime(after_=cast(Any, datetime.now(UTC))),
        ),
        sort=FlowRunSort.EXPECTED_START_TIME_ASC,
        limit=100,
    )
    next_runs: list[datetime] = [r.expected_start_time for r in runs if r.expected_start_time is not None]
    if next_runs and cron:
        # Only runs of the schedule in force: a re-schedule can leave a few runs of the old one that Prefect's
        # scheduler was writing while the update landed (they still run, but they are not this schedule's).
        fires = {t.timestamp() for t in next_fire_times(cron, timezone or "UTC", None, until=max(next_runs))}
        next_runs = [t for t in next_runs if t.timestamp() in fires]
    next_runs = next_runs[:n]
    if not next_runs and cron:  # scheduler has not run yet: show what it will create
        next_runs = next_fire_times(cron, timezone or "UTC", n)
    flow_names = {job.entrypoint: job.flow_name for job in JOBS}
    return ScheduleInfo(
        deployment_id=str(deployment.id),
        name=f"{flow_names.get(str(deployment.entrypoint), FLOW_NAME)}/{deployment.name}",
        cron=cron,
        timezone=timezone,
        next_runs=next_runs,
        paused=bool(deployment.paused),
        parameters=dict(deployment.parameters or {}),
    )


def list_schedules(api_url: str) -> list[ScheduleInfo]:
    """All deployments of voiceloop's jobs on the server (retrain, retention, deadline check), with their
    next Scheduled runs."""
    from prefect.client.schemas.filters import FlowFilter, FlowFilterName

    with _client(api_url) as client:
        deployments = client.read_deployments(
            flow_filter=FlowFilter(name=FlowFilterName(any_=[job.flow_name for job in JOBS])))
        return [_info(client, d) for d in sorted(deployments, key=lambda d: (str(d.entrypoint), d.name))]


def _stored_deployment(client: SyncPrefectClient, api_url: str, name: str, job: Job) -> DeploymentResponse:
    """The deployment ``job.flow_name/name`` as the server holds it; ``LookupError`` saying how to make it."""
    from prefect.exceptions import ObjectNotFound

    try:
        return client.read_deployment_by_name(f"{job.flow_name}/{name}")
    except ObjectNotFound:
        raise LookupError(f"No deployment {job.flow_name}/{name} at {api_url}: run schedule_retrain "
                          "(voiceloop schedule --cron ...) first") from None


def served_deployment(api_url: str, name: str = DEFAULT_NAME, job: Job = RETRAIN) -> RunnerDeployment:
    """The deployment as stored on the server, rebuilt for ``prefect.serve``.

    ``serve`` re-applies what it is given, so it must get the server's current schedules and
    parameters, not defaults that would silently replace them.
    """
    from prefect.client.schemas.actions import DeploymentScheduleCreate
    with _client(api_url) as client:
        stored = _stored_deployment(client, api_url, name, job)
    schedules = [
        DeploymentScheduleCreate(
            schedule=s.schedule,
            active=s.active,
            max_scheduled_runs=s.max_scheduled_runs,
            parameters=s.parameters,
            slug=s.slug,
        )
        for s in stored.schedules
    ]
    return _runner_deployment(name, schedules, dict(stored.parameters or {}), job)


def request_run(api_url: str, name: str = DEFAULT_NAME, job: Job = RETRAIN, tag: str = "on-alert") -> str:
    """Ask the server for a run of ``job``'s deployment ``name`` now; the runner serving it executes it.

    Returns the run's id. ``LookupError`` when the deployment does not exist there.
    """
    with _client(api_url) as client:
        run = client.create_flow_run_from_deployment(_stored_deployment(client, api_url, name, job).id, tags=[tag])
    return str(run.id)


def serve_deployments(
    cron: str | None = None,
    *,
    name: str = DEFAULT_NAME,
    timezone: str = "UTC",
    params_file: str | None = None,
    api_url: str | None = None,
    limit: int | None = 1,
    pause_on_shutdown: bool = False,
) -> None:
    """Block and execute the deployment's due runs from this process (until Ctrl-C).

    With ``cron`` the deployment is (re)applied with these arguments, as ``schedule_retrain``
    would; without it, it is served exactly as stored on the server. ``api_url`` defaults to
    the ambient ``PREFECT_API_URL``. ``limit=1``: two retrains must not overlap.
    ``pause_on_shutdown=False`` (Prefect's default is True): stopping the runner should not
    silently switch the schedule off; runs missed meanwhile go Late and are executed when a
    runner is back.
    """
    from prefect import serve
    from prefect.settings import PREFECT_API_URL, temporary_settings

    url = api_url or PREFECT_API_URL.value()
    if not url:
        raise ValueError("serve_deployments needs api_url (from flows.server.ensure_server) or PREFECT_API_URL")
    if cron is not None:
        deployment, _ = _build(cron, name, timezone, params_file)
    else:
        deployment = served_deployment(url, name)
    deployments = [deployment]
    for job in SIDE_JOBS:  # retention, the deadline check and the monitor, as stored, when they are deployed
        with contextlib.suppress(LookupError):
            deployments.append(served_deployment(url, job.default_name, job))
    # The runner passes the current settings (API URL included) on to each run's subprocess.
    with temporary_settings({PREFECT_API_URL: url}):
        serve(*deployments, limit=limit, pause_on_shutdown=pause_on_shutdown)
