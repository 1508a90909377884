"""Warm-started weekly retrains (issue 20, part 6): which rows a top-up trains on, the champion's adapters
loaded whole or not at all, and a gate that still rejects a warm start that forgot what the champion knew."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import torch
from datasets import Dataset

from core.settings import GateConfig, IntentConfig, WarmStartConfig, load_settings
from tests.conftest import TINY_INTENT
from tests.flow_helpers import TrainedProject, flow_params, project_fixture
from training.adapters import AdapterMismatch, load_lora_weights
from training.datasets import DatasetVersion, banking77_rows, row_key
from training.gate import GateEvidence, decide
from training.intent.predict import IntentModel
from training.intent.train import train_intent_model, warm_ema_decay
from training.warm_start import plan_warm_start, select_rows, shape_changes

project = project_fixture("warm-start")


def _version(name: str, rows: list[dict[str, Any]]) -> DatasetVersion:
    return DatasetVersion(name, f"{name}-digest", len(rows), (), Dataset.from_list(rows))


def _turn(call: str, turn: int, text: str, intent: str = "card_arrival") -> dict[str, Any]:
    return {"call_id": call, "turn": turn, "text": text, "intent": intent}


def test_a_top_up_trains_on_every_new_or_changed_row_and_a_seeded_replay_of_the_rest() -> None:
    old = [_turn(f"c{i}", 1, f"where is my card {i}") for i in range(40)]
    trained = {row_key(row) for row in old}
    current = [*old[:39], _turn("c39", 1, "where is my card 39", intent="card_delivery_estimate"),  # relabelled
               _turn("n1", 1, "my card never came"), _turn("n2", 1, "card still missing")]
    config = WarmStartConfig(replay_ratio=2.0, min_replay=5, seed=3)

    picked, new, replayed = select_rows([_version("intent-train", current)], trained, config)

    assert (new, replayed) == (3, 6)  # the relabelled turn is new; replay max(5, 2 x 3)
    rows = picked["intent-train"]
    assert {39, 40, 41} <= set(rows) and len(rows) == 9 and list(rows) == sorted(rows)
    assert select_rows([_version("intent-train", current)], trained, config)[0] == picked  # by seed
    assert select_rows([_version("intent-train", current)], trained, config.model_copy(update={"seed": 4}))[0] != picked
    # replay never asks for more old rows than there are
    assert select_rows([_version("intent-train", current)], trained, WarmStartConfig(min_replay=500))[2] == 39


def test_a_clip_is_part_of_a_rows_identity() -> None:
    row = {"call_id": "c1", "turn": 1, "text": "hello", "audio": {"bytes": b"RIFF1", "path": None}}
    assert row_key(row) == row_key(dict(row))
    assert row_key(row) != row_key({**row, "audio": {"bytes": b"RIFF2", "path": None}})


def test_only_settings_that_shape_the_model_block_a_warm_start() -> None:
    from training.finetune import flat_params

    config = IntentConfig(**TINY_INTENT)
    params = {key: str(value) for key, value in flat_params("intent", config.model_dump()).items()}
    retuned = config.model_copy(update={"epochs": 9, "learning_rate": 0.1})
    assert shape_changes(params, retuned, "intent") == []
    reshaped = config.model_copy(update={"lora": config.lora.model_copy(update={"r": 4}), "max_length": 12})
    assert shape_changes(params, reshaped, "intent") == ["intent.lora.r", "intent.max_length"]


class _Tiny(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.query = torch.nn.Linear(8, 8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.query(x)


def _wrapped(r: int) -> Any:
    from peft import LoraConfig, get_peft_model

    return get_peft_model(_Tiny(), LoraConfig(r=r, target_modules=["query"]))


def test_an_adapter_loads_whole_into_a_model_of_its_shape_and_never_into_another(tmp_path: Path) -> None:
    saved = _wrapped(2)
    with torch.no_grad():
        for name, weight in saved.named_parameters():
            if "lora_" in name:
                weight.fill_(0.5)
    saved.save_pretrained(str(tmp_path / "adapter"))

    fresh = _wrapped(2)
    assert load_lora_weights(fresh, tmp_path / "adapter") == 2
    assert all(torch.equal(a, b) for (n, a), (_, b) in zip(saved.named_parameters(), fresh.named_parameters(),
                                                            strict=True) if "lora_" in n)
    with pytest.raises(AdapterMismatch, match="does not fit"):
        load_lora_weights(_wrapped(4), tmp_path / "adapter")
    with pytest.raises(FileNotFoundError, match="warm_start.enabled: false"):
        load_lora_weights(_wrapped(2), tmp_path)


# Four BANKING77 intents: the champion learns them all; a week's new turns are all of one intent.
_INTENTS = ["card_arrival", "lost_or_stolen_card", "exchange_rate", "top_up_failed"]


def _by_intent(split: str, per_intent: int) -> list[dict[str, Any]]:
    counts: Counter[str] = Counter()
    rows = []
    for row in banking77_rows(split):  # type: ignore[arg-type]
        if row["intent"] in _INTENTS and counts[row["intent"]] < per_intent:
            counts[row["intent"]] += 1
            rows.append(row)
    return rows


def test_the_gate_rejects_a_warm_start_that_forgot_and_a_replayed_one_keeps_what_the_champion_knew(
        tmp_path: Path) -> None:
    train, golden = _by_intent("train", 30), _by_intent("test", 20)
    texts, labels = [r["text"] for r in train], [r["intent"] for r in train]
    golden_texts, golden_labels = [r["text"] for r in golden], [r["intent"] for r in golden]
    config = IntentConfig(**{**TINY_INTENT, "lexical_weight": 0.0, "epochs": 3})
    train_intent_model(texts, labels, _INTENTS, config, tmp_path / "champion")
    champion = IntentModel.load(tmp_path / "champion").predict(golden_texts)

    new = [r for r in _by_intent("train", 60) if r["intent"] == "card_arrival"][30:]  # a week of one intent
    forgetful = IntentConfig(**{**TINY_INTENT, "lexical_weight": 0.0, "epochs": 8, "learning_rate": 5e-3})
    all_texts, all_labels = texts + [r["text"] for r in new], labels + [r["intent"] for r in new]
    new_rows = list(range(len(texts), len(all_texts)))
    train_intent_model(all_texts, all_labels, _INTENTS, forgetful, tmp_path / "forgot",
                       init_dir=tmp_path / "champion", train_rows=new_rows)
    replayed_rows = sorted(new_rows + list(range(0, len(texts), 2)))  # half the old rows replayed
    train_intent_model(all_texts, all_labels, _INTENTS, forgetful, tmp_path / "replayed",
                       init_dir=tmp_path / "champion", train_rows=replayed_rows)

    gate = GateConfig(floor=0.0, n_bootstrap=500)

    def verdict(folder: str) -> tuple[str, float]:
        predictions = IntentModel.load(tmp_path / folder).predict(golden_texts)
        decision = decide(GateEvidence(golden_labels, predictions, champion, "1"), gate)
        accuracy = sum(p == y for p, y in zip(predictions, golden_labels, strict=True)) / len(golden_labels)
        return decision.verdict, accuracy

    champion_accuracy = sum(p == y for p, y in zip(champion, golden_labels, strict=True)) / len(golden_labels)
    forgot, forgot_accuracy = verdict("forgot")
    _, replayed_accuracy = verdict("replayed")
    assert champion_accuracy > 0.7, champion_accuracy  # a champion worth keeping
    assert forgot == "reject" and forgot_accuracy < champion_accuracy - 0.2
    assert replayed_accuracy > forgot_accuracy + 0.2


def test_a_top_ups_weight_average_spans_its_own_few_steps() -> None:
    assert warm_ema_decay(0.998, 18) < 0.9  # 18 steps: a horizon of about 5
    assert warm_ema_decay(0.998, 10_000) == 0.998 and warm_ema_decay(0.0, 18) == 0.0


def _a_week_of_new_calls(sources: Path, count: int) -> list[str]:
    """``count`` consenting, labelled training calls again under new call ids (what a week adds)."""
    added = []
    for path in sorted((sources / "calls").glob("*.json")):
        document = json.loads(path.read_text())
        if len(added) < count and document["consent"]["training"] and any(lb.get("intent")
                                                                          for lb in document["labels"]):
            document["call_id"] = f"week-{len(added)}"
            (path.parent / f"{document['call_id']}.json").write_text(json.dumps(document))
            added.append(document["call_id"])
    return added


def test_a_weekly_retrain_tops_up_the_champion_and_lineage_follows_it(project: TrainedProject) -> None:
    from flows.retrain import retrain
    from governance.session import open_store
    from training.lineage import runs_using
    from training.registry import CHAMPION, RETRAIN_REQUIRED_TAG, Registry

    registry = Registry(project.settings)
    champion = registry.by_alias(CHAMPION)
    assert champion is not None and {"intent", "asr"} <= champion.components.keys()
    _a_week_of_new_calls(project.sources, 2)
    params = flow_params(project.params.parent, project.sources, **project.sections,
                         warm_start={"enabled": True, "min_replay": 32})

    summary = retrain(params_file=str(params)).to_json()

    for component in ("intent", "asr"):
        assert summary["warm_start"][component].startswith(f"warm start from {champion.components[component]}: ")
    intent_run = registry.client.get_run(summary["training"]["run_id"]).data.params
    asr_run = registry.client.get_run(summary["asr"]["run_id"]).data.params
    for run, component in ((intent_run, "intent"), (asr_run, "asr")):
        assert run["warm_start.from"] == champion.components[component] and int(run["warm_start.new_rows"]) >= 2
    assert asr_run["asr.epochs"] == "1"  # warm_start.asr_epochs
    # the champion's golden transcripts were kept when it was promoted: this gate read them, made none
    assert summary["asr"]["champion_transcripts_kept"] is True
    # an erasure that reaches the champion's training sets reaches the model started from it
    template_intent_run = registry.client.get_model_version(*champion.components["intent"].rsplit("/", 1)).run_id
    trained_on = [(k.removeprefix("dataset."), v) for k, v in
                  registry.client.get_run(template_intent_run).data.params.items() if k.startswith("dataset.")]
    assert summary["training"]["run_id"] in {run.run_id for run in runs_using(registry, trained_on)}

    # a champion marked as trained on erased calls lends nothing: the next run starts from the base model
    loaded = load_settings(params)
    now = Registry(loaded).by_alias(CHAMPION)
    assert now is not None
    name, version = now.components["intent"].rsplit("/", 1)
    registry.client.set_model_version_tag(name, version, RETRAIN_REQUIRED_TAG, "erasure-test")
    store = open_store(loaded, "pipeline", "training")
    plan = plan_warm_start(registry, store, loaded.warm_start, "intent", loaded.intent, [], loaded.root / "work")
    assert plan.start is None and "trained on erased calls (erasure-test)" in plan.reason
