"""The retrain flow end to end on the tiny corpus, with real Prefect, MLflow, GX, Presidio and DVC."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import mlflow
import pytest
from mlflow.tracking import MlflowClient

from core.settings import load_settings
from governance.audit import open_audit
from tests.conftest import REPO, TINY_INTENT
from tests.flow_helpers import flow_params
from training.registry import Registry

pytestmark = pytest.mark.usefixtures("prefect_harness")


def _run(params: Path) -> dict[str, Any]:
    from flows.retrain import retrain

    return retrain(params_file=str(params)).to_json()


def _params(folder: Path, sources: Path, **intent: Any) -> Path:
    return flow_params(folder, sources, intent=intent)


@pytest.fixture(scope="module")
def first_run(tiny_corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    folder = tmp_path_factory.mktemp("retrain")
    sources = folder / "sources"
    shutil.copytree(tiny_corpus, sources)
    params = _params(folder, sources)
    return params, _run(params)


def _consent(sources: Path) -> dict[str, bool]:
    return {p.stem: json.loads(p.read_text())["consent"]["training"] for p in (sources / "calls").glob("*.json")}


def test_first_run_trains_gates_and_promotes(first_run: tuple[Path, dict[str, Any]]) -> None:
    params, summary = first_run
    settings = load_settings(params)
    consent = _consent(params.parent / "sources")
    assert summary["ingest"]["train"]["ingested"] == sum(consent.values())
    assert summary["ingest"]["train"]["no_consent"] == len(consent) - sum(consent.values())
    assert summary["gate"]["verdict"] == "promote" and summary["gate"]["champion"] == "1"
    assert set(summary["cpu_s"]) <= set(summary["timings_s"]) and summary["cpu_s"]["redact"] > 0

    mlflow.set_tracking_uri(settings.tracking_uri)
    client = MlflowClient()
    run = client.get_run(summary["training"]["run_id"])
    assert run.data.params["intent.lora.r"] == str(settings.intent.lora.r)
    assert {i.dataset.name.split("@")[0] for i in run.inputs.dataset_inputs} == {
        "intent-train", "intent-golden", "banking77-train"}
    assert len(client.get_metric_history(run.info.run_id, "train_loss")) == TINY_INTENT["epochs"]
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"intent_model", "plots", "gate", "bundle"} <= artifacts
    champion = client.get_model_version_by_alias(settings.tracking.bundle_name, "champion")
    assert champion.tags["component.intent"] == f"{settings.tracking.intent_model_name}/1"

    audit = open_audit(settings)
    assert audit.verify().ok
    actions = {e.action for e in audit.entries()}
    assert {"raw.write", "raw.read", "redacted.write", "datasets.write", "gate.decision", "registry.promote"} <= actions
    # every dataset version is tracked by DVC and pushed to the remote
    for name, info in summary["datasets"].items():
        assert (settings.zones_dir / "datasets" / name / f"{info['digest']}.dvc").exists()
    assert any(Path(settings.dvc_remote_url).rglob("*.dir"))


def test_no_consent_call_never_reaches_a_dataset(first_run: tuple[Path, dict[str, Any]]) -> None:
    params, _ = first_run
    settings = load_settings(params)
    refused = {call for call, ok in _consent(params.parent / "sources").items() if not ok}
    assert refused, "the tiny corpus should hold at least one no-consent call"
    in_datasets = set()
    for manifest in settings.zones_dir.glob("datasets/*/*/manifest.json"):
        in_datasets |= set(json.loads(manifest.read_text())["call_ids"])
    assert in_datasets and not (refused & in_datasets)
    assert not any((settings.zones_dir / "raw" / call).exists() for call in refused)


def test_redacted_zone_holds_no_caller_ids(first_run: tuple[Path, dict[str, Any]]) -> None:
    params, _ = first_run
    settings = load_settings(params)
    callers = {json.loads(p.read_text())["caller_id"] for p in (params.parent / "sources/calls").glob("*.json")}
    for path in (settings.zones_dir / "redacted").glob("*.json"):
        text = path.read_text()
        assert not any(caller in text for caller in callers)


def test_second_run_pulls_nothing_new_and_repeats_nothing(first_run: tuple[Path, dict[str, Any]]) -> None:
    params, first = first_run
    again = _run(params)
    assert again["ingest"]["train"]["ingested"] == 0 and again["ingest"]["golden"]["ingested"] == 0
    assert again["redaction"]["calls"] == 0
    assert again["datasets"] == first["datasets"]
    assert again["training"]["reused"] and again["gate"]["repeated"]
    assert again["gate"]["bundle_version"] == first["gate"]["bundle_version"]


def test_late_call_is_picked_up_and_a_worse_challenger_is_not_promoted(
    first_run: tuple[Path, dict[str, Any]],
) -> None:
    params, first = first_run
    sources = params.parent / "sources" / "calls"
    donor = next(p for p in sorted(sources.glob("*.json")) if json.loads(p.read_text())["consent"]["training"])
    document = json.loads(donor.read_text())
    late_id = "late-" + document["call_id"]
    document.update(call_id=late_id, started_at="2020-01-01T00:00:00+00:00")
    (sources / f"{late_id}.json").write_text(json.dumps(document))
    # a challenger that barely trains: the gate must block it against the champion
    worse = _params(params.parent, params.parent / "sources", learning_rate=1e-7, head_learning_rate=1e-7, epochs=1,
                    probe_steps=0)
    summary = _run(worse)
    assert summary["ingest"]["train"]["ingested"] == 1
    gate = summary["gate"]
    # the tiny golden set may be too small to call it worse outright: blocked either way, the champion stays
    assert gate["verdict"] in ("reject", "underpowered") and not gate["promoted"]
    assert gate["champion"] == first["gate"]["bundle_version"]
    assert int(gate["bundle_version"]) > int(first["gate"]["bundle_version"])
    assert any("non-inferiority" in reason for reason in gate["reasons"])
    settings = load_settings(worse)
    mlflow.set_tracking_uri(settings.tracking_uri)
    challenger = MlflowClient().get_model_version_by_alias(settings.tracking.bundle_name, "challenger")
    assert str(challenger.version) == gate["bundle_version"] and challenger.tags["gate.verdict"] == gate["verdict"]
    # its golden predictions are kept under its intent model's name: promoted by hand later, the gate reads them
    blocked = Registry(settings).by_alias("challenger")
    assert blocked is not None and blocked.intent_model
    digest = summary["datasets"]["intent-golden"]["digest"]
    kept = [p.name for p in (settings.zones_dir / "datasets" / "intent-golden" / f"{digest}.evaluations").glob("*")]
    assert any(name.startswith(f"champion-intent-{blocked.intent_model.replace('/', '-v')}-") for name in kept), kept


def _training_started(audit_url: str) -> bool:
    """The finetune step opens its datasets (an audited read) right before training."""
    path = Path(audit_url.removeprefix("sqlite:///"))
    if not path.exists():
        return False
    try:  # read-only: never wait on the writer's lock
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=1) as conn:
            return conn.execute("SELECT 1 FROM audit_log WHERE action = 'datasets.read' LIMIT 1").fetchone() is not None
    except sqlite3.Error:  # the subprocess may be creating the schema right now
        return False


def test_killed_run_resumes_without_redoing_finished_steps(tiny_corpus: Path, tmp_path: Path) -> None:
    sources = tmp_path / "sources"
    shutil.copytree(tiny_corpus, sources)
    params = _params(tmp_path, sources, epochs=8)  # long enough to be killed mid-training
    settings = load_settings(params)
    env = {**os.environ, "VOICELOOP_PARAMS": str(params)}
    env.pop("PREFECT_API_URL", None)
    env.pop("MLFLOW_TRACKING_URI", None)
    proc = subprocess.Popen([sys.executable, "-m", "voiceloop.cli", "retrain", "--params", str(params)],
                            cwd=REPO, env=env, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and proc.poll() is None and not _training_started(settings.audit_url):
        time.sleep(0.2)
    assert proc.poll() is None, "the run ended before training started; cannot test a kill"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(30)
    raw_before = sorted(p.name for p in (settings.zones_dir / "raw").iterdir())
    assert raw_before, "the killed run should have ingested calls"

    resumed = _run(params)
    assert resumed["ingest"]["train"]["ingested"] == 0 and resumed["redaction"]["calls"] == 0
    assert not resumed["training"]["reused"]  # the killed training run never finished
    assert resumed["gate"]["verdict"] == "promote"
    assert sorted(p.name for p in (settings.zones_dir / "raw").iterdir()) == raw_before
    assert open_audit(settings).verify().ok


def test_unlabelled_calls_wait_for_labels_and_the_retrain_runs_to_the_end(tiny_corpus: Path, tmp_path: Path) -> None:
    """Production calls carry transcripts, not intents: no empty version is published or opened, the intent
    model trains on what is labelled (BANKING77 here), and the summary counts the calls waiting for labels."""
    sources = tmp_path / "sources"
    shutil.copytree(tiny_corpus, sources)
    for path in (sources / "calls").glob("*.json"):
        path.write_text(json.dumps({**json.loads(path.read_text()), "labels": []}))
    train_calls = {call_id for call_id, consented in _consent(sources).items() if consented}
    params = _params(tmp_path, sources)

    summary = _run(params)
    assert "intent-train" not in summary["datasets"] and summary["datasets"]["intent-golden"]["rows"] > 0
    assert summary["waiting_for_labels"]["calls"] >= len(train_calls) > 0
    assert summary["training"]["golden_accuracy"] > 0 and summary["gate"]["verdict"] == "promote"
    manifests = [json.loads(p.read_text()) for p in
                 (load_settings(params).zones_dir / "datasets").glob("*/*/manifest.json")]
    assert manifests and all(m["rows"] > 0 and not set(m["call_ids"]) & train_calls for m in manifests)


def test_dvc_repro_gives_the_flows_dataset_digests(first_run: tuple[Path, dict[str, Any]], tmp_path: Path) -> None:
    params, _ = first_run
    summary = _run(params)  # the current state (other tests add calls); reuses every finished step
    workspace = tmp_path / "workspace"
    workspace.mkdir()
    for name in ("dvc.yaml", "data", "core", "training", "governance"):
        (workspace / name).symlink_to(REPO / name)
    shutil.copy(params, workspace / "params.yaml")
    bin_dir = Path(sys.executable).parent
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "DVC_NO_ANALYTICS": "1"}
    env.pop("VOICELOOP_PARAMS", None)
    subprocess.run([str(bin_dir / "dvc"), "init", "--no-scm", "-q"], cwd=workspace, env=env, check=True)
    subprocess.run([str(bin_dir / "dvc"), "repro", "datasets"], cwd=workspace, env=env, check=True,
                   capture_output=True)
    digests = json.loads((load_settings(params).root / "dvc-stage" / "datasets.json").read_text())
    assert digests == {name: info["digest"] for name, info in summary["datasets"].items()}


def test_the_retrain_command_shows_each_step_and_keeps_library_logs_in_a_file(
    first_run: tuple[Path, dict[str, Any]]
) -> None:
    from typer.testing import CliRunner

    from voiceloop.cli import app

    params, _ = first_run
    result = CliRunner().invoke(app, ["retrain", "--params", str(params)])  # not a terminal: one line a step
    assert result.exit_code == 0, result.output
    for step in ("ingest", "redact", "validate", "datasets", "finetune", "gate"):
        assert re.search(rf"^start  {step}$", result.output, re.M), (step, result.output)
        assert re.search(rf"^done   {step} \(\d+\.\d s\)$", result.output, re.M), (step, result.output)
    log = Path(re.findall(r"^log: (.+)$", result.output, re.M)[-1])
    assert log.parent == load_settings(params).root / "logs" and log.name.startswith("retrain-")
    assert "Finished in state Completed" in log.read_text()  # Prefect's INFO lines: in the log ...
    assert "Finished in state" not in result.output and " INFO " not in result.output  # ... not on the console


def test_status_command_shows_the_champion(first_run: tuple[Path, dict[str, Any]]) -> None:
    from typer.testing import CliRunner

    from voiceloop.cli import app

    params, summary = first_run
    result = CliRunner().invoke(app, ["status", "--json", "--params", str(params)])
    assert result.exit_code == 0, result.output
    state = json.loads(result.stdout)
    assert state["champion"]["version"] == summary["gate"]["champion"]
    assert {b["verdict"] for b in state["bundles"]} <= {"promote", "reject", "underpowered"}


def test_cli_names_a_missing_params_file() -> None:
    from typer.testing import CliRunner

    from voiceloop.cli import app

    result = CliRunner().invoke(app, ["retrain", "--params", "/nonexistent/params.yaml"])
    assert result.exit_code == 2
    assert "/nonexistent/params.yaml does not exist" in result.output
