"""Lineage, MLflow side: which runs used which dataset versions, and what was registered from them.

A training run records every dataset it used as a param ``dataset.<name> = <digest>``
(:mod:`training.finetune`); a component model version is registered from the run; a bundle
version names its components in tags ``component.<kind> = "<model>/<version>"``. Following those
three links answers "which models saw this call" (from the store's dataset manifests) and "what was
this model trained on", and lets an erasure mark every model and bundle version that saw the
erased calls. Nothing here reads call data: params, tags and aliases only.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from mlflow.entities import Run
from mlflow.exceptions import MlflowException

from training.registry import RETRAIN_REQUIRED_TAG, Registry, with_request
from training.warm_start import FROM_RUN_PARAM

DATASET_PARAM = "dataset."


@dataclass(frozen=True)
class RunInfo:
    run_id: str
    name: str
    status: str
    started_at: str | None
    datasets: dict[str, str]  # dataset name -> digest
    input_rows: dict[str, int]  # dataset name -> rows, as logged with the run's inputs
    retrain_required: str | None


@dataclass(frozen=True)
class ModelInfo:
    name: str
    version: str
    run_id: str | None
    retrain_required: str | None


@dataclass(frozen=True)
class BundleInfo:
    version: str
    run_id: str | None
    components: dict[str, str]
    aliases: tuple[str, ...]
    retrain_required: str | None


@dataclass
class ModelLineage:
    """Runs, component model versions and bundle versions downstream of some dataset versions."""

    runs: list[RunInfo] = field(default_factory=list)
    models: list[ModelInfo] = field(default_factory=list)
    bundles: list[BundleInfo] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _run_info(run: Run) -> RunInfo:
    params = run.data.params
    rows = {}
    for dataset_input in run.inputs.dataset_inputs if run.inputs else []:
        name = dataset_input.dataset.name.split("@", 1)[0]
        profile = dataset_input.dataset.profile or ""
        if '"num_rows"' in profile:
            rows[name] = int(json.loads(profile)["num_rows"])
    started = (datetime.fromtimestamp(run.info.start_time / 1000, UTC).isoformat()
               if run.info.start_time else None)
    return RunInfo(
        run_id=run.info.run_id,
        name=run.info.run_name or "",
        status=run.info.status,
        started_at=started,
        datasets={k[len(DATASET_PARAM):]: v for k, v in sorted(params.items()) if k.startswith(DATASET_PARAM)},
        input_rows=rows,
        retrain_required=run.data.tags.get(RETRAIN_REQUIRED_TAG),
    )


def runs_using(registry: Registry, datasets: Iterable[tuple[str, str]]) -> list[RunInfo]:
    """Runs (in every experiment) that recorded one of the ``(name, digest)`` dataset versions, and the runs
    warm-started from those (and from those, on down)."""
    client = registry.client
    experiments = [e.experiment_id for e in client.search_experiments()]
    found: dict[str, RunInfo] = {}
    for name, digest in sorted(set(datasets)):
        for run in client.search_runs(experiments, filter_string=f"params.`{DATASET_PARAM}{name}` = '{digest}'"):
            found.setdefault(run.info.run_id, _run_info(run))
    # A warm-started run carries its starting model's weights, and so what that model saw (training/warm_start.py)
    ancestors = list(found)
    while ancestors:
        parent = ancestors.pop()
        for run in client.search_runs(experiments, filter_string=f"params.`{FROM_RUN_PARAM}` = '{parent}'"):
            if run.info.run_id not in found:
                found[run.info.run_id] = _run_info(run)
                ancestors.append(run.info.run_id)
    return sorted(found.values(), key=lambda r: (r.started_at or "", r.run_id))


def _bundles(registry: Registry) -> list[BundleInfo]:
    client, aliases = registry.client, registry.aliases()
    try:
        versions = client.search_model_versions(f"name='{registry.bundle_name}'")
    except MlflowException:
        return []
    out = []
    for mv in versions:
        tags = mv.tags or {}
        out.append(BundleInfo(str(mv.version), mv.run_id,
                              {k.split(".", 1)[1]: v for k, v in tags.items() if k.startswith("component.")},
                              tuple(sorted(aliases.get(str(mv.version), []))), tags.get(RETRAIN_REQUIRED_TAG)))
    return sorted(out, key=lambda b: int(b.version))


def bundles_containing(registry: Registry, references: Iterable[str]) -> list[BundleInfo]:
    """Bundle versions naming one of the component references (``"model/version"``)."""
    wanted = set(references)
    return [b for b in _bundles(registry) if wanted & set(b.components.values())]


def models_of_runs(registry: Registry, run_ids: Iterable[str]) -> list[ModelInfo]:
    """Component model versions registered from the runs (bundle versions excluded)."""
    out = []
    for run_id in sorted(set(run_ids)):
        for mv in registry.client.search_model_versions(f"run_id='{run_id}'"):
            if mv.name != registry.bundle_name:
                out.append(ModelInfo(mv.name, str(mv.version), mv.run_id, (mv.tags or {}).get(RETRAIN_REQUIRED_TAG)))
    return sorted(out, key=lambda m: (m.name, int(m.version)))


def lineage_of_datasets(registry: Registry, datasets: Iterable[tuple[str, str]]) -> ModelLineage:
    """Everything trained or evaluated on the dataset versions, down to the bundles that serve it."""
    runs = runs_using(registry, datasets)
    models = models_of_runs(registry, [r.run_id for r in runs])
    bundles = bundles_containing(registry, [f"{m.name}/{m.version}" for m in models])
    return ModelLineage(runs, models, bundles)


@dataclass
class ModelVersionLineage:
    model: ModelInfo
    run: RunInfo | None
    bundles: list[BundleInfo]

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def lineage_of_model(registry: Registry, name: str, version: str) -> ModelVersionLineage:
    """The run a model version (or bundle version) came from, its datasets, and the bundles holding it.

    Raises ``LookupError`` when the registry has no such version.
    """
    client = registry.client
    try:
        mv = client.get_model_version(name, version)
    except MlflowException:
        raise LookupError(f"no model version {name}/{version} in the registry at {client.tracking_uri}") from None
    model = ModelInfo(mv.name, str(mv.version), mv.run_id, (mv.tags or {}).get(RETRAIN_REQUIRED_TAG))
    run = _run_info(client.get_run(mv.run_id)) if mv.run_id else None
    if name == registry.bundle_name:
        bundles = [b for b in _bundles(registry) if b.version == model.version]
    else:
        bundles = bundles_containing(registry, [f"{name}/{version}"])
    return ModelVersionLineage(model, run, bundles)


def mark_retrain_required(registry: Registry, lineage: ModelLineage, request_id: str) -> dict[str, list[str]]:
    """Tag every run, model version and bundle version of ``lineage`` with the erasure request."""
    for run in lineage.runs:
        registry.client.set_tag(run.run_id, RETRAIN_REQUIRED_TAG, with_request(run.retrain_required, request_id))
    for model in lineage.models:
        registry.tag_retrain_required(model.name, model.version, request_id)
    for bundle in lineage.bundles:
        registry.tag_retrain_required(registry.bundle_name, bundle.version, request_id)
    return {
        "runs": [r.run_id for r in lineage.runs],
        "model_versions": [f"{m.name}/{m.version}" for m in lineage.models],
        "bundle_versions": [f"{registry.bundle_name}/{b.version}" for b in lineage.bundles],
    }
