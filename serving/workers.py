"""One server process per core, for more traffic than one process answers: each on its own port, each following
the champion alias on its own (``voiceloop serve --workers N``; docs/serving.md, "Several processes").

Each worker is a whole ``voiceloop serve``: its runtime, its bundle follower (so each swaps to a new
champion without dropping a request, serving/follower.py), its admission control, its ``/metrics``
and ``/healthz``. They listen on consecutive ports rather than sharing one, because call sessions
live in one process's memory (serving/sessions.py): the load balancer in front must send every
request of a call to the same process (hashing on the call id), which it can do only when each
process has an address of its own; a scrape of a shared port would also read a random process's
counters. With ``cores``, worker i runs on core ``cores[i % len(cores)]`` alone.

The supervisor restarts a worker that exits, after :data:`RESTART_AFTER_S`; a worker that exits
within :data:`SETTLE_S` of its start :data:`MAX_QUICK_EXITS` times in a row stops everything (a
configuration that cannot start is not retried forever). SIGINT or SIGTERM stops every worker.
A supervisor that dies without stopping them (SIGKILL, the OOM killer) takes them with it: each
worker asks the kernel for SIGTERM when its parent dies (Linux's ``PR_SET_PDEATHSIG``), so no
orphan keeps a port and a core that a restarted supervisor needs.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import functools
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

RESTART_AFTER_S = 1.0
SETTLE_S = 60.0  # a worker that ran this long has started; its next exit starts a new count
MAX_QUICK_EXITS = 3
STOP_GRACE_S = 30.0  # what a worker gets to finish its requests after SIGTERM, before SIGKILL


@dataclass(frozen=True)
class Worker:
    index: int
    port: int
    cores: tuple[int, ...] = ()  # (): not pinned


def parse_cores(text: str) -> tuple[int, ...]:
    """``"0,2-3"`` -> (0, 2, 3), in the order given; ValueError naming the part that is not a core number
    or a core this machine does not have."""
    cores: list[int] = []
    machine = set(range(os.cpu_count() or 1))
    for part in (p.strip() for p in text.split(",") if p.strip()):
        low, _, high = part.partition("-")
        if not low.isdigit() or (high and not high.isdigit()):
            raise ValueError(f"{part!r} is not a core number or a range of them (e.g. 0,2-3)")
        cores += [c for c in range(int(low), int(high or low) + 1) if c not in cores]
    if not cores:
        raise ValueError("no core given (e.g. 0,2-3)")
    if not set(cores) <= machine:
        raise ValueError(f"core(s) {sorted(set(cores) - machine)} are not on this machine; it has "
                         f"0-{len(machine) - 1}")
    return tuple(cores)


def plan(port: int, count: int, cores: Sequence[int] = ()) -> list[Worker]:
    """``count`` workers on ports ``port``, ``port + 1``, ...; with ``cores``, worker i on its core alone."""
    if count < 1:
        raise ValueError(f"--workers must be at least 1, not {count}")
    return [Worker(i, port + i, (cores[i % len(cores)],) if cores else ()) for i in range(count)]


def pin(cores: Sequence[int]) -> None:
    """Run this process, and every thread it starts from now on, on ``cores`` only (ValueError if the system
    will not: a container or cgroup limited to other cores)."""
    try:
        os.sched_setaffinity(0, set(cores))
    except OSError as error:
        raise ValueError(f"cannot run on core(s) {sorted(set(cores))}: {error.strerror}; this process may run on "
                         f"{sorted(os.sched_getaffinity(0))}") from None


def pin_process(pid: int, cores: Sequence[int]) -> None:
    """Move every thread of process ``pid`` onto ``cores`` (threads it starts later inherit it)."""
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(ProcessLookupError):  # a thread that ended meanwhile
            os.sched_setaffinity(int(task.name), set(cores))


PR_SET_PDEATHSIG = 1  # prctl(2)


@functools.cache
def _prctl() -> Callable[..., int] | None:
    """libc's prctl (Linux), found once: find_library runs ldconfig, not something to repeat per worker start."""
    libc_name = ctypes.util.find_library("c") if sys.platform == "linux" else None
    return ctypes.CDLL(libc_name).prctl if libc_name else None


def _die_with_parent(parent: int) -> Callable[[], None]:
    """What a worker runs between fork and exec: SIGTERM to itself when ``parent`` dies, and at once if it
    already has (the parent may die before the request is made). Linux only; elsewhere nothing."""
    prctl = _prctl()  # loaded here, not in the forked child

    def arrange() -> None:
        if prctl is not None and prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0) == 0 and os.getppid() != parent:
            os.kill(os.getpid(), signal.SIGTERM)

    return arrange


class Supervisor:
    """Runs ``command(worker)`` for each worker until stopped; ``say`` tells the operator what happens to the
    workers (the workers log for themselves)."""

    def __init__(self, workers: Sequence[Worker], command: Callable[[Worker], list[str]],
                 say: Callable[[str], None] = print) -> None:
        self.workers, self.command, self.say = list(workers), command, say
        self._running: dict[int, tuple[subprocess.Popen[bytes], float]] = {}
        self._quick_exits: dict[int, int] = {}
        self._stopping = False

    def run(self) -> int:
        """Start the workers and keep them running; 0 after SIGINT/SIGTERM, 1 when a worker cannot start."""
        previous = {s: signal.signal(s, self._stop) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            for worker in self.workers:
                self._start(worker)
            return self._watch()
        finally:
            self._stop_all()
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def _stop(self, _signum: int, _frame: FrameType | None) -> None:
        self._stopping = True

    def _start(self, worker: Worker) -> None:
        process = subprocess.Popen(self.command(worker), preexec_fn=_die_with_parent(os.getpid()))
        self._running[worker.index] = (process, time.monotonic())
        pinned = f", core {','.join(map(str, worker.cores))}" if worker.cores else ""
        self.say(f"worker {worker.index}: pid {process.pid}, port {worker.port}{pinned}")

    def _watch(self) -> int:
        while not self._stopping:
            time.sleep(0.2)
            for worker in self.workers:
                process, started = self._running[worker.index]
                code = process.poll()
                if code is None or self._stopping:
                    continue
                quick = time.monotonic() - started < SETTLE_S
                self._quick_exits[worker.index] = self._quick_exits.get(worker.index, 0) + 1 if quick else 0
                if self._quick_exits[worker.index] >= MAX_QUICK_EXITS:
                    self.say(f"worker {worker.index} (port {worker.port}) exited {MAX_QUICK_EXITS} times in a row "
                             f"within {SETTLE_S:.0f} s of its start (last exit code {code}); stopping every worker")
                    return 1
                self.say(f"worker {worker.index} (port {worker.port}) exited with code {code}; restarting it in "
                         f"{RESTART_AFTER_S:g} s")
                time.sleep(RESTART_AFTER_S)
                self._start(worker)
        return 0

    def _stop_all(self) -> None:
        """SIGTERM to every worker (uvicorn finishes the requests in flight), SIGKILL to any left after the grace."""
        live = [process for process, _started in self._running.values() if process.poll() is None]
        for process in live:
            process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE_S
        for process in live:
            try:
                process.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                self.say(f"worker pid {process.pid} did not stop within {STOP_GRACE_S:.0f} s; killing it")
                process.kill()
                process.wait()
