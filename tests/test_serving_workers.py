"""``voiceloop serve --workers 2``: two processes, one port each, both follow a promotion and a rollback with no
failed request, a call's session lives in the process that took it, and Ctrl-C (SIGINT) stops them both."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest

from serving.workers import parse_cores, plan
from tests.conftest import REPO
from tests.flow_helpers import TrainedProject, project_fixture
from training.registry import CHAMPION, Registry
from training.rollout import promote_by_hand, rollback

project = project_fixture("serving-workers")
BOT_KEY = "k-voice-bot-0123456789"


def _two_free_ports() -> int:
    """A port p with p and p + 1 free on 127.0.0.1."""
    for _ in range(50):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = int(probe.getsockname()[1])
        with socket.socket() as other:
            try:
                other.bind(("127.0.0.1", port + 1))
            except OSError:
                continue
        return port
    raise AssertionError("no two consecutive free ports")


def _until(condition: Any, what: str, seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def _health(url: str) -> dict[str, Any] | None:
    try:
        return httpx.get(f"{url}/healthz", timeout=5).json()  # type: ignore[no-any-return]
    except httpx.HTTPError:
        return None


def test_cores_and_ports_are_planned_one_worker_each() -> None:
    allowed = sorted(os.sched_getaffinity(0))
    assert parse_cores(f"{allowed[0]}-{allowed[0]}") == (allowed[0],)
    with pytest.raises(ValueError, match="not a core number"):
        parse_cores("zero")
    with pytest.raises(ValueError, match="not on this machine"):
        parse_cores("4096")
    assert [(w.port, w.cores) for w in plan(8080, 3, (0, 1))] == [(8080, (0,)), (8081, (1,)), (8082, (0,))]
    assert [w.cores for w in plan(8080, 2)] == [(), ()]


SUPERVISE = """
import sys, time
from serving.workers import Supervisor, plan
command = lambda worker: [sys.executable, "-c", "import time; time.sleep(300)"]
Supervisor(plan(1, 2), command, say=lambda line: print(line, flush=True)).run()
"""


def _running(pid: int) -> bool:
    """Whether ``pid`` exists and is not a zombie (an orphan's reaper may be slow, or absent in a container)."""
    try:
        return " Z" not in Path(f"/proc/{pid}/stat").read_text().split(")")[-1][:3]
    except FileNotFoundError:
        return False


def test_workers_die_with_a_killed_supervisor() -> None:
    supervisor = subprocess.Popen([sys.executable, "-c", SUPERVISE], cwd=REPO, stdout=subprocess.PIPE, text=True,
                                  env={**os.environ, "PYTHONPATH": str(REPO)})
    try:
        assert supervisor.stdout is not None
        lines = [supervisor.stdout.readline() for _ in range(2)]
        pids = [int(line.split("pid ")[1].split(",")[0]) for line in lines]
        assert all(_running(pid) for pid in pids), lines
        supervisor.kill()  # SIGKILL: no handler runs, nothing stops the workers but the kernel
        supervisor.wait()
        _until(lambda: not any(_running(pid) for pid in pids), "the orphaned workers to stop", seconds=20)
    finally:
        if supervisor.poll() is None:
            supervisor.kill()


def test_two_workers_follow_the_champion_without_a_failed_request(project: TrainedProject, tmp_path: Path) -> None:
    registry = Registry(project.settings)
    first = registry.by_alias(CHAMPION)
    assert first is not None and first.run_id
    second = registry.register_bundle(first.run_id, first.components, {"note": "test: workers"}).version
    port = _two_free_ports()
    urls = [f"http://127.0.0.1:{port}", f"http://127.0.0.1:{port + 1}"]
    log = (tmp_path / "serve.log").open("wb")
    server = subprocess.Popen(
        [sys.executable, "-m", "voiceloop.cli", "serve", "--workers", "2", "--port", str(port),
         "--reload-every", "0.2", "--params", str(project.params)],
        cwd=REPO, stdout=log, stderr=subprocess.STDOUT,
        env={**os.environ, "VOICELOOP_API_KEYS": f"bot voice-bot {BOT_KEY}"})
    try:
        _until(lambda: all(_health(url) for url in urls) or server.poll() is not None, "both workers to answer")
        assert server.poll() is None, (tmp_path / "serve.log").read_text()[-3000:]
        assert {_health(url)["champion"] for url in urls} == {first.version}  # type: ignore[index]

        failures: list[str] = []
        served: Counter[tuple[str, str]] = Counter()  # (worker url, bundle)
        stop = threading.Event()

        def client_loop(url: str) -> None:
            with httpx.Client(base_url=url, headers={"X-API-Key": BOT_KEY}, timeout=60) as client:
                while not stop.is_set():
                    try:
                        answer = client.post("/v1/understand", json={"text": "my card payment was declined"})
                    except httpx.HTTPError as error:
                        failures.append(f"{url}: {error!r}")
                        continue
                    if answer.status_code != 200:
                        failures.append(f"{url}: {answer.status_code} {answer.text[:200]}")
                        continue
                    served[(url, answer.json()["bundle"])] += 1

        def each_served(version: str, more_than: int = 0) -> bool:
            return all(served[(url, version)] > more_than for url in urls)

        clients = [threading.Thread(target=client_loop, args=(url,)) for url in urls]
        for thread in clients:
            thread.start()
        try:
            _until(lambda: each_served(first.version, 5), "traffic on both workers")
            promote_by_hand(registry, second, "test: hot reload across workers", "test as admin")
            _until(lambda: each_served(second, 5), "both workers to serve the promoted bundle")
            rollback(registry, "test: rollback across workers", "test as admin")
            seen = {url: served[(url, first.version)] for url in urls}
            _until(lambda: all(served[(url, first.version)] > seen[url] + 5 for url in urls),
                   "both workers to serve the restored bundle")
        finally:
            stop.set()
            for thread in clients:
                thread.join(timeout=60)
        assert failures == []

        # a call's session is in the memory of the process that took its turns: sticky routing is required
        with httpx.Client(headers={"X-API-Key": BOT_KEY}, timeout=60) as bot:
            turn = bot.post(f"{urls[0]}/v1/calls/call-77/turns", json={"text": "I lost my card"})
            assert turn.status_code == 200, turn.text
            assert bot.get(f"{urls[0]}/v1/calls/call-77/handoff").status_code == 200
            elsewhere = bot.get(f"{urls[1]}/v1/calls/call-77/handoff")
            assert elsewhere.status_code == 404 and "no open session for this call" in elsewhere.json()["detail"]
    finally:
        server.send_signal(signal.SIGINT)  # Ctrl-C: the supervisor stops both workers
        code = server.wait(timeout=90)
        log.close()
    assert code == 0, (tmp_path / "serve.log").read_text()[-3000:]
    assert not any(_health(url) for url in urls)
