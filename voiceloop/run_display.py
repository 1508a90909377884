"""What a person sees while a long command runs: one live line per step, and a log file for the rest.

:class:`StepDisplay` renders the steps' progress events (core/progress.py): a live display on a
terminal (step, calls or epochs done, elapsed), one line per step start and end elsewhere (CI),
and the flow's own warnings (a quarantined call, a skipped turn) as they come.
:func:`run_log` sends every library's warnings and INFO logs (Prefect, MLflow, Great Expectations,
transformers ...) to ``<project>/logs/<command>-<time>.log`` instead of the console.
"""

from __future__ import annotations

import logging
import threading
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

from core.progress import LOGGER, event_of
from voiceloop.cli_common import warn

# The flow's own warnings (get_run_logger in flows/): shown, unlike library warnings, which go to the log.
FLOW_LOGGERS = ("prefect.flow_runs", "prefect.task_runs")


class StepDisplay(logging.Handler):
    """Shows the progress events of one run on ``console``; use it as a context manager."""

    def __init__(self, console: Console, live: bool | None = None) -> None:
        super().__init__(logging.INFO)
        self.console = console
        self.live = console.is_terminal if live is None else live
        self.bars = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                             TimeElapsedColumn(), console=console, disable=not self.live)
        self.tasks: dict[str, TaskID] = {}
        self.began: dict[str, float] = {}
        self._lock = threading.Lock()

    def __enter__(self) -> StepDisplay:
        for name in (LOGGER, *FLOW_LOGGERS):
            logging.getLogger(name).addHandler(self)
        self.bars.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        self.bars.stop()
        for name in (LOGGER, *FLOW_LOGGERS):
            logging.getLogger(name).removeHandler(self)

    def emit(self, record: logging.LogRecord) -> None:
        event = event_of(record)
        if event is None:
            if record.levelno >= logging.WARNING and record.name in FLOW_LOGGERS:
                warn(record.getMessage(), self.console)
            return
        with self._lock:
            name = escape(event.step)
            if event.kind == "start":
                self.began[event.step] = time.perf_counter()
                if self.live:
                    self.tasks[event.step] = self.bars.add_task(f"[bold]{name}[/]", total=None)
                else:
                    self.console.print(f"start  {name}", highlight=False, soft_wrap=True)
            elif event.kind == "advance" and self.live and event.step in self.tasks:
                unit = f" ({escape(event.unit)})" if event.unit else ""
                self.bars.update(self.tasks[event.step], completed=event.done, total=event.total,
                                 description=f"[bold]{name}[/]{unit}")
            elif event.kind == "end":
                seconds = time.perf_counter() - self.began.pop(event.step, time.perf_counter())
                if self.live and event.step in self.tasks:
                    task = self.tasks.pop(event.step)
                    total = self.bars.tasks[task].total
                    self.bars.update(task, completed=total if total is not None else 1,
                                     total=total if total is not None else 1,
                                     description=f"[green]done[/] {name}")
                    self.bars.stop_task(task)
                elif not self.live:
                    self.console.print(f"done   {name} ({seconds:.1f} s)", highlight=False, soft_wrap=True)


@contextmanager
def run_log(project_dir: Path, command: str) -> Iterator[Path]:
    """Send library warnings and INFO logs to a new log file of this run instead of the console."""
    folder = project_dir / "logs"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{command}-{datetime.now(UTC):%Y%m%dT%H%M%SZ}.log"
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    consoles = [h for h in root.handlers if isinstance(h, logging.StreamHandler)
                and not isinstance(h, logging.FileHandler)]
    level = root.level
    for console_handler in consoles:
        root.removeHandler(console_handler)
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    logging.captureWarnings(True)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("default")  # each library warning once, into the file
            yield path
    finally:
        logging.captureWarnings(False)
        root.removeHandler(handler)
        handler.close()
        root.setLevel(level)
        for console_handler in consoles:
            root.addHandler(console_handler)
