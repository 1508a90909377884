"""Process-wide settings that must be in place before heavy libraries are imported.

Everything here works offline: no hub downloads, no telemetry, all tool state under the
project folder. Call :func:`prepare` once, first thing, from every entry point.
"""

from __future__ import annotations

import logging
import os
import warnings
from pathlib import Path

_OFFLINE_DEFAULTS = {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
    "DVC_NO_ANALYTICS": "1",
    "GX_ANALYTICS_ENABLED": "false",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "90",
    "PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW": "ignore",
    "TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS": "",
    "TOKENIZERS_PARALLELISM": "false",
    "DO_NOT_TRACK": "1",
    # quiet libraries: voiceloop reports progress itself
    "TRANSFORMERS_VERBOSITY": "error",
    "HF_DATASETS_DISABLE_PROGRESS_BARS": "1",
    "HF_HUB_DISABLE_PROGRESS_BARS": "1",  # transformers' weight loading and saving bars too
}

_QUIET_LOGGERS = ("presidio-analyzer", "presidio-anonymizer", "mlflow", "alembic", "great_expectations", "dvc")


def prepare(project_dir: Path, threads: int | None = None) -> None:
    """Set offline defaults, per-project tool homes and CPU thread counts.

    Values the user already exported win, so real infrastructure can be configured from
    the environment (``PREFECT_API_URL``, ``MLFLOW_TRACKING_URI`` ...).
    """
    project_dir.mkdir(parents=True, exist_ok=True)
    for key, value in _OFFLINE_DEFAULTS.items():
        os.environ.setdefault(key, value)
    homes = {
        "PREFECT_HOME": project_dir / "prefect",
        "TLDEXTRACT_CACHE": project_dir / "cache" / "tldextract",
        "HF_HOME": project_dir / "cache" / "huggingface",
        "MPLCONFIGDIR": project_dir / "cache" / "matplotlib",
    }
    for key, path in homes.items():
        if key not in os.environ:
            path.mkdir(parents=True, exist_ok=True)
            os.environ[key] = str(path)
    quiet_libraries()
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", message="The specified dataset source can be interpreted in multiple ways")
    for key, value in thread_pools(threads or os.cpu_count() or 1).items():
        os.environ.setdefault(key, value)


def thread_pools(threads: int) -> dict[str, str]:
    """The environment that sizes the numeric libraries' thread pools (OpenMP, MKL, OpenBLAS) to ``threads``."""
    return {key: str(threads) for key in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")}


def quiet_libraries() -> None:
    """Libraries' chatter off (voiceloop reports progress itself): here, and in every worker process."""
    for name in _QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)


def cpu_seconds() -> float:
    """CPU seconds used so far by this process (every thread) and its children that have ended.

    The difference across a stage is the core-seconds it cost: on a machine of N cores a job
    cannot finish in less than its core-seconds / N, however its stages are scheduled.
    """
    import resource

    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime
