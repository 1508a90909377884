"""Intent classifier: real training on a tiny inline corpus, save, reload, predict (no mocks)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from training.intent.model import PACKAGED_MODEL, resolve_base_model  # noqa: E402
from training.intent.predict import IntentModel  # noqa: E402
from training.intent.train import IntentTrainingResult, train_intent_model  # noqa: E402
from voiceloop.config import IntentConfig, LoraSettings  # noqa: E402

CORPUS: dict[str, list[str]] = {
    "card_arrival": [
        "my card has not arrived yet", "when will my new card arrive", "still waiting for my card",
        "the card you sent never came", "how long until the card gets here", "where is my card",
    ],
    "lost_or_stolen_card": [
        "i lost my card", "someone stole my card", "my wallet was stolen with the card",
        "i can't find my card anywhere", "report a stolen card", "my card is missing, block it",
    ],
    "exchange_rate": [
        "what is the exchange rate", "how much is a dollar in euros", "what rate do you use for pounds",
        "tell me today's exchange rate", "is the currency rate good today", "euro to dollar rate please",
    ],
    "top_up_failed": [
        "my top up failed", "the top up did not go through", "i couldn't add money to my account",
        "top up was declined", "why did my top-up fail", "adding funds keeps failing",
    ],
    "pin_blocked": [
        "my pin is blocked", "i entered the wrong pin too many times", "how do i unblock my pin",
        "pin locked after three tries", "the atm blocked my pin", "unlock my pin please",
    ],
    "cash_withdrawal_charge": [
        "why was i charged for withdrawing cash", "atm fee on my statement", "is there a fee for cash withdrawal",
        "i got charged at the cash machine", "withdrawal charge seems wrong", "how much do atm withdrawals cost",
    ],
}
TEXTS = [t for texts in CORPUS.values() for t in texts]
LABELS = [label for label, texts in CORPUS.items() for _ in texts]
NAMES = sorted(CORPUS)


def tiny_config(**lora: object) -> IntentConfig:
    return IntentConfig(
        epochs=1, batch_size=8, max_length=32, probe_steps=50, seed=0, members=1,
        lora=LoraSettings(r=4, alpha=8, **lora),  # type: ignore[arg-type]
    )


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> IntentTrainingResult:
    seen: list[tuple[int, dict[str, float]]] = []
    result = train_intent_model(
        TEXTS, LABELS, NAMES, tiny_config(top_layers=2), tmp_path_factory.mktemp("intent"),
        eval_texts=TEXTS, eval_labels=LABELS, on_epoch=lambda e, m: seen.append((e, m)),
    )
    assert seen == [(1, result.history[0])]
    return result


def test_saves_a_small_self_describing_folder(trained: IntentTrainingResult) -> None:
    out = trained.out_dir
    assert (out / "adapter" / "adapter_config.json").exists()
    assert json.loads((out / "labels.json").read_text()) == NAMES
    meta = json.loads((out / "intent_config.json").read_text())
    assert meta["base_model"] == PACKAGED_MODEL and meta["max_length"] == 32
    size = sum(f.stat().st_size for f in (out / "adapter").rglob("*") if f.is_file())
    assert size < 2_000_000  # the adapter, not a copy of the encoder
    assert trained.epochs == 1 and trained.train_seconds > 0
    assert set(trained.history[0]) == {"train_loss", "eval_accuracy"}


def test_reload_is_identical_and_learned(trained: IntentTrainingResult) -> None:
    first, second = IntentModel.load(trained.out_dir), IntentModel.load(trained.out_dir)
    proba = first.predict_proba(TEXTS)
    assert proba.shape == (len(TEXTS), len(NAMES))
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-5)
    np.testing.assert_array_equal(proba, second.predict_proba(TEXTS))
    predicted = first.predict(TEXTS)
    assert predicted == second.predict(TEXTS) == [NAMES[i] for i in proba.argmax(1)]
    accuracy = float(np.mean(np.array(predicted) == np.array(LABELS)))
    assert accuracy > 3 / len(NAMES)  # well above chance (1/6) on its own training data
    # The reloaded model scores what the in-memory model scored after its last epoch: the
    # adapter really came back (PEFT reload pitfalls leave LoRA at its zero init).
    assert accuracy == pytest.approx(trained.history[-1]["eval_accuracy"], abs=1 / len(TEXTS))
    lora_b = [p for n, p in first.model.named_parameters() if "lora_B" in n]
    assert lora_b and any(float(p.abs().sum()) > 0 for p in lora_b)


def test_batching_does_not_change_predictions(trained: IntentTrainingResult) -> None:
    model = IntentModel.load(trained.out_dir)
    np.testing.assert_allclose(model.predict_proba(TEXTS, batch_size=5), model.predict_proba(TEXTS), atol=1e-5)
    assert model.predict([]) == [] and model.predict_proba([]).shape == (0, len(NAMES))


def test_training_is_deterministic_for_a_seed(tmp_path: Path) -> None:
    """All layers adapted (no layer cache): also covers the full-forward training path."""
    config = tiny_config(top_layers=0)
    a = train_intent_model(TEXTS, LABELS, NAMES, config, tmp_path / "a")
    b = train_intent_model(TEXTS, LABELS, NAMES, config, tmp_path / "b")
    assert a.history == b.history
    np.testing.assert_array_equal(
        IntentModel.load(a.out_dir).predict_proba(TEXTS), IntentModel.load(b.out_dir).predict_proba(TEXTS)
    )


def test_rejects_unknown_labels(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="not in label_names"):
        train_intent_model(["hello"], ["greeting"], NAMES, tiny_config(), tmp_path)


def test_resolve_base_model(tmp_path: Path) -> None:
    packaged = Path(resolve_base_model(PACKAGED_MODEL))
    assert (packaged / "config.json").exists() and (packaged / "model.safetensors").exists()
    assert resolve_base_model(str(tmp_path)) == str(tmp_path.resolve())
    assert resolve_base_model("sentence-transformers/all-mpnet-base-v2") == "sentence-transformers/all-mpnet-base-v2"


@pytest.mark.parametrize("top_layers", [2, 0])  # from the shared layer cache / full passes per member
def test_members_are_distinct_and_averaged(tmp_path: Path, top_layers: int) -> None:
    config = tiny_config(top_layers=top_layers).model_copy(update={"members": 2})
    seen: list[int] = []
    result = train_intent_model(TEXTS, LABELS, NAMES, config, tmp_path / "m",
                                on_epoch=lambda step, _m: seen.append(step))
    assert seen == [1, 2]  # member k's epoch e is step k * epochs + e
    model = IntentModel.load(result.out_dir)
    assert model.model.members == ["default", "member1"]
    assert (result.out_dir / "adapter" / "member1" / "adapter_config.json").exists()
    ensemble = model.predict_proba(TEXTS)
    per_member = []
    for name in model.model.members:
        model.model.use(name)
        model.first_adapted_layer, start = 0, model.first_adapted_layer  # plain single-member forward
        only = IntentModel(type(model.model)(model.model.encoder, model.model.head, name), model.tokenizer,
                           model.labels, model.max_length)
        per_member.append(only.predict_proba(TEXTS))
        model.first_adapted_layer = start
    model.model.use("default")
    weights = {n: p for n, p in model.model.named_parameters() if "lora_A." in n}
    first = {n: p for n, p in weights.items() if ".default." in n}
    second = {n.replace(".member1.", ".default."): p for n, p in weights.items() if ".member1." in n}
    assert first.keys() == second.keys() and first  # same layers adapted...
    assert all(not torch.equal(first[n], second[n]) for n in first)  # ...from different seeds
    np.testing.assert_allclose(ensemble, (per_member[0] + per_member[1]) / 2, atol=1e-5)
