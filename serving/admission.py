"""Overload is refused at the door, never queued into timeouts: a bounded queue in front of the model work.

Without it, a server sent more than it can answer queues everything: every request gets slower,
clients time out, and the server still computes the answers nobody waits for. Here each request
that needs the model (``/v1/transcribe``, ``/v1/understand``, ``/v1/process``, a call's turn) takes
one of ``serving.admission.max_inflight`` slots first, and waits for one in a FIFO queue if all are
taken. A request is shed (:class:`Shed`, answered 503 with ``Retry-After``) instead:

- at once, when ``max_queue`` requests already wait (``queue_full``);
- at once, when it would likely wait longer than ``queue_timeout_s`` (``expected_wait``): the
  service time of each kind of work is tracked (a moving average and its spread); the work queued
  ahead of it, with what is left of the work in flight, shared among the slots, is the wait it can
  expect, and it queues only if that wait plus :data:`WAIT_MARGIN_SD` of its spread fits the
  deadline. Without the margin, a request expected just in time misses about half the time, and is
  then shed only after waiting the whole deadline;
- when it has waited ``queue_timeout_s`` without a slot (``queue_timeout``).

A request whose client disconnected while it waited is dropped when it leaves the queue, before
any model work (``disconnected``, answered 499 to nobody). Each outcome is counted in ``/metrics``
(serving/metrics.py). Optional work (shadow mode's challenger runs) takes a slot too, but only one
that is free with nobody waiting (:meth:`Admission.spare`): it never queues, and while it holds the
slot, requests see it in their expected wait instead of being slowed by work the door cannot see.
Everything here runs on the server's event loop: no locks.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

from fastapi import Request
from fastapi.responses import JSONResponse

from core.settings import AdmissionConfig

if TYPE_CHECKING:
    from serving.metrics import ServingMetrics

REASONS = ("queue_full", "expected_wait", "queue_timeout", "disconnected")
CLIENT_CLOSED = 499  # nginx's "client closed request": no one reads it; it keeps the metrics apart from 5xx
SMOOTHING = 0.2  # weight of the newest service time in its moving average (and its variance)
WAIT_MARGIN_SD = 1.645  # a request queues when it gets its slot within the deadline about 19 times in 20


class Shed(Exception):
    """A request refused before its model work; ``reason`` is one of :data:`REASONS`."""

    def __init__(self, reason: str, detail: str, retry_after_s: int) -> None:
        super().__init__(detail)
        self.reason, self.detail, self.retry_after_s = reason, detail, retry_after_s

    @property
    def status(self) -> int:
        return CLIENT_CLOSED if self.reason == "disconnected" else 503


async def shed_response(_request: Request, error: Exception) -> JSONResponse:
    """A :class:`Shed` as the answer: 503 with ``Retry-After`` and a JSON body saying why (async: a sync
    handler would wait for the thread pool, which is what the model work holds)."""
    assert isinstance(error, Shed)
    headers = {"Retry-After": str(error.retry_after_s)} if error.status == 503 else None
    return JSONResponse({"detail": error.detail, "reason": error.reason, "retry_after_s": error.retry_after_s},
                        status_code=error.status, headers=headers)


@dataclass(eq=False)
class _Slot:
    work: str  # the kind of work holding it
    since: float  # when it was taken


class Admission:
    """The slots and queue of one server process. ``async with admission.admitted(work, left): ...``"""

    def __init__(self, config: AdmissionConfig | None = None, metrics: ServingMetrics | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.config = config or AdmissionConfig()
        self._metrics, self._clock = metrics, clock
        self._slots: set[_Slot] = set()  # the slots taken
        self._waiting: deque[tuple[asyncio.Future[_Slot], str]] = deque()
        self._service_s: dict[str, float] = {}  # moving average of each work kind's time in a slot
        self._service_var: dict[str, float] = {}  # and its moving variance
        if metrics is not None:
            metrics.admission_inflight.set_function(lambda: float(self.inflight))
            metrics.admission_queued.set_function(lambda: float(self.queued))
            metrics.admission_max_inflight.set(self.config.max_inflight)
            metrics.admission_max_queue.set(self.config.max_queue)
            for reason in REASONS:
                metrics.admission_shed.labels(reason)  # every series exists from the start, at 0

    @property
    def inflight(self) -> int:
        return len(self._slots)

    @property
    def queued(self) -> int:
        return len(self._waiting)

    @property
    def saturated(self) -> bool:
        """Whether a request arriving now would wait for a slot."""
        return self.inflight >= self.config.max_inflight or bool(self._waiting)

    def expected_wait_s(self) -> float:
        """The wait a request arriving now can expect for a slot (0 while one is free)."""
        if not self.saturated:
            return 0.0
        now = self._clock()
        ahead = sum(self._service_s.get(work, 0.0) for _future, work in self._waiting)
        left = sum(max(0.0, self._service_s.get(slot.work, 0.0) - (now - slot.since)) for slot in self._slots)
        return (ahead + left) / self.config.max_inflight

    def wait_spread_s(self) -> float:
        """The standard deviation of that wait: the service times' variances, summed over the work ahead and
        in flight (independent pieces), shared among the slots."""
        if not self.saturated:
            return 0.0
        works = [work for _future, work in self._waiting] + [slot.work for slot in self._slots]
        return math.sqrt(sum(self._service_var.get(work, 0.0) for work in works)) / self.config.max_inflight

    @asynccontextmanager
    async def admitted(self, work: str, left: Callable[[], Awaitable[bool]]) -> AsyncIterator[None]:
        """Hold a slot for ``work`` (a kind: the route's name) for the block, or raise :class:`Shed`.

        ``left()`` says whether the client has gone (``request.is_disconnected``); it is asked when the
        request leaves the queue, and a gone client's request is dropped there.
        """
        arrived = self._clock()
        slot, queued = await self._enter(work)
        waited = self._clock() - arrived
        try:
            if queued and await left():
                raise self._shed("disconnected", "the client disconnected while the request waited for a model slot; "
                                                 "nothing was computed")
            if self._metrics is not None:
                self._metrics.admission_wait.observe(waited)
                self._metrics.admission_admitted.labels(work).inc()
            started = self._clock()
            yield
            self._learn(work, self._clock() - started)
        finally:
            self._leave(slot)

    @asynccontextmanager
    async def spare(self, work: str) -> AsyncIterator[bool]:
        """Hold a slot for optional ``work`` for the block if one is free and no request waits (True), else
        hold nothing (False): optional work never queues and never sheds a request."""
        if self.saturated:
            yield False
            return
        slot = self._take(work)
        try:
            started = self._clock()
            yield True
            self._learn(work, self._clock() - started)
        finally:
            self._leave(slot)

    async def _enter(self, work: str) -> tuple[_Slot, bool]:
        """Take a slot, at once (False) or after waiting in the queue (True), or raise :class:`Shed`."""
        config = self.config
        if not self.saturated:
            return self._take(work), False
        if len(self._waiting) >= config.max_queue:
            raise self._shed("queue_full", f"overloaded: {self.inflight} requests hold the model and {self.queued} "
                                           f"wait (serving.admission.max_queue = {config.max_queue})")
        expected = self.expected_wait_s()
        likely = expected + WAIT_MARGIN_SD * self.wait_spread_s()
        if likely > config.queue_timeout_s:
            raise self._shed("expected_wait", f"overloaded: the wait for the model would be about {expected:.2f} s "
                                              f"(up to {likely:.2f} s), over serving.admission.queue_timeout_s "
                                              f"({config.queue_timeout_s:g} s)")
        future: asyncio.Future[_Slot] = asyncio.get_running_loop().create_future()
        entry = (future, work)
        self._waiting.append(entry)
        try:
            async with asyncio.timeout(config.queue_timeout_s):
                return await future, True
        except BaseException as error:  # timed out, or cancelled: out of the queue, and a slot handed over passed on
            if entry in self._waiting:
                self._waiting.remove(entry)
            if future.done() and not future.cancelled():
                self._leave(future.result())
            if isinstance(error, TimeoutError):
                raise self._shed("queue_timeout", f"overloaded: no model slot came free within "
                                                  f"serving.admission.queue_timeout_s ({config.queue_timeout_s:g} s)"
                                 ) from None
            raise

    def _take(self, work: str) -> _Slot:
        slot = _Slot(work, self._clock())
        self._slots.add(slot)
        return slot

    def _leave(self, slot: _Slot) -> None:
        """Free ``slot``, and give it to the first request still waiting."""
        self._slots.discard(slot)
        while self._waiting:
            future, work = self._waiting.popleft()
            if not future.done():
                future.set_result(self._take(work))
                return

    def _learn(self, work: str, seconds: float) -> None:
        """Fold a service time into its kind's moving average and variance (exponentially weighted)."""
        before = self._service_s.get(work)
        if before is None:
            self._service_s[work], self._service_var[work] = seconds, 0.0
            return
        diff = seconds - before
        self._service_s[work] = before + SMOOTHING * diff
        self._service_var[work] = (1 - SMOOTHING) * (self._service_var[work] + SMOOTHING * diff * diff)

    def _shed(self, reason: str, detail: str) -> Shed:
        if self._metrics is not None:
            self._metrics.admission_shed.labels(reason).inc()
        retry = self.config.retry_after_s
        return Shed(reason, detail if reason == "disconnected" else f"{detail}; retry after {retry} s", retry)
