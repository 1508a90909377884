"""Admission control (serving/admission.py): overload refused at once with 503 + Retry-After, abandoned work dropped.

The queue itself is checked on its own event loop (the rules at the door, a waiter that gives up);
then over real HTTP, on the trained project's champion (uvicorn on 127.0.0.1, httpx clients). To
hold the model slot for as long as a test needs, the server's real redactor sits behind a gate
the test opens (:class:`Gated`): a ``/v1/process`` request holds its slot, ASR done, until then.
Its count of calls is the model work the server did.
"""

from __future__ import annotations

import asyncio
import re
import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from core.settings import AdmissionConfig
from serving.admission import Admission, Shed
from serving.metrics import ServingMetrics
from serving.runtime import build_runtime
from tests.flow_helpers import TrainedProject, project_fixture
from tests.test_serving import DIGITS_WAV, KEYS, Server, serving, with_admission

project = project_fixture("serving-admission")
AUDIO = DIGITS_WAV.read_bytes()  # 8.3 s of speech: the redactor runs on every /v1/process request


# -- the queue on its own event loop ----------------------------------------------------------------


async def _never_left() -> bool:
    return False


async def _left() -> bool:
    return True


def test_the_door_sheds_a_full_queue_and_an_expected_wait_over_the_deadline_at_once() -> None:
    now = [0.0]
    metrics = ServingMetrics()
    limits = {"max_inflight": 1, "queue_timeout_s": 0.5}
    admission = Admission(AdmissionConfig(max_queue=1, **limits), metrics, clock=lambda: now[0])

    async def attempt(work: str) -> str:
        try:
            async with admission.admitted(work, _never_left):
                return "200"
        except Shed as shed:
            assert shed.status == 503 and shed.retry_after_s == 1
            return shed.reason

    async def scenario() -> list[str]:
        async with admission.admitted("process", _never_left):
            now[0] += 1.5  # one process request took 1.5 s: what the next are expected to take
        release = asyncio.Event()

        async def holder() -> None:
            async with admission.admitted("process", _never_left):
                await release.wait()

        held = asyncio.create_task(holder())
        await asyncio.sleep(0)
        answers = [await attempt("process")]  # expected wait: the 1.5 s in flight, over the 0.5 s deadline
        admission.config = AdmissionConfig(max_queue=0, **limits)
        answers.append(await attempt("understand"))  # no room to wait at all
        admission.config = AdmissionConfig(max_queue=1, **limits)
        now[0] += 1.2  # the request in flight has 0.3 s left of its expected 1.5: worth waiting for
        waiting = asyncio.create_task(attempt("process"))
        await asyncio.sleep(0)
        assert admission.queued == 1
        release.set()
        await held
        answers.append(await waiting)
        return answers

    assert asyncio.run(scenario()) == ["expected_wait", "queue_full", "200"]
    assert (admission.inflight, admission.queued) == (0, 0)
    exposed = metrics.exposition().decode()
    for reason, count in (("expected_wait", 1), ("queue_full", 1), ("queue_timeout", 0), ("disconnected", 0)):
        assert f'voiceloop_admission_shed_total{{reason="{reason}"}} {count}.0' in exposed
    assert 'voiceloop_admission_admitted_total{work="process"} 3.0' in exposed


def test_a_waiter_that_times_out_or_whose_client_left_never_runs_and_the_slot_goes_on() -> None:
    admission = Admission(AdmissionConfig(max_inflight=1, max_queue=4, queue_timeout_s=1.0))
    ran: list[str] = []

    async def request(name: str, left: Any = _never_left, hold: asyncio.Event | None = None) -> str:
        try:
            async with admission.admitted("process", left):
                ran.append(name)
                if hold is not None:
                    await hold.wait()
            return "200"
        except Shed as shed:
            return shed.reason

    async def scenario() -> list[str]:
        hold = asyncio.Event()
        first = asyncio.create_task(request("first", hold=hold))
        await asyncio.sleep(0)
        timed_out = await request("late")  # waits its 1 s behind the held slot
        gone = asyncio.create_task(request("gone", left=_left))
        cancelled = asyncio.create_task(request("cancelled"))
        waiting = asyncio.create_task(request("waiting"))
        await asyncio.sleep(0.05)
        assert admission.queued == 3
        cancelled.cancel()
        await asyncio.sleep(0)
        hold.set()
        return [await first, timed_out, await gone, await waiting, "cancelled" if cancelled.cancelled() else "?"]

    assert asyncio.run(scenario()) == ["200", "queue_timeout", "disconnected", "200", "cancelled"]
    assert ran == ["first", "waiting"]
    assert (admission.inflight, admission.queued) == (0, 0)


def test_a_request_queues_only_when_its_slot_will_likely_come_in_time() -> None:
    """Two servers whose work takes 0.3 s on average: one steady, one spread between 0.1 and 0.5 s. Behind one
    request just started, the steady one queues the next request (its 0.3 s wait fits the 0.5 s deadline);
    the spread one sheds it at once rather than let it wait the deadline out one time in three."""
    now = [0.0]

    async def next_request(times: list[float]) -> str:
        admission = Admission(AdmissionConfig(max_inflight=1, max_queue=4, queue_timeout_s=0.5), clock=lambda: now[0])
        for seconds in times:
            async with admission.admitted("process", _never_left):
                now[0] += seconds
        async with admission.admitted("process", _never_left):
            try:
                async with asyncio.timeout(0.05), admission.admitted("process", _never_left):
                    return "admitted"
            except TimeoutError:
                return "queued"
            except Shed as shed:
                return shed.reason

    assert asyncio.run(next_request([0.3] * 8)) == "queued"
    assert asyncio.run(next_request([0.1, 0.5] * 4)) == "expected_wait"


def test_optional_work_takes_only_a_free_slot_and_requests_see_it_in_their_wait() -> None:
    now = [0.0]
    admission = Admission(AdmissionConfig(max_inflight=1, max_queue=4, queue_timeout_s=0.5), clock=lambda: now[0])

    async def scenario() -> list[object]:
        seen: list[object] = []
        async with admission.spare("shadow-process") as held:  # a free slot: taken
            seen += [held, admission.inflight]
            now[0] += 2.0  # the shadow run took 2 s: a request arriving during the next one expects that
        async with admission.admitted("process", _never_left), admission.spare("shadow-process") as held:
            seen += [held, admission.inflight]  # the request holds the only slot
        async with admission.spare("shadow-process") as held:
            try:
                async with admission.admitted("process", _never_left):
                    seen.append("admitted")
            except Shed as shed:
                seen.append(shed.reason)  # waiting 2 s for the shadow run is over the deadline: shed at once
        return seen

    assert asyncio.run(scenario()) == [True, 1, False, 1, "expected_wait"]
    assert (admission.inflight, admission.queued) == (0, 0)


# -- over HTTP --------------------------------------------------------------------------------------


class Gated:
    """The server's real redactor behind a gate: each call waits until the test opens it, and is counted."""

    def __init__(self, redactor: Any) -> None:
        self.redactor = redactor
        self.gate, self.entered = threading.Event(), threading.Event()
        self.calls = 0

    def redact(self, text: str) -> Any:
        self.calls += 1
        self.entered.set()
        assert self.gate.wait(120), "the test never opened the gate"
        return self.redactor.redact(text)


@pytest.fixture(scope="module")
def server(project: TrainedProject) -> Iterator[Server]:
    settings = with_admission(project.settings, max_inflight=1, max_queue=1, queue_timeout_s=60, retry_after_s=2)
    with serving(build_runtime(settings, keys=KEYS)) as served:
        yield served


@pytest.fixture
def gated(server: Server) -> Iterator[Gated]:
    kept = server.runtime.redactor
    gated = server.runtime.redactor = Gated(kept)  # type: ignore[assignment]
    try:
        yield gated
    finally:
        gated.gate.set()
        server.runtime.redactor = kept


def _limits(server: Server, **limits: Any) -> None:
    """New limits (and a fresh queue) for the next requests; the server is idle between tests."""
    assert server.runtime.admission.inflight == 0
    server.runtime.admission = Admission(AdmissionConfig(**limits), server.runtime.metrics)


def _metric(server: Server, name: str, labels: str = "") -> float:
    text = httpx.get(f"{server.url}/metrics", timeout=30).text
    found = re.search(rf"^{re.escape(name + labels)} (\S+)$", text, re.M)
    return float(found.group(1)) if found else 0.0


def _until(condition: Any, what: str, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def _process(server: Server) -> httpx.Response:
    with server.client() as client:
        return client.post("/v1/process", content=AUDIO)


def _hold_the_slot(server: Server, gated: Gated, pool: ThreadPoolExecutor) -> Future[httpx.Response]:
    holder = pool.submit(_process, server)
    assert gated.entered.wait(120), "the first request never reached the redactor"
    return holder


def test_a_burst_beyond_the_queue_is_shed_at_once_with_retry_after_and_the_server_recovers(
        server: Server, gated: Gated) -> None:
    _limits(server, max_inflight=1, max_queue=1, queue_timeout_s=60, retry_after_s=2)
    shed_before = _metric(server, "voiceloop_admission_shed_total", '{reason="queue_full"}')
    admitted_before = _metric(server, "voiceloop_admission_admitted_total", '{work="process"}')
    with ThreadPoolExecutor(8) as pool:
        holder = _hold_the_slot(server, gated, pool)
        queued = pool.submit(_process, server)
        _until(lambda: server.runtime.admission.queued == 1, "the second request in the queue")
        assert _metric(server, "voiceloop_admission_queue_depth") == 1
        assert _metric(server, "voiceloop_admission_inflight") == 1
        burst = [pool.submit(_process, server) for _ in range(6)]
        with server.client(server.bot_key) as bot:  # the other model routes share the slots
            burst_text = [bot.post("/v1/understand", json={"text": "my card was declined"}),
                          bot.post("/v1/calls/call-1/turns", json={"text": "I lost my card"})]
        answered = [f.result(timeout=120) for f in burst] + burst_text
        assert not holder.done() and not queued.done()  # every refusal came while the slot was still held
        for refused in answered:
            assert refused.status_code == 503, refused.text
            assert refused.headers["Retry-After"] == "2"
            body = refused.json()
            assert body["reason"] == "queue_full" and body["retry_after_s"] == 2
            assert "serving.admission.max_queue = 1" in body["detail"] and "retry after 2 s" in body["detail"]
        gated.gate.set()
        assert holder.result(timeout=120).status_code == 200 and queued.result(timeout=120).status_code == 200
    assert gated.calls == 2  # the model worked for the two admitted requests only
    assert _metric(server, "voiceloop_admission_shed_total", '{reason="queue_full"}') == shed_before + 8
    assert _metric(server, "voiceloop_admission_admitted_total", '{work="process"}') == admitted_before + 2
    for _ in range(3):  # after the burst: served as before, nothing waiting
        assert _process(server).status_code == 200
    assert _metric(server, "voiceloop_admission_queue_depth") == 0
    assert _metric(server, "voiceloop_admission_inflight") == 0
    assert _metric(server, "voiceloop_requests_total", '{endpoint="/v1/process",status="503"}') >= 6


def test_a_request_that_waits_past_its_deadline_is_shed_not_computed(server: Server, gated: Gated) -> None:
    _limits(server, max_inflight=1, max_queue=4, queue_timeout_s=0.5, retry_after_s=1)
    with ThreadPoolExecutor(2) as pool:
        holder = _hold_the_slot(server, gated, pool)
        late = _process(server)
        assert not holder.done()
        assert late.status_code == 503 and late.headers["Retry-After"] == "1"
        assert late.json()["reason"] == "queue_timeout" and "queue_timeout_s (0.5 s)" in late.json()["detail"]
        gated.gate.set()
        assert holder.result(timeout=120).status_code == 200
    assert gated.calls == 1


def test_the_work_of_a_client_that_disconnected_while_queued_is_dropped_before_the_model(
        server: Server, gated: Gated) -> None:
    _limits(server, max_inflight=1, max_queue=4, queue_timeout_s=60)
    dropped_before = _metric(server, "voiceloop_admission_shed_total", '{reason="disconnected"}')
    admitted_before = _metric(server, "voiceloop_admission_admitted_total", '{work="process"}')
    head = (f"POST /v1/process HTTP/1.1\r\nHost: 127.0.0.1\r\nX-API-Key: {server.key}\r\n"
            f"Content-Type: application/octet-stream\r\nContent-Length: {len(AUDIO)}\r\n\r\n").encode()
    with ThreadPoolExecutor(1) as pool:
        holder = _hold_the_slot(server, gated, pool)
        with socket.create_connection(("127.0.0.1", server.port), timeout=30) as abandoned:
            abandoned.sendall(head + AUDIO)
            _until(lambda: server.runtime.admission.queued == 1, "the request in the queue")
        # the client is gone (its timeout passed) before the slot comes free
        gated.gate.set()
        assert holder.result(timeout=120).status_code == 200
        _until(lambda: _metric(server, "voiceloop_admission_shed_total", '{reason="disconnected"}')
               == dropped_before + 1, "the abandoned request to be dropped")
    assert gated.calls == 1  # the abandoned request never reached the model
    assert _metric(server, "voiceloop_admission_admitted_total", '{work="process"}') == admitted_before + 1
    assert server.runtime.admission.queued == 0 and server.runtime.admission.inflight == 0
    assert _metric(server, "voiceloop_requests_total", '{endpoint="/v1/process",status="499"}') >= 1
