"""Weekly retrains that top up the champion: its unmerged adapters, the turns it never saw, and a replay sample.

A weekly run with a tenth new calls need not learn everything again from the base model. With
``warm_start.enabled`` and a champion in the registry, each model (intent, ASR) starts from the
champion's own LoRA weights, kept unmerged for this (the intent model's folder; the ASR run's
``asr_adapter``), and trains for ``warm_start.*_epochs`` on the turns the champion never trained
on (new, or changed since: a fixed transcript, a reviewed label) plus a replay sample of the
others drawn by seed, so what it knew is rehearsed instead of overwritten. The gate then judges
the challenger on the full golden sets exactly as it judges a cold one: a warm start that forgot
something is rejected like any worse model (tests/test_warm_start.py).

A run trains cold (from the base model, on everything) and says why when: there is no champion
component; it is marked as trained on erased calls (its weights must not carry them on); its
shape differs from the configuration (base model, LoRA layout, window); a dataset it trained on
is no longer in the store; nothing is new (then the run finds the model of exactly this data, often
the champion's own run, and trains nothing); or more than ``warm_start.max_new_share`` of the turns
are new.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel

from core.settings import WarmStartConfig
from governance.store import GovernedStore
from training.datasets import EVALUATION_SETS, DatasetVersion, open_version, row_key
from training.registry import CHAMPION, RETRAIN_REQUIRED_TAG, Registry

Component = Literal["intent", "asr"]

#: The run params (``<component>.<key>``, training/finetune.py ``flat_params``) that fix a model's shape: a
#: champion whose values differ cannot lend its weights. Prefixes: ``lora.`` covers every LoRA setting.
SHAPE_PARAMS: dict[Component, tuple[str, ...]] = {
    "intent": ("base_model", "lora.r", "lora.target_modules", "lora.top_layers", "lora.modules_to_save",
               "max_length", "head_scale"),
    "asr": ("base_model", "lora.r", "lora.target_modules", "lora.encoder_layers", "window_s"),
}
# What MLflow records of a warm run (and lineage follows: an erasure marks models started from marked ones).
FROM_PARAM, FROM_RUN_PARAM = "warm_start.from", "warm_start.run"


@dataclass(frozen=True)
class WarmStart:
    """Where a warm run starts and what it trains on."""

    source: str  # the champion component it starts from, "voiceloop-intent/4"
    run_id: str  # that component's training run
    init_dir: Path  # the intent model's folder, or the ASR run's adapter folder
    picked: Mapping[str, tuple[int, ...]]  # dataset name -> indices of the rows this run trains on
    new_rows: int
    replay_rows: int
    epochs: int
    learning_rate_scale: float = 1.0

    def tuned(self, config: BaseModel, rates: tuple[str, ...]) -> Any:
        """``config`` as a top-up trains with it: its epochs, and each of ``rates`` scaled."""
        update: dict[str, Any] = {"epochs": self.epochs}
        update.update({name: getattr(config, name) * self.learning_rate_scale for name in rates})
        return config.model_copy(update=update)

    def rows_of(self, name: str) -> list[int]:
        """The indices of dataset ``name``'s rows this run trains on (none: the set adds nothing this week)."""
        return list(self.picked.get(name, ()))

    def identity(self) -> dict[str, Any]:
        """Where a warm run starts and on which rows: with its datasets and its (tuned) configuration, what makes
        two warm runs the same run (its train key: a finished one is reused)."""
        rows = json.dumps({name: list(idx) for name, idx in sorted(self.picked.items())})
        return {"from": self.source, "rows": hashlib.sha256(rows.encode()).hexdigest()[:24]}

    def params(self) -> dict[str, Any]:
        return {FROM_PARAM: self.source, FROM_RUN_PARAM: self.run_id, "warm_start.new_rows": self.new_rows,
                "warm_start.replay_rows": self.replay_rows, "warm_start.epochs": self.epochs,
                "warm_start.learning_rate_scale": self.learning_rate_scale}

    def describe(self) -> str:
        return (f"warm start from {self.source}: {self.new_rows} new turns + {self.replay_rows} replayed, "
                f"{self.epochs} epoch(s)")


@dataclass(frozen=True)
class WarmPlan:
    """A warm start, or None and why the run trains cold."""

    start: WarmStart | None
    reason: str

    @classmethod
    def cold(cls, reason: str) -> WarmPlan:
        return cls(None, f"trains from the base model: {reason}")


def shape_changes(params: Mapping[str, str], config: BaseModel, component: Component) -> list[str]:
    """The shape settings in which a run (its params) and ``config`` differ."""
    from training.finetune import flat_params

    current = {key: str(value) for key, value in flat_params(component, config.model_dump()).items()}
    return sorted(key for key in current
                  if any(key.startswith(f"{component}.{shape}") for shape in SHAPE_PARAMS[component])
                  and params.get(key) != current[key])


def select_rows(train_sets: Sequence[DatasetVersion], trained: set[str], config: WarmStartConfig,
                ) -> tuple[dict[str, tuple[int, ...]], int, int]:
    """Every row not in ``trained`` (row keys) plus a seeded replay sample of those in it; (picked, new, replayed)."""
    new: list[tuple[str, int]] = []
    old: list[tuple[str, int]] = []
    for dataset in train_sets:
        for index, row in enumerate(dataset.load()):
            (old if row_key(row) in trained else new).append((dataset.name, index))
    count = min(len(old), max(config.min_replay, math.ceil(config.replay_ratio * len(new))))
    replay = random.Random(config.seed).sample(old, count)
    picked: dict[str, list[int]] = {}
    for name, index in sorted(new + replay):
        picked.setdefault(name, []).append(index)
    return {name: tuple(rows) for name, rows in picked.items()}, len(new), len(replay)


def plan_warm_start(registry: Registry, store: GovernedStore, config: WarmStartConfig, component: Component,
                    model_config: BaseModel, train_sets: Sequence[DatasetVersion], work_dir: Path) -> WarmPlan:
    """Whether this run of ``component`` starts from the champion's, and on which rows of ``train_sets``.

    Only a champion that can lend its weights has its training sets and this run's read (through ``store``:
    checked and audited) to tell their rows apart.
    """
    if not config.enabled:
        return WarmPlan.cold("warm_start.enabled is false")
    champion = registry.by_alias(CHAMPION)
    reference = champion.components.get(component) if champion else None
    if not reference:
        return WarmPlan.cold(f"no champion {component} model yet")
    if component == "intent" and getattr(model_config, "members", 1) != 1:
        return WarmPlan.cold("intent.members is over 1 (a warm start continues one adapter)")
    name, version = reference.rsplit("/", 1)
    model_version = registry.client.get_model_version(name, version)
    if model_version.tags.get(RETRAIN_REQUIRED_TAG):
        return WarmPlan.cold(f"{reference} was trained on erased calls ({model_version.tags[RETRAIN_REQUIRED_TAG]})")
    run_id = str(model_version.run_id)
    params = registry.client.get_run(run_id).data.params
    changed = shape_changes(params, model_config, component)
    if changed:
        return WarmPlan.cold(f"the configuration changed {', '.join(changed)} since {reference}")
    trained: set[str] = set()
    for key, digest in sorted(params.items()):
        dataset = key.removeprefix("dataset.")
        if key.startswith("dataset.") and dataset not in EVALUATION_SETS:
            try:
                rows = open_version(store, dataset, digest).load()
            except FileNotFoundError:
                return WarmPlan.cold(f"{reference}'s training set {dataset}@{digest[:12]} is no longer in the store")
            trained.update(row_key(row) for row in rows)
    picked, new, replayed = select_rows([d.opened(store) for d in train_sets], trained, config)
    if not new:  # a model of exactly this data may exist (the champion itself): training/finetune.py reusable_run
        return WarmPlan.cold(f"nothing new since {reference}")
    total = sum(d.rows for d in train_sets)
    if total and new / total > config.max_new_share:
        return WarmPlan.cold(f"{new} of {total} turns are new ({new / total:.0%}), over "
                             f"warm_start.max_new_share ({config.max_new_share:.0%})")
    epochs = config.intent_epochs if component == "intent" else config.asr_epochs
    start = WarmStart(reference, run_id, _initial_weights(registry, reference, run_id, component, work_dir), picked,
                      new, replayed, epochs, config.learning_rate_scale)
    return WarmPlan(start, start.describe())


def _initial_weights(registry: Registry, reference: str, run_id: str, component: Component, work_dir: Path) -> Path:
    """The champion component's unmerged weights, downloaded: the intent model's folder (adapter, head,
    labels), or the ASR run's adapter (the registered ASR is merged and exported for serving)."""
    import mlflow

    from training.asr.finetune import ADAPTER_ARTIFACT

    folder = work_dir / f"warm-{reference.replace('/', '-')}"
    if component == "intent":
        return registry.download_component(reference, folder)
    folder.mkdir(parents=True, exist_ok=True)
    return Path(mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=ADAPTER_ARTIFACT,
                                                    dst_path=str(folder)))
