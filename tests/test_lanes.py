"""Side-by-side training lanes: a spawned process with its own threads and tracking, and a thread limit."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from pathlib import Path

import mlflow
import pytest
import torch

from core.runtime import cpu_seconds
from training.lanes import run_isolated, torch_threads


def _probe(tag: str) -> dict[str, object]:
    """What the child sees (module level: the spawned process imports it)."""
    return {"tag": tag, "pid": os.getpid(), "threads": torch.get_num_threads(),
            "tracking_uri": mlflow.get_tracking_uri(), "experiment": mlflow.tracking.fluent._get_experiment_id()}


def _burn(seconds: float) -> float:
    """Spin for ``seconds`` of CPU time; the CPU time this process has used by then."""
    import time

    end = time.process_time() + seconds
    while time.process_time() < end:
        pass
    return time.process_time()


def _fail(message: str) -> None:
    raise ValueError(message)


def _report(step: str, epochs: int) -> str:
    """Report ``epochs`` of progress and a library warning from the child, as training there does."""
    import warnings

    from core import progress

    progress.started(step)
    for epoch in range(1, epochs + 1):
        progress.advanced(step, epoch, epochs, "epochs")
    warnings.warn("a library's warning in the lane", UserWarning, stacklevel=1)
    return "trained"


@pytest.fixture()
def tracking(tmp_path: Path) -> Iterator[tuple[str, str]]:
    """A private MLflow store and experiment for the test; the caller's URI is restored after."""
    previous = mlflow.get_tracking_uri()
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    mlflow.set_tracking_uri(uri)
    try:
        yield uri, mlflow.set_experiment("lanes").experiment_id
    finally:
        mlflow.set_tracking_uri(previous)


def test_a_lane_runs_in_its_own_process_on_its_threads_with_the_callers_tracking(tracking: tuple[str, str]) -> None:
    seen = run_isolated(_probe, "intent", threads=1)
    assert seen["tag"] == "intent"
    assert seen["pid"] != os.getpid()
    assert seen["threads"] == 1
    assert (seen["tracking_uri"], seen["experiment"]) == tracking


def test_cpu_seconds_count_a_lane_process_once_it_has_ended(tracking: tuple[str, str]) -> None:
    before = cpu_seconds()
    lane_cpu = run_isolated(_burn, 0.5)  # its imports make it several times what the caller spends waiting
    assert cpu_seconds() - before >= lane_cpu >= 0.5


def test_an_error_in_the_lane_reaches_the_caller(tracking: tuple[str, str]) -> None:
    with pytest.raises(ValueError, match="no training utterances"):
        run_isolated(_fail, "no training utterances")


def test_torch_threads_limits_only_the_calling_thread_and_restores_it() -> None:
    before = torch.get_num_threads()
    other: list[int] = []
    with torch_threads(1):
        assert torch.get_num_threads() == 1

        def elsewhere() -> None:
            torch.set_num_threads(2)
            other.append(torch.get_num_threads())

        thread = threading.Thread(target=elsewhere)
        thread.start()
        thread.join()
        assert torch.get_num_threads() == 1  # another thread's setting does not leak in
    assert other == [2]
    assert torch.get_num_threads() == before


def test_a_lanes_progress_and_warnings_reach_this_process(tracking: tuple[str, str]) -> None:
    import logging

    from core.progress import event_of

    seen: list[logging.LogRecord] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(record)

    handler = Collect()
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        assert run_isolated(_report, "finetune", 3) == "trained"
    finally:
        root.removeHandler(handler)
    events = [e for e in map(event_of, seen) if e is not None]
    assert [(e.kind, e.done) for e in events] == [("start", None), ("advance", 1), ("advance", 2), ("advance", 3)]
    assert all(e.step == "finetune" and e.unit in ("", "epochs") for e in events)
    assert any(r.name == "py.warnings" and "a library's warning in the lane" in r.getMessage() for r in seen)
