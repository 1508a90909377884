"""Scheduling against a real local Prefect server: no mocks, the flow itself is never run.

One server per module (start-up dominates: 15-30 s on a fresh database on the shared 2 cores). Its scheduler
loop is lowered to 1 s so a Scheduled run appears within seconds instead of a minute.
"""

from __future__ import annotations

import ast
import importlib.util
import inspect
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID
from zoneinfo import ZoneInfo

import pytest

from flows.schedule import (
    DEADLINES,
    FLOW_NAME,
    JOBS,
    InvalidScheduleError,
    Job,
    list_schedules,
    schedule_retrain,
    schedule_side_jobs,
    served_deployment,
    validate_cron,
)
from flows.server import (
    ServerError,
    ensure_server,
    is_healthy,
    project_server_url,
    read_state,
    stop_server,
)

SERVER_ENV = {
    "PREFECT_SERVER_SERVICES_SCHEDULER_LOOP_SECONDS": "1",
    "PREFECT_SERVER_SERVICES_SCHEDULER_RECENT_DEPLOYMENTS_LOOP_SECONDS": "1",
    "PREFECT_SERVER_UI_ENABLED": "false",  # faster start; nobody looks at it in a test
}
WAIT_S = 60


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _server_pids(port: int) -> list[int]:
    """Processes whose command line is a ``prefect server start ... --port <port>``."""
    pids = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            args = cmdline.read_bytes().split(b"\0")
        except OSError:
            continue
        if b"server" in args and b"--port" in args and str(port).encode() in args:
            pids.append(int(cmdline.parent.name))
    return pids


def _scheduled_runs(api_url: str, deployment_id: str) -> list[Any]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings({PREFECT_API_URL: api_url}), get_client(sync_client=True) as client:
        runs = client.read_flow_runs(
            deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[UUID(deployment_id)]))
        )
    return [r for r in runs if r.state is not None and r.state.name == "Scheduled"]


def _wait_for(predicate: Any, what: str, timeout_s: float = WAIT_S) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        result = predicate()
        if result:
            return result
        time.sleep(0.5)
    pytest.fail(f"timed out after {timeout_s} s waiting for {what}")


@pytest.fixture(scope="module", autouse=True)
def no_ambient_api() -> Iterator[None]:
    """No ``PREFECT_API_URL``, from the environment or a Prefect test harness active in the session."""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with pytest.MonkeyPatch.context() as mp, temporary_settings(restore_defaults={PREFECT_API_URL}):
        mp.delenv("PREFECT_API_URL", raising=False)
        yield


@pytest.fixture(scope="module")
def server(no_ambient_api: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, str]]:
    project = tmp_path_factory.mktemp("schedule-project")
    port = _free_port()
    url = ensure_server(project, port=port, timeout_s=90, env=SERVER_ENV)
    try:
        yield project, url
    finally:
        assert stop_server(project) is True
        assert _server_pids(port) == []
        assert not is_healthy(url)
        assert read_state(project) is None


@pytest.mark.parametrize("job", JOBS, ids=lambda job: job.flow_name)
def test_proxy_signature_matches_the_real_flow(job: Job) -> None:
    """Deployments are registered from a proxy of each flow's signature (no heavy import): keep in sync."""
    module, func = job.entrypoint.rsplit(".", 1)
    spec = importlib.util.find_spec(module)  # locates the file without importing torch & co
    assert spec is not None and spec.origin is not None
    source = Path(spec.origin).read_text()
    (real,) = [n for n in ast.walk(ast.parse(source)) if isinstance(n, ast.FunctionDef) and n.name == func]
    names = [
        kw.value.value
        for dec in real.decorator_list
        if isinstance(dec, ast.Call)
        for kw in dec.keywords
        if kw.arg == "name" and isinstance(kw.value, ast.Constant)
    ]
    assert names == [job.flow_name]
    params = list(inspect.signature(job.signature).parameters.values())
    assert [a.arg for a in real.args.args] == [p.name for p in params]
    assert [ast.literal_eval(d) for d in real.args.defaults] == [p.default for p in params]
    assert [ast.unparse(a.annotation) for a in real.args.args if a.annotation] == [p.annotation for p in params]


def test_bad_cron_is_rejected_before_contacting_a_server() -> None:
    for bad in ["61 * * * *", "not a cron", "* * * *", "* * * * * *", "0 3 * * 8"]:
        with pytest.raises(InvalidScheduleError, match="Invalid cron"):
            schedule_retrain(bad, api_url="http://127.0.0.1:9/api")  # nothing listens there
    with pytest.raises(InvalidScheduleError, match="Invalid timezone"):
        validate_cron("0 3 * * 1", timezone="Mars/Olympus_Mons")
    validate_cron("0 3 * * 1", timezone="Europe/Paris")
    validate_cron("@weekly")


def test_busy_port_gives_a_clear_error(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        with pytest.raises(ServerError, match=f"Port {port} .* already in use"):
            ensure_server(tmp_path, port=port)


def test_start_timeout_names_the_log_and_leaves_no_process(tmp_path: Path) -> None:
    port = _free_port()
    with pytest.raises(ServerError, match="not healthy within") as err:
        ensure_server(tmp_path, port=port, timeout_s=0.5, env=SERVER_ENV)
    assert str(tmp_path / "prefect" / "server.log") in str(err.value)
    assert _server_pids(port) == []
    assert read_state(tmp_path) is None
    assert project_server_url(tmp_path) is None


def test_recorded_server_is_reused(server: tuple[Path, str]) -> None:
    project, url = server
    pid = read_state(project)["pid"]  # type: ignore[index]
    assert ensure_server(project, port=_free_port(), timeout_s=10) == url
    assert read_state(project)["pid"] == pid  # type: ignore[index]
    assert project_server_url(project) == url
    assert (project / "prefect" / "server" / "prefect.db").is_file()  # not the ephemeral API's db


def test_user_api_url_wins_and_is_health_checked(
    server: tuple[Path, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PREFECT_API_URL", server[1])
    assert ensure_server(tmp_path) == server[1]
    assert read_state(tmp_path) is None  # nothing started for this project
    monkeypatch.setenv("PREFECT_API_URL", "http://127.0.0.1:9/api")
    with pytest.raises(ServerError, match="PREFECT_API_URL=.* not healthy"):
        ensure_server(tmp_path)


def test_cron_schedule_creates_scheduled_runs(server: tuple[Path, str], tmp_path: Path) -> None:
    _, url = server
    info = schedule_retrain("* * * * *", name="every-minute", api_url=url)
    assert info.name == f"{FLOW_NAME}/every-minute"
    assert len(info.next_runs) == 3 and info.next_runs[1] - info.next_runs[0] == timedelta(minutes=1)

    runs = _wait_for(lambda: _scheduled_runs(url, info.deployment_id), "a Scheduled run")
    assert all(str(r.deployment_id) == info.deployment_id for r in runs)
    assert all(r.expected_start_time.second == 0 for r in runs)

    # Re-scheduling updates the same deployment and drops the old schedule's runs.
    params = tmp_path / "params.yaml"
    params.write_text("gate:\n  margin: 0.02\n")
    updated = schedule_retrain(
        "0 3 * * 1", name="every-minute", timezone="Europe/Paris", params_file=str(params), api_url=url
    )
    assert updated.deployment_id == info.deployment_id

    def weekly_only() -> list[Any]:
        # Prefect drops the old schedule's future runs. Runs its scheduler was already writing from the old
        # schedule when the update landed (seen twice under CI load) stay Scheduled; it writes them at most
        # an hour ahead (its minimum scheduling horizon), so only runs more than 2 hours ahead are judged.
        soon = datetime.now(UTC) + timedelta(hours=2)
        runs = [r for r in _scheduled_runs(url, info.deployment_id) if r.expected_start_time > soon]
        local = [r.expected_start_time.astimezone(ZoneInfo("Europe/Paris")) for r in runs]
        ok = all((t.weekday(), t.hour, t.minute) == (0, 3, 0) for t in local)
        return runs if runs and ok else []

    _wait_for(weekly_only, "only Monday 03:00 Europe/Paris runs")
    (listed,) = [s for s in list_schedules(url) if s.deployment_id == info.deployment_id]
    assert (listed.cron, listed.timezone, listed.paused) == ("0 3 * * 1", "Europe/Paris", False)
    assert listed.parameters == {"params_file": str(params.resolve())}
    assert listed.next_runs and listed.next_runs[0].astimezone(ZoneInfo("Europe/Paris")).hour == 3

    # What --serve would run: the server's schedule and parameters, not defaults.
    served = served_deployment(url, "every-minute")
    assert served.entrypoint == "flows.retrain.retrain"
    assert served.parameters == listed.parameters
    assert [s.schedule.cron for s in served.schedules or []] == ["0 3 * * 1"]  # type: ignore[union-attr]


def test_params_file_must_exist(server: tuple[Path, str], tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="params file not found"):
        schedule_retrain("0 3 * * 1", params_file=str(tmp_path / "missing.yaml"), api_url=server[1])


def test_serve_keeps_the_schedule(server: tuple[Path, str], tmp_path: Path) -> None:
    """The runner starts without a work pool and, stopped, leaves the schedule on.

    Nothing is due (Mondays 03:00), so the flow is never executed.
    """
    _, url = server
    info = schedule_retrain("0 3 * * 1", name="served", api_url=url)
    code = f"from flows.schedule import serve_deployments; serve_deployments(name='served', api_url={url!r})"
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    env["PREFECT_HOME"] = str(tmp_path / "runner-home")
    log = tmp_path / "runner.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-c", code], cwd=Path(__file__).parents[1], env=env, stdout=out, stderr=out,
            # a terminal's Ctrl-C: whatever the test process inherited, the runner gets the default handler
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )
    try:
        _wait_for(lambda: proc.poll() is not None or "being served" in log.read_text(), "the runner", 45)
        assert proc.poll() is None, log.read_text()
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            ignored = [line for line in Path(f"/proc/{proc.pid}/status").read_text().splitlines()
                       if line.startswith(("SigIgn", "SigCgt"))]
            raise AssertionError(f"the runner ignored Ctrl-C ({ignored})") from None
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    (listed,) = [s for s in list_schedules(url) if s.deployment_id == info.deployment_id]
    assert (listed.cron, listed.paused) == ("0 3 * * 1", False)


def test_schedule_also_deploys_retention_the_deadline_check_and_the_monitor(server: tuple[Path, str],
                                                                            tmp_path: Path) -> None:
    """The side jobs get their own deployment and cron; one deadline-check run is triggered now with
    run_deployment (not left to the scheduler) and executed by a runner serving the stored deployment."""
    from prefect.deployments import run_deployment
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from core.settings import load_settings
    from governance.audit import open_audit
    from tests.conftest import write_params

    _, url = server
    params = write_params(tmp_path)
    infos = schedule_side_jobs(params_file=str(params), api_url=url)
    assert [(i.name, i.cron) for i in infos] == [("voiceloop-retention/retention", "0 2 * * *"),
                                                ("voiceloop-deadline-check/deadline-check", "0 7 * * *"),
                                                ("voiceloop-monitor/monitor", "0 6 * * *")]
    listed = {s.name: s for s in list_schedules(url)}
    for info in infos:
        assert (listed[info.name].cron, listed[info.name].parameters) == (info.cron, {"params_file": str(params)})

    code = ("from prefect import serve; from flows.schedule import DEADLINES, served_deployment; "
            f"serve(served_deployment({url!r}, DEADLINES.default_name, DEADLINES))")
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    env |= {"PREFECT_HOME": str(tmp_path / "runner-home"), "PREFECT_API_URL": url}
    log = tmp_path / "runner.log"
    with open(log, "wb") as out:
        runner = subprocess.Popen([sys.executable, "-c", code], cwd=Path(__file__).parents[1], env=env,
                                  stdout=out, stderr=out)
    try:
        _wait_for(lambda: runner.poll() is not None or "being served" in log.read_text(), "the runner", 60)
        assert runner.poll() is None, log.read_text()
        with temporary_settings({PREFECT_API_URL: url}):
            run = run_deployment(f"{DEADLINES.flow_name}/{DEADLINES.default_name}", timeout=240)
        assert run.state is not None and run.state.is_completed(), (run.state, log.read_text()[-3000:])
    finally:
        runner.terminate()
        runner.wait(60)
    entries = list(open_audit(load_settings(params)).entries(role="compliance-officer"))
    assert entries, "the deadline check ran against the project as compliance-officer"


def test_a_new_asr_alert_asks_for_a_retrain_run_when_on_alert_says_so(
    server: tuple[Path, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``monitor.on_alert: retrain``: the monitor's new ASR/intent alert creates one run of the retrain deployment
    (tagged on-alert, not from the schedule); other alerts, or on_alert none, create nothing."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from core.settings import MonitorConfig, Settings
    from flows.monitor import on_alert_actions
    from flows.schedule import DEFAULT_NAME

    _, url = server
    alert = {"component": "asr", "alert_id": "al-20261107-abc", "slice": "channel=gsm-noisy8k"}
    settings = Settings(project_dir=str(tmp_path), monitor=MonitorConfig(on_alert="retrain"))
    monkeypatch.setenv("PREFECT_API_URL", url)
    [missing] = on_alert_actions(settings, [alert])  # no other test deploys the default name
    assert "could not start" in missing and "No deployment voiceloop-retrain/weekly-retrain" in missing
    info = schedule_retrain("0 3 * * 1", name=DEFAULT_NAME, api_url=url)

    def manual_runs() -> list[Any]:
        with temporary_settings({PREFECT_API_URL: url}), get_client(sync_client=True) as client:
            runs = client.read_flow_runs(
                deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[UUID(info.deployment_id)])))
        return [r for r in runs if "on-alert" in r.tags and not r.auto_scheduled]

    before = len(manual_runs())
    [note] = on_alert_actions(settings, [alert])
    assert "asked" in note and url in note
    assert len(manual_runs()) == before + 1
    assert on_alert_actions(settings, [{**alert, "component": "serving"}]) == []
    assert on_alert_actions(Settings(project_dir=str(tmp_path)), [alert]) == [], "on_alert defaults to none"
    monkeypatch.setenv("PREFECT_API_URL", "http://127.0.0.1:9/api")
    [refused] = on_alert_actions(settings, [alert])
    assert refused.startswith("on_alert=retrain: could not start")
