"""Shared fixtures: one tiny corpus, one Prefect harness, real components throughout.

Expensive things are session-scoped: the simulated corpus (espeak-ng + sox + faster-whisper)
is built once, and Prefect runs against one temporary server for the whole session.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf
import yaml

REPO = Path(__file__).resolve().parents[1]
# One server of each kind per session, started on first use: moto's S3 (``s3`` per test), PostgreSQL, mlflow server
pytest_plugins = ["tests.s3_server", "tests.pg_server", "tests.mlflow_server"]
_SESSION_HOME = Path(tempfile.mkdtemp(prefix="voiceloop-tests-"))
os.environ.setdefault("VOICELOOP_TEST_HOME", str(_SESSION_HOME))
# Rich wraps console output at the terminal's width, and a long temporary path then splits the words
# a CLI test looks for across lines; every command a test runs (in process or as a subprocess) gets
# a console wide enough never to wrap, whatever terminal or folder the suite runs from.
os.environ["COLUMNS"] = "1000"

from core.runtime import prepare  # noqa: E402

prepare(_SESSION_HOME / "tools", threads=2)

import torch  # noqa: E402

torch.set_num_threads(2)


# Small, fast settings for flow tests; the real defaults live in params.yaml / core.settings.
TINY_INTENT = {
    "epochs": 2,
    "batch_size": 32,
    "max_length": 24,
    "banking77_limit": 800,
    "lora": {"top_layers": 1},  # lower layers are cached: fast on 2 cores
    "members": 1,
    "seed": 0,
}

# Whisper tiny.en is already tiny: real weights, one short epoch, a few digit strings.
TINY_ASR = {
    "epochs": 1,
    "digits_fsdd": 6,
    "digits_synthetic": 6,
    # merged whole: half-merged, this one-epoch model sits where int8 rounding flips its many wrong
    # words (export test: WER 0.61 -> 0.65 on 84 turns); the default's export is measured on the
    # benchmark model (benchmarks/README.md#asr)
    "lora": {"encoder_layers": 1, "merge_scale": 1.0},
}


def write_params(folder: Path, **sections: Any) -> Path:
    """The repo's params.yaml with ``sections`` merged in, state under ``folder/state``."""
    data: dict[str, Any] = yaml.safe_load((REPO / "params.yaml").read_text())
    data.update(project_dir=str(folder / "state"), threads=2)
    data["compute"] = {**data.get("compute", {}), "fan_out": False}  # in-process shards unless a test asks for Dask
    # a test project's later retrains train from the base model (cold) unless a test asks for a warm start: their
    # figures then do not depend on which champion an earlier test left (tests/test_warm_start.py turns it on)
    data["warm_start"] = {**data.get("warm_start", {}), "enabled": False}
    for name, values in sections.items():
        data[name] = {**data.get(name, {}), **values} if isinstance(values, dict) else values
    path = folder / "params.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def write_call(
    store: Path,
    call_id: str,
    *,
    consent: bool = True,
    seconds: float = 2.0,
    rate: int = 16000,
    turns: list[dict[str, Any]] | None = None,
    audio_bytes: bytes | None = None,
    started_at: str = "2026-11-20T10:00:00+00:00",
    **extra: Any,
) -> Path:
    """Hand-write one call (tone audio) for contract and ingest edge cases."""
    store.mkdir(parents=True, exist_ok=True)
    (store / "audio").mkdir(exist_ok=True)
    audio_path = store / "audio" / f"{call_id}.wav"
    if audio_bytes is None:
        t = np.arange(int(seconds * rate)) / rate
        sf.write(audio_path, 0.1 * np.sin(2 * np.pi * 440 * t), rate, subtype="PCM_16")
    else:
        audio_path.write_bytes(audio_bytes)
    document = {
        "call_id": call_id,
        "started_at": started_at,
        "caller_id": f"caller-{call_id}",
        "consent": {"training": consent},
        "audio": f"audio/{call_id}.wav",
        "turns": turns
        or [
            {"speaker": "bot", "start_s": 0.0, "end_s": 0.8, "text": "how can I help you today"},
            {"speaker": "customer", "start_s": 0.9, "end_s": 1.9, "text": "my card has not arrived yet"},
        ],
        "labels": []
        if turns
        else [{"turn": 1, "transcript": "my card has not arrived yet", "intent": "card_arrival"}],
        **extra,
    }
    path = store / f"{call_id}.json"
    path.write_text(json.dumps(document))
    return path


@pytest.fixture(scope="module")
def receiver() -> Iterator[Any]:
    """Webhook receivers on 127.0.0.1 that Alertmanager can notify (tests/alerting_helpers.py), per module."""
    from tests.alerting_helpers import Receiver

    hooks = Receiver()
    hooks.thread.start()
    yield hooks
    hooks.server.shutdown()
    hooks.server.server_close()


@pytest.fixture(scope="session")
def prefect_harness() -> Iterator[None]:
    """One temporary Prefect server for every flow test in the session."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


@pytest.fixture(scope="session")
def label_studio(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """One real Label Studio for the session (tests/studio_server.py) on a free 127.0.0.1 port; stopped at the end.

    Its local-files root is the session's base folder, which holds every test project: any project's
    labels zone can be served (as ``qa.label_studio_files_root``)."""
    from tests.studio_server import running_studio

    with running_studio(tmp_path_factory.mktemp("label-studio"), tmp_path_factory.getbasetemp()) as studio:
        yield studio


@pytest.fixture(scope="session")
def tiny_corpus() -> Path:
    """A few simulated calls (train) and a small golden set, built once with the real simulator."""
    from voiceloop.simulate.calls import build_calls

    # VOICELOOP_TEST_CACHE keeps the corpus between local sessions; CI builds it fresh.
    root = Path(os.environ.get("VOICELOOP_TEST_CACHE", _SESSION_HOME)) / "corpus"
    if not (root / "golden").exists():
        build_calls(root / "calls", 8, split="train", seed=1, consent_rate=0.75)
        build_calls(root / "golden-tmp", 0, split="golden", seed=2, per_intent=1, consent_rate=1.0)
        (root / "golden-tmp").rename(root / "golden")
    return root


@pytest.fixture()
def copy_corpus(tiny_corpus: Path, tmp_path: Path) -> Path:
    """A private copy of the tiny corpus that a test may add to or break."""
    target = tmp_path / "sources"
    shutil.copytree(tiny_corpus, target)
    return target
