"""Fine-tune the intent challenger and track the run in MLflow.

A run is keyed by the digests of its datasets and its configuration. If a finished run with
the same key exists (a re-run after a crash later in the flow), its model is reused instead
of training again; a killed run (not FINISHED) is retrained from scratch.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import mlflow
import pandas as pd
from mlflow.data.pandas_dataset import from_pandas
from pydantic import BaseModel

from core.device import resolve_device
from core.progress import advanced
from core.settings import IntentConfig
from training.datasets import ASR_DATASETS, EVALUATION_SETS, INTENT_GOLDEN, DatasetVersion
from training.evaluate import accuracy, confusion_matrix_plot
from training.intent.predict import IntentModel
from training.intent.train import train_intent_model

if TYPE_CHECKING:
    from training.warm_start import WarmStart

MODEL_ARTIFACT = "intent_model"
TRAIN_KEY_TAG = "voiceloop.train_key"
# The key a cold run would have (datasets and configuration, no warm start), on every run: a run that needs
# a model of exactly this data and configuration reuses any finished one, a warm-started one too.
DATA_KEY_TAG = "voiceloop.data_key"
# Where a run trained (cpu or cuda). Not part of its key: a finished run is reused on either device.
DEVICE_TAG = "voiceloop.device"


@dataclass
class ChallengerRun:
    run_id: str
    model_dir: Path
    golden_texts: list[str]
    golden_labels: list[str]
    golden_predictions: list[str]
    golden_accuracy: float
    reused: bool
    golden: DatasetVersion | None = None  # the golden version the texts come from (a reference, no rows)


def train_key(datasets: Sequence[DatasetVersion], config: BaseModel, warm: WarmStart | None = None) -> str:
    """A run's identity: the digests of its datasets, its whole configuration and where a warm run starts."""
    identity: dict[str, Any] = {"datasets": sorted(d.digest for d in datasets), "config": config.model_dump()}
    if warm is not None:  # a cold run's key is unchanged, so its finished runs are still found
        identity["warm_start"] = warm.identity()
    payload = json.dumps(identity, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:32]


def flat_params(prefix: str, value: Any) -> dict[str, Any]:
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            out.update(flat_params(f"{prefix}.{key}" if prefix else key, item))
        return out
    return {prefix: value}


def reusable_run(key: str, data_key: str, tag: str = TRAIN_KEY_TAG, data_tag: str = DATA_KEY_TAG) -> str | None:
    """The finished run with this exact key; for a cold run (``key == data_key``) else any finished run of the same
    data and configuration (a warm start's whose champion has since been promoted and has nothing new to learn)."""
    return finished_run(key, tag) or (finished_run(data_key, data_tag) if key == data_key else None)


def finished_run(key: str, tag: str = TRAIN_KEY_TAG) -> str | None:
    """The finished MLflow run tagged with ``key``, if any (a killed run is not FINISHED: it is retrained)."""
    runs = mlflow.search_runs(
        filter_string=f"tags.`{tag}` = '{key}' and attributes.status = 'FINISHED'",
        output_format="list",
        max_results=1,
    )
    return runs[0].info.run_id if runs else None


def golden_references(golden: DatasetVersion) -> tuple[list[str], list[str]]:
    data = golden.load()
    texts = [t or s for t, s in zip(data["transcript"], data["text"], strict=True)]
    return texts, list(data["intent"])


def train_and_predict(
    train_sets: list[DatasetVersion],
    golden_texts: list[str],
    golden_labels: list[str],
    label_names: list[str],
    config: IntentConfig,
    model_dir: Path,
    on_epoch: Callable[[int, dict[str, float]], None] | None = None,
    progress: bool = False,
    callers: Mapping[str, str] | None = None,
    device: str = "cpu",
    warm: WarmStart | None = None,
) -> list[str]:
    """Train on the call turns' ASR text plus any text datasets, on ``device``; predict the golden references.

    ``callers`` (call id -> caller pseudonym, :func:`training.datasets.callers_of`) tells the lexical model
    whose words are whose; without it each call counts as a caller of its own. ``warm``: start from the
    champion's model and train the encoder on its picked rows only (the lexical model is refitted on all:
    it cannot be continued, and fitting it costs seconds).
    """
    texts: list[str] = []
    labels: list[str] = []
    groups: list[str | None] = []
    picked: list[int] = []
    for dataset in train_sets:
        data = dataset.load()
        if warm is not None:
            picked += [len(texts) + i for i in warm.rows_of(dataset.name)]
        texts += list(data["text"])
        labels += list(data["intent"])
        groups += [_caller_of(call_id, callers) for call_id in data["call_id"]]
    train_intent_model(texts, labels, label_names, config, model_dir, eval_texts=golden_texts,
                       eval_labels=golden_labels, on_epoch=on_epoch, progress=progress, callers=groups, device=device,
                       init_dir=warm.init_dir if warm else None, train_rows=picked if warm else None)
    return IntentModel.load(model_dir).predict(golden_texts)


def _caller_of(call_id: str | None, callers: Mapping[str, str] | None) -> str | None:
    """None for public text; a call missing from ``callers`` (its redacted copy gone) joins one shared group,
    which can only make its words rarer, never more common."""
    if call_id is None:
        return None
    if callers is None:
        return f"call:{call_id}"
    return callers.get(call_id, "unknown-caller")


class NothingToTrain(RuntimeError):
    """The datasets hold no labelled turn to train on, or no labelled golden turn to judge with."""


def intent_set_names(names: Iterable[str]) -> tuple[list[str], str]:
    """Which of a retrain's dataset versions train the intent model and which judges it (ASR sets aside)."""
    names = list(names)
    if INTENT_GOLDEN not in names:
        raise NothingToTrain("no labelled golden call: the gate judges models on the golden set; label golden "
                             "calls (or build a set with `voiceloop simulate-calls --split golden`)")
    train = [name for name in names if name not in ASR_DATASETS | EVALUATION_SETS]
    if not train:
        raise NothingToTrain("no labelled turn to train the intent model on: label calls, or set "
                             "intent.include_banking77_train")
    return train, INTENT_GOLDEN


def finetune_intent(
    train_sets: list[DatasetVersion],
    golden: DatasetVersion,
    label_names: list[str],
    config: IntentConfig,
    work_dir: Path,
    tags: dict[str, str] | None = None,
    progress: bool = False,
    threads: int | None = None,
    report_as: str | None = None,
    callers: Mapping[str, str] | None = None,
    device: str = "cpu",
    warm: WarmStart | None = None,
) -> ChallengerRun:
    """Train (or reuse) the challenger and predict the golden set with it (``callers``, ``warm``: see
    train_and_predict; a warm run trains for ``warm.epochs``).

    ``threads``: train in a fresh process on that many CPU threads (training/lanes.py), so that
    another training can use the other cores; None trains here, on this process's threads.
    ``report_as``: report each epoch as that step's progress (core/progress.py), from either process.
    ``device``: torch's device for training (``compute.device`` resolved by core/device.py); predictions
    of the golden set run on the CPU, as serving's do.
    """
    data_key = train_key([*train_sets, golden], config)
    if warm is not None:
        config = warm.tuned(config, ("learning_rate", "head_learning_rate"))
    key = train_key([*train_sets, golden], config, warm)
    tags = {**(tags or {}), DATA_KEY_TAG: data_key}
    reused_run = reusable_run(key, data_key)
    if reused_run:
        golden_texts, golden_labels = golden_references(golden)  # a new run reads them in train_run
        model_dir = Path(
            mlflow.artifacts.download_artifacts(run_id=reused_run, artifact_path=MODEL_ARTIFACT,
                                                dst_path=str(work_dir / key))
        )
        predictions = IntentModel.load(model_dir).predict(golden_texts)
        return ChallengerRun(reused_run, model_dir, golden_texts, golden_labels, predictions,
                             accuracy(golden_labels, predictions), reused=True, golden=golden.reference())
    args = (train_sets, golden, label_names, config, work_dir / key, key, tags, progress, report_as,
            dict(callers) if callers is not None else None, device, warm)
    if threads is None:
        return train_run(*args)
    from training.lanes import run_isolated

    return run_isolated(train_run, *args, threads=threads)


def train_run(
    train_sets: list[DatasetVersion],
    golden: DatasetVersion,
    label_names: list[str],
    config: IntentConfig,
    out_dir: Path,
    key: str,
    tags: dict[str, str],
    progress: bool,
    report_as: str | None = None,
    callers: Mapping[str, str] | None = None,
    device: str = "cpu",
    warm: WarmStart | None = None,
) -> ChallengerRun:
    """One new MLflow run: train the challenger into ``out_dir`` on ``device`` (from ``warm``'s champion when
    given), predict the golden set, log it all."""
    device = resolve_device(device)
    golden_texts, golden_labels = golden_references(golden)
    with mlflow.start_run(run_name="retrain-intent", tags={TRAIN_KEY_TAG: key, **tags, DEVICE_TAG: device}) as run:
        mlflow.log_params(flat_params("intent", config.model_dump()))
        mlflow.log_params({f"dataset.{d.name}": d.digest for d in [*train_sets, golden]})
        if warm is not None:
            mlflow.log_params(warm.params())
        for dataset, context in [*((d, "training") for d in train_sets), (golden, "evaluation")]:
            frame = pd.DataFrame({"intent": dataset.load()["intent"]})
            mlflow.log_input(
                # the store's name for the version (it hands out data, not paths)
                from_pandas(frame, source=f"datasets/{dataset.name}/{dataset.digest}", name=dataset.short,
                            digest=dataset.digest[:32]),
                context=context,
            )
        model_dir = out_dir / MODEL_ARTIFACT

        def log_epoch(epoch: int, metrics: dict[str, float]) -> None:
            mlflow.log_metrics(metrics, step=epoch)
            if report_as:
                advanced(report_as, epoch, config.epochs * config.members, "epochs")

        predictions = train_and_predict(
            train_sets, golden_texts, golden_labels, label_names, config, model_dir, on_epoch=log_epoch,
            progress=progress, callers=callers, device=device, warm=warm,
        )
        golden_accuracy = accuracy(golden_labels, predictions)
        mlflow.log_metric("golden_accuracy", golden_accuracy)
        with tempfile.TemporaryDirectory() as tmp:
            plot = confusion_matrix_plot(golden_labels, predictions, label_names, Path(tmp) / "confusion_matrix.png")
            mlflow.log_artifact(str(plot), "plots")
        mlflow.log_artifacts(str(model_dir), MODEL_ARTIFACT)
        return ChallengerRun(
            run.info.run_id, model_dir, golden_texts, golden_labels, predictions, golden_accuracy, reused=False,
            golden=golden.reference(),
        )
