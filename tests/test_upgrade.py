"""A project folder made by the code before the issue-15 re-layout keeps working with today's code.

The old code is the repository itself at ``PRE_MOVE`` (the last commit before the packages moved),
taken from git history, so the project it makes is exactly what users of that version have: its
store zones and manifests, keys, audit chain, MLflow runs and registered bundle, the DVC
workspace, and a Prefect deployment registered by its ``voiceloop schedule``. Today's code then
reads all of it, loads the old champion in the gate, and retrains on top of it.

The old code runs in a subprocess with its source folder first on ``sys.path``, against this
environment's packages. If a later dependency upgrade stops the *old code itself* from running,
that is not an upgrade problem of the project folder: pin ``PRE_MOVE``'s project as a fixture then.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import TINY_INTENT
from tests.flow_helpers import PROMOTING_GATE, cli

PRE_MOVE = "2c650017b86d4c56f0946ee65e158043af99b762"  # issue 15 step (a): the layout before core/
REPO = Path(__file__).parents[1]
OLD_TIMEOUT_S = 600


@dataclass(frozen=True)
class OldProject:
    params: Path
    summary: dict[str, Any]  # the old `voiceloop retrain --json`
    api_url: str  # the Prefect server holding the old deployment


def _old_source(dest: Path) -> Path:
    """The repository at ``PRE_MOVE``, unpacked from git history into ``dest``."""
    found = subprocess.run(["git", "-C", str(REPO), "cat-file", "-e", f"{PRE_MOVE}^{{commit}}"],
                           capture_output=True)
    if found.returncode != 0:
        shallow = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--is-shallow-repository"],
                                 capture_output=True, text=True).stdout.strip()
        if shallow == "true":
            pytest.skip(f"shallow clone: commit {PRE_MOVE[:7]} is not here (git fetch --unshallow)")
        pytest.fail(f"commit {PRE_MOVE[:7]} (the code before the re-layout) is not in {REPO}'s history")
    archive = subprocess.run(["git", "-C", str(REPO), "archive", "--format=tar", PRE_MOVE],
                             capture_output=True, check=True).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(dest, filter="data")
    return dest


def _old_voiceloop(source: Path, api_url: str, *args: str) -> str:
    """Run the old ``voiceloop`` command; its stdout. Fails with its output if it fails."""
    code = ("import sys, voiceloop; "
            f"assert voiceloop.__file__.startswith({str(source)!r}), voiceloop.__file__; "
            "from voiceloop.cli import app; app()")
    env = {k: v for k, v in os.environ.items() if not k.startswith("VOICELOOP_")}
    env |= {"PREFECT_API_URL": api_url, "PYTHONPATH": str(source)}
    done = subprocess.run([sys.executable, "-c", code, *args], cwd=source, env=env, capture_output=True,
                          text=True, timeout=OLD_TIMEOUT_S)
    assert done.returncode == 0, f"old voiceloop {' '.join(args)} failed:\n{done.stdout}\n{done.stderr[-4000:]}"
    return done.stdout


@pytest.fixture(scope="module")
def old_project(tiny_corpus: Path, tmp_path_factory: pytest.TempPathFactory, prefect_harness: None) -> OldProject:
    """The tiny retrain and a weekly schedule, made by the old code."""
    from prefect.settings import PREFECT_API_URL

    api_url = str(PREFECT_API_URL.value())
    source = _old_source(tmp_path_factory.mktemp("pre-move-code"))
    root = tmp_path_factory.mktemp("old-project")
    shutil.copytree(tiny_corpus, root / "sources")
    params = root / "params.yaml"
    # the tiny retrain of every flow test, in keys the old settings knew (write_params writes today's)
    params.write_text(yaml.safe_dump({
        "project_dir": str(root / "state"),
        "sources": {"call_store": str(root / "sources" / "calls"), "golden_store": str(root / "sources" / "golden")},
        "intent": TINY_INTENT, "asr": {"enabled": False}, "redaction": {"audio": {"splits": ["train"]}},
        "gate": PROMOTING_GATE,
    }))
    out = _old_voiceloop(source, api_url, "retrain", "--params", str(params), "--json")
    summary = json.loads(out[out.index("{"):])
    _old_voiceloop(source, api_url, "schedule", "--cron", "0 3 * * 1", "--name", "old-weekly", "--params", str(params))
    return OldProject(params, summary, api_url)


def test_the_old_project_reads_as_it_was(old_project: OldProject) -> None:
    from core.settings import load_settings
    from governance.session import open_store
    from training.datasets import open_version

    verified = cli("audit", "verify", "--params", str(old_project.params))
    assert verified.exit_code == 0 and "chain intact" in verified.output, verified.output
    status = cli("status", "--params", str(old_project.params), "--json")
    assert status.exit_code == 0, status.output
    assert json.loads(status.output)["champion"]["version"] == "1"

    settings = load_settings(old_project.params)
    store = open_store(settings, "ml-engineer", "training")
    for name, old in old_project.summary["datasets"].items():
        version = open_version(store, name, old["digest"])
        assert version.data is not None and len(version.data) == old["rows"]


def test_todays_server_serves_the_old_champion(old_project: OldProject) -> None:
    from fastapi.testclient import TestClient

    from core.settings import load_settings
    from serving.api_keys import parse_key
    from serving.app import create_app
    from serving.runtime import build_runtime

    old_format = parse_key("upgrade-key", "a key file line from before names and roles")  # the key alone
    runtime = build_runtime(load_settings(old_project.params), keys=(old_format,))
    with TestClient(create_app(runtime), headers={"X-API-Key": "upgrade-key"}) as client:
        meaning = client.post("/v1/understand", json={"text": "my card has not arrived yet"})
    assert meaning.status_code == 200, meaning.text
    assert meaning.json()["bundle"] == "1" and meaning.json()["intent"]


def test_the_old_deployment_runs_todays_flow(old_project: OldProject) -> None:
    """What a runner does with a stored deployment: import its entry point, bind its parameters."""
    from prefect.utilities.importtools import import_object

    from flows.retrain import retrain
    from flows.schedule import served_deployment

    served = served_deployment(old_project.api_url, "old-weekly")
    assert import_object(served.entrypoint) is retrain
    bound = retrain.validate_parameters(served.parameters or {})
    assert bound["params_file"] == str(old_project.params)


def test_the_first_retrain_after_the_upgrade(old_project: OldProject) -> None:
    """Same data, same digests; the intent model is trained once more (its settings lost three keys),
    judged against the old champion, and the retrain after that reuses it."""
    from flows.retrain import retrain

    first = retrain(params_file=str(old_project.params)).to_json()
    assert {n: d["digest"] for n, d in first["datasets"].items()} == {
        n: d["digest"] for n, d in old_project.summary["datasets"].items()}
    assert first["training"]["reused"] is False
    assert first["training"]["run_id"] != old_project.summary["training"]["run_id"]
    assert first["gate"]["bundle_version"] == "2"
    assert first["gate"]["champion"] == ("2" if first["gate"]["promoted"] else "1")

    second = retrain(params_file=str(old_project.params)).to_json()
    assert second["training"] == {**first["training"], "reused": True}

    verified = cli("audit", "verify", "--params", str(old_project.params))
    assert verified.exit_code == 0 and "chain intact" in verified.output, verified.output
