"""Progress of long work: steps report it here, and whoever runs them decides how to show it.

A step says when it starts, how far it is (calls, epochs) and when it ends. These are log records
on the ``voiceloop.progress`` logger, so they cross Prefect's task threads and, through a queue,
a training lane's own process (training/lanes.py). The command line shows them live on a terminal
and as one line per step start and end elsewhere (CI); library code never prints.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from core.runtime import cpu_seconds

LOGGER = "voiceloop.progress"
_log = logging.getLogger(LOGGER)

Kind = Literal["start", "advance", "end"]


@dataclass(frozen=True)
class Event:
    step: str
    kind: Kind
    done: int | None = None
    total: int | None = None
    unit: str = ""


def _emit(event: Event) -> None:
    counts = "" if event.done is None else f" {event.done}/{event.total} {event.unit}"
    _log.info("%s %s%s", event.step, event.kind, counts, extra={"voiceloop_progress": event})


def started(step: str) -> None:
    _emit(Event(step, "start"))


def advanced(step: str, done: int, total: int | None = None, unit: str = "") -> None:
    _emit(Event(step, "advance", done, total, unit))


def finished(step: str) -> None:
    _emit(Event(step, "end"))


def counter(step: str, unit: str) -> Callable[[int, int], None]:
    """A ``progress(done, total)`` callback, as the steps take one, that reports ``step``'s progress."""
    return lambda done, total: advanced(step, done, total, unit)


@dataclass
class Stopwatch:
    """Runs a flow's steps one at a time: announces each, and keeps its wall seconds and CPU core-seconds."""

    wall: dict[str, float] = field(default_factory=dict)
    cpu: dict[str, float] = field(default_factory=dict)

    def __call__(self, step: str, fn: Callable[..., Any], *args: Any) -> Any:
        started(step)
        wall_start, cpu_start = time.perf_counter(), cpu_seconds()
        result = fn(*args)
        self.wall[step] = round(time.perf_counter() - wall_start, 2)
        self.cpu[step] = round(cpu_seconds() - cpu_start, 1)
        finished(step)
        return result


def event_of(record: logging.LogRecord) -> Event | None:
    """The progress event a log record carries, if it is one."""
    event = getattr(record, "voiceloop_progress", None)
    return event if isinstance(event, Event) else None
