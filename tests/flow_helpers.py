"""One real retrain-flow run per test session, cloned into private projects that tests may change.

Training, MLflow runs and bundles are the expensive part of governance tests (erasure, lineage,
retention), so the flow runs once on the tiny corpus into a *template* project; every test module
then gets a copy of it (:func:`clone_project`), so erasing a caller in one module never changes what
another one sees. The template's corpus is changed in one way: a golden call is given to the caller
of a consenting training call, so one caller sits in both a training dataset and the golden set.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from core.settings import Settings, load_settings
from tests.conftest import TINY_ASR, TINY_INTENT, write_params

_TEMPLATE: TrainedProject | None = None
_RETRAINED: TrainedProject | None = None
_SKIP = {"prefect", "cache", "work"}  # tool homes and scratch: nothing a clone needs
# the session template also retrains ASR, and redacts on a local Dask cluster of two single-thread workers (the
# default path; every other test project redacts in-process: a cluster start per flow run would cost minutes)
TEMPLATE_SECTIONS: dict[str, Any] = {"asr": {"enabled": True}, "compute": {"fan_out": True, "workers": 2}}
# the second retrain changes an ASR setting only: the intent run is reused, the ASR is trained again
# and gated against the first bundle as champion (the template merged its LoRA whole)
RETRAIN_SECTIONS: dict[str, Any] = {"asr": {"enabled": True, "lora": {**TINY_ASR["lora"], "merge_scale": 0.5}}}
# promotes the first challenger (in keys every settings version knew: tests/test_upgrade.py writes it for old code)
PROMOTING_GATE: dict[str, Any] = {
    "floor": 0.0, "margin": 0.01, "n_bootstrap": 1000, "slice_alpha": 0.0, "clean_speech_max_extra_errors": 1000,
    "latency_budget_ms": 60_000, "latency_utterances": 8,
}
# ... whatever its ASR does: the one-epoch ASR of TINY_ASR is worse than the base model, and no margin
# may be wide enough to let it through (gate margins are capped at 0.02), so its criteria only report
ASR_REPORTED_ONLY: dict[str, Any] = {"report_only": ["asr_wer", "asr_wer_slices", "digit_accuracy"]}


@dataclass(frozen=True)
class TrainedProject:
    """A project after one retrain, and the caller who is in both a training set and the golden set."""

    params: Path
    sources: Path
    summary: dict[str, Any]
    caller_id: str  # clear caller id of the shared caller (in the sources only)
    call_ids: tuple[str, ...]  # that caller's calls (one train, one golden)
    sections: dict[str, Any] = field(default_factory=lambda: TEMPLATE_SECTIONS)  # its params beyond flow_params'
    earlier: tuple[dict[str, Any], ...] = ()  # the summaries of the retrains before the one in ``summary``

    @property
    def settings(self) -> Settings:
        return load_settings(self.params)


def flow_params(folder: Path, sources: Path, **sections: Any) -> Path:
    """Params for the tiny corpus: tiny intent config, a gate that promotes the first challenger."""
    intent = {**TINY_INTENT, **sections.pop("intent", {})}
    # ASR retraining (and the golden audio redaction it needs) is off unless a test asks for it: it
    # adds minutes per flow run. The session template runs with it, so every flow test module that
    # clones the template sees an ASR component; tests/test_asr_train.py checks it.
    asr = {**TINY_ASR, "enabled": False, **sections.pop("asr", {})}
    if not asr["enabled"]:
        sections.setdefault("redaction", {"audio": {"splits": ["train"]}})
    return write_params(
        folder,
        sources={"call_store": str(sources / "calls"), "golden_store": str(sources / "golden")},
        intent=intent,
        asr=asr,
        gate={**PROMOTING_GATE, **ASR_REPORTED_ONLY},
        **sections,
    )


def _share_a_caller(sources: Path) -> tuple[str, tuple[str, ...]]:
    """Give the first labelled golden call to the caller of the first consenting training call."""

    def consenting(split: str) -> list[tuple[Path, dict[str, Any]]]:
        docs = [(p, json.loads(p.read_text())) for p in sorted((sources / split).glob("*.json"))]
        return [(p, d) for p, d in docs if d["consent"]["training"] and any(lb.get("intent") for lb in d["labels"])]

    (_, train), (golden_path, golden) = consenting("calls")[0], consenting("golden")[0]
    golden["caller_id"] = train["caller_id"]
    golden_path.write_text(json.dumps(golden))
    return train["caller_id"], (train["call_id"], golden["call_id"])


def trained_template(tiny_corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> TrainedProject:
    """Run the retrain flow once per session (needs the ``prefect_harness`` fixture) and keep the result."""
    global _TEMPLATE
    if _TEMPLATE is None:
        from flows.retrain import retrain

        root = tmp_path_factory.mktemp("flow-template")
        sources = root / "sources"
        shutil.copytree(tiny_corpus, sources)
        caller_id, call_ids = _share_a_caller(sources)
        params = flow_params(root, sources, **TEMPLATE_SECTIONS)
        summary = retrain(params_file=str(params)).to_json()
        _TEMPLATE = TrainedProject(params, sources, summary, caller_id, call_ids)
    return _TEMPLATE


def retrained_template(tiny_corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> TrainedProject:
    """The template retrained once more with another ASR setting, once per session: the second retrain
    gates against a champion, so the store also holds the champion's golden transcripts and predictions."""
    global _RETRAINED
    if _RETRAINED is None:
        from flows.retrain import retrain

        first = clone_project(trained_template(tiny_corpus, tmp_path_factory), tmp_path_factory.mktemp("retrained"))
        params = flow_params(first.params.parent, first.sources, **RETRAIN_SECTIONS)
        summary = retrain(params_file=str(params)).to_json()
        _RETRAINED = TrainedProject(params, first.sources, summary, first.caller_id, first.call_ids,
                                    RETRAIN_SECTIONS, (first.summary,))
    return _RETRAINED


def clone_project(template: TrainedProject, dest: Path) -> TrainedProject:
    """A private copy of ``template`` under ``dest``, with every absolute path re-pointed at the copy.

    MLflow keeps absolute artifact URIs in its database and DVC its cache and remote in its config;
    both are rewritten so the clone's runs, model versions and DVC objects live in the clone only.
    """
    old_state = template.settings.root
    sources = dest / "sources"
    shutil.copytree(template.sources, sources)
    new_params = flow_params(dest, sources, **template.sections)
    new_state = load_settings(new_params).root
    shutil.copytree(old_state, new_state, ignore=lambda folder, names: _SKIP & set(names)
                    if Path(folder) == old_state else set())
    _repoint_sqlite(new_state / "mlflow.db", str(old_state), str(new_state))
    dvc_dir = new_state / "zones" / "datasets" / ".dvc"
    shutil.rmtree(dvc_dir / "tmp", ignore_errors=True)
    config = dvc_dir / "config"
    config.write_text(config.read_text().replace(str(old_state), str(new_state)))
    return TrainedProject(new_params, sources, template.summary, template.caller_id, template.call_ids,
                          template.sections, template.earlier)


def _repoint_sqlite(db: Path, old: str, new: str) -> None:
    """Replace ``old`` by ``new`` in every text column of every table (artifact URIs, sources)."""
    with sqlite3.connect(db) as conn:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        for table in tables:
            for column in conn.execute(f'PRAGMA table_info("{table}")').fetchall():
                name, kind = column[1], (column[2] or "").upper()
                if any(t in kind for t in ("CHAR", "TEXT", "CLOB")):
                    conn.execute(f'UPDATE "{table}" SET "{name}" = replace("{name}", ?, ?) WHERE "{name}" LIKE ?',
                                 (old, new, f"%{old}%"))


def project_fixture(name: str, fixture_name: str = "project", template: Any = trained_template) -> Any:
    """A module-scoped fixture (``project``): the module's own clone of the trained template (or of
    ``template``, e.g. :func:`retrained_template`)."""

    @pytest.fixture(scope="module", name=fixture_name)
    def fixture(tiny_corpus: Path, tmp_path_factory: pytest.TempPathFactory,
                prefect_harness: None) -> TrainedProject:
        return clone_project(template(tiny_corpus, tmp_path_factory), tmp_path_factory.mktemp(name))

    return fixture


def cli(*args: str, env: dict[str, str] | None = None, input: str | None = None) -> Any:
    """Invoke the ``voiceloop`` command in-process."""
    from typer.testing import CliRunner

    from voiceloop.cli import app

    return CliRunner().invoke(app, list(args), env=env, input=input)
