"""What every benchmark script shares: one JSON line per figure, a scratch folder, a flow-run project."""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


def emit(**figure: object) -> None:
    """One figure as one JSON line on stdout (what benchmarks/README.md quotes)."""
    print(json.dumps(figure), flush=True)


@contextmanager
def scratch(prefix: str, keep: bool = False) -> Iterator[Path]:
    """A fresh temporary folder, removed afterwards unless ``keep`` (then its path goes to stderr)."""
    folder = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield folder
    finally:
        if keep:
            print(f"kept {folder}", file=sys.stderr)
        else:
            shutil.rmtree(folder, ignore_errors=True)


def asr_project(project_dir: str, newest: bool = True, run_id: str | None = None) -> tuple[Any, Any]:
    """(settings, MLflow run) of a project the retrain flow ran in: ``run_id``, else its newest (or first) ASR run.

    Points voiceloop at ``project_dir``, prepares the offline runtime and MLflow tracking.
    """
    import os

    os.environ["VOICELOOP_PROJECT_DIR"] = str(Path(project_dir).resolve())
    import mlflow

    from core.runtime import prepare
    from core.settings import load_settings
    from training.registry import setup_tracking

    settings = load_settings()
    prepare(settings.root)
    setup_tracking(settings)
    if run_id:
        return settings, mlflow.get_run(run_id)
    runs = mlflow.search_runs(filter_string="attributes.run_name = 'retrain-asr'", output_format="list",
                              max_results=1, order_by=[f"attributes.start_time {'DESC' if newest else 'ASC'}"])
    if not runs:
        raise SystemExit(f"{project_dir}: no retrain-asr run; run benchmarks/pipeline.py --project-dir first")
    return settings, runs[0]


def asr_golden(settings: Any, run: Any, limit: int | None, digits: int) -> Any:
    """The run's golden audio (every k-th turn so that about ``limit`` remain, all slices kept), ``digits``
    strings of the held-out FSDD speaker and the clean real recordings: a ``GoldenAudio``."""
    from governance.session import open_store
    from training.asr.finetune import GoldenAudio
    from training.datasets import open_version

    store = open_store(settings, "ml-engineer", "evaluation")
    golden = GoldenAudio.load(open_version(store, "asr-golden", run.data.params["dataset.asr-golden"]),
                              digit_eval=digits)
    if limit and limit < len(golden.audios):
        step = len(golden.audios) / limit
        keep = sorted({int(i * step) for i in range(limit)})
        golden.audios = [golden.audios[i] for i in keep]
        golden.references = [golden.references[i] for i in keep]
        golden.rows = [golden.rows[i] for i in keep]
    return golden
