"""Two trainings side by side: one in a fresh process on its own cores, the other on the rest.

The intent and the ASR fine-tunings run side by side on the cores of a small machine.
Threads of one process would not do: PyTorch's random generator is process-wide, so the two
trainings' dropout draws would interleave and neither run could be reproduced. A spawned process
has its own generator, its own thread count, and does not hold the GIL of the flow.

A second thread buys the intent model little (1.07-1.18x) and Whisper LoRA more (1.5-1.7x), and each
trains at its single-thread speed beside the other (benchmarks/training_lanes.py), so one core each
finishes both in about the time of the longer one.

The child reads MLflow tracking (URI and experiment) from the parent and exits when the parent
dies, so a killed flow leaves no orphan that goes on writing a run.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from logging.handlers import QueueHandler, QueueListener
from typing import Any, TypeVar

from core.progress import LOGGER as PROGRESS_LOGGER

Result = TypeVar("Result")
_PARENT_POLL_S = 1.0


def _exit_with_parent(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(_PARENT_POLL_S)
    os._exit(1)


def _in_child(setup: tuple[int, str, str | None, int], fn: Callable[..., Result], args: tuple[Any, ...],
              kwargs: dict[str, Any]) -> Result:
    """Runs in the spawned process: threads and tracking as the parent asked, then ``fn``.

    Set up here rather than in a pool initializer, whose errors surface only as a broken pool.
    """
    import mlflow
    import torch

    threads, tracking_uri, experiment_id, parent = setup
    threading.Thread(target=_exit_with_parent, args=(parent,), daemon=True, name="parent-watch").start()
    torch.set_num_threads(threads)
    mlflow.set_tracking_uri(tracking_uri)
    if experiment_id is not None:
        mlflow.set_experiment(experiment_id=experiment_id)
    return fn(*args, **kwargs)


def run_isolated(fn: Callable[..., Result], *args: Any, threads: int = 1, **kwargs: Any) -> Result:
    """``fn(*args, **kwargs)`` in a spawned process on ``threads`` torch threads; its result or its exception.

    ``fn`` must be importable (module level) and its arguments and result picklable.
    """
    import mlflow
    from mlflow.tracking.fluent import _get_experiment_id

    setup = (threads, mlflow.get_tracking_uri(), _get_experiment_id(), os.getpid())
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    relay = QueueListener(queue, _Forward())  # the child's progress records, shown as this process's own
    relay.start()
    try:
        with ProcessPoolExecutor(1, mp_context=context, initializer=_report_to, initargs=(queue,)) as pool:
            return pool.submit(_in_child, setup, fn, args, kwargs).result()
    finally:
        relay.stop()


class _Forward(logging.Handler):
    """Hands a relayed record to this process's logger of the same name (progress to the display, warnings
    and logs to wherever this process sends them: the run's log file under `voiceloop retrain`)."""

    def emit(self, record: logging.LogRecord) -> None:
        logging.getLogger(record.name).handle(record)


def _report_to(queue: Any) -> None:
    """In the child, before anything runs: its progress, warnings and logs go to the parent through ``queue``
    (nothing of the child's is printed on its own)."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    root.addHandler(QueueHandler(queue))
    root.setLevel(logging.WARNING)
    logging.getLogger(PROGRESS_LOGGER).setLevel(logging.INFO)
    logging.captureWarnings(True)


@contextmanager
def torch_threads(threads: int | None) -> Iterator[None]:
    """This thread's torch ops on ``threads`` threads inside the block (None: unchanged).

    PyTorch's thread count is per OS thread (OpenMP), so the flow's other threads keep theirs.
    """
    import torch

    before = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)
