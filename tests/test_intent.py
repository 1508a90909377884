"""Intent classifier: real training on a tiny inline corpus, save, reload, predict (no mocks)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from pydantic import ValidationError  # noqa: E402

from core.settings import IntentConfig, LoraSettings  # noqa: E402
from training.intent.lexical import LEXICAL_ARRAYS, LEXICAL_JSON, LexicalModel, blend  # noqa: E402
from training.intent.model import PACKAGED_MODEL, resolve_base_model  # noqa: E402
from training.intent.predict import IntentModel  # noqa: E402
from training.intent.train import IntentTrainingResult, train_intent_model  # noqa: E402

CORPUS: dict[str, list[str]] = {
    "card_arrival": [
        "my card has not arrived yet",
        "when will my new card arrive",
        "still waiting for my card",
        "the card you sent never came",
        "how long until the card gets here",
        "where is my card",
    ],
    "lost_or_stolen_card": [
        "i lost my card",
        "someone stole my card",
        "my wallet was stolen with the card",
        "i can't find my card anywhere",
        "report a stolen card",
        "my card is missing, block it",
    ],
    "exchange_rate": [
        "what is the exchange rate",
        "how much is a dollar in euros",
        "what rate do you use for pounds",
        "tell me today's exchange rate",
        "is the currency rate good today",
        "euro to dollar rate please",
    ],
    "top_up_failed": [
        "my top up failed",
        "the top up did not go through",
        "i couldn't add money to my account",
        "top up was declined",
        "why did my top-up fail",
        "adding funds keeps failing",
    ],
    "pin_blocked": [
        "my pin is blocked",
        "i entered the wrong pin too many times",
        "how do i unblock my pin",
        "pin locked after three tries",
        "the atm blocked my pin",
        "unlock my pin please",
    ],
    "cash_withdrawal_charge": [
        "why was i charged for withdrawing cash",
        "atm fee on my statement",
        "is there a fee for cash withdrawal",
        "i got charged at the cash machine",
        "withdrawal charge seems wrong",
        "how much do atm withdrawals cost",
    ],
}
TEXTS = [t for texts in CORPUS.values() for t in texts]
LABELS = [label for label, texts in CORPUS.items() for _ in texts]
NAMES = sorted(CORPUS)


def tiny_config(**lora: object) -> IntentConfig:
    return IntentConfig(
        epochs=1,
        batch_size=8,
        max_length=32,
        probe_steps=50,
        seed=0,
        members=1,
        lora=LoraSettings(r=4, alpha=8, **lora),  # type: ignore[arg-type]
    )


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> IntentTrainingResult:
    seen: list[tuple[int, dict[str, float]]] = []
    result = train_intent_model(
        TEXTS,
        LABELS,
        NAMES,
        tiny_config(top_layers=2),
        tmp_path_factory.mktemp("intent"),
        eval_texts=TEXTS,
        eval_labels=LABELS,
        on_epoch=lambda e, m: seen.append((e, m)),
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
    assert meta["lexical_weight"] == 0.3 and (out / LEXICAL_JSON).exists() and (out / LEXICAL_ARRAYS).exists()


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
    result = train_intent_model(
        TEXTS, LABELS, NAMES, config, tmp_path / "m", on_epoch=lambda step, _m: seen.append(step)
    )
    assert seen == [1, 2]  # member k's epoch e is step k * epochs + e
    model = IntentModel.load(result.out_dir)
    assert model.model.members == ["default", "member1"]
    assert (result.out_dir / "adapter" / "member1" / "adapter_config.json").exists()
    assert model.lexical is not None and model.lexical_weight == 0.3
    ensemble = model.predict_proba(TEXTS)
    per_member = []
    for name in model.model.members:
        model.model.use(name)
        model.first_adapted_layer, start = 0, model.first_adapted_layer  # plain single-member forward
        only = IntentModel(
            type(model.model)(model.model.encoder, model.model.head, name),
            model.tokenizer,
            model.labels,
            model.max_length,
        )
        per_member.append(only.predict_proba(TEXTS))
        model.first_adapted_layer = start
    model.model.use("default")
    weights = {n: p for n, p in model.model.named_parameters() if "lora_A." in n}
    first = {n: p for n, p in weights.items() if ".default." in n}
    second = {n.replace(".member1.", ".default."): p for n, p in weights.items() if ".member1." in n}
    assert first.keys() == second.keys() and first  # same layers adapted...
    assert all(not torch.equal(first[n], second[n]) for n in first)  # ...from different seeds
    # The lexical blend applies to the members' average, not to each member.
    averaged = torch.log(torch.from_numpy((per_member[0] + per_member[1]) / 2))
    expected = torch.softmax(blend(averaged, model.lexical.log_proba(TEXTS), 0.3), -1).numpy()
    np.testing.assert_allclose(ensemble, expected, atol=1e-5)


def test_lexical_weight_zero_and_old_folders_predict_from_the_encoder_alone(
    trained: IntentTrainingResult, tmp_path: Path
) -> None:
    blended_model = IntentModel.load(trained.out_dir)
    assert blended_model.lexical is not None and blended_model.lexical_weight == 0.3
    blended = blended_model.predict_proba(TEXTS)
    np.testing.assert_allclose(blended.sum(axis=1), 1.0, atol=1e-5)
    # A folder saved before the lexical model existed: no lexical files, no lexical_weight key.
    old = tmp_path / "old"
    shutil.copytree(trained.out_dir, old)
    (old / LEXICAL_JSON).unlink()
    (old / LEXICAL_ARRAYS).unlink()
    meta = json.loads((old / "intent_config.json").read_text())
    del meta["lexical_weight"], meta["config"]["lexical_weight"], meta["config"]["lexical_c"]
    (old / "intent_config.json").write_text(json.dumps(meta))
    legacy = IntentModel.load(old)
    assert legacy.lexical is None and legacy.lexical_weight == 0.0
    alone = legacy.predict_proba(TEXTS)
    np.testing.assert_allclose(alone.sum(axis=1), 1.0, atol=1e-5)
    assert legacy.predict(TEXTS) == [NAMES[i] for i in alone.argmax(1)]
    # Weight 0 on a blended model is exactly the encoder alone; the blend itself does change scores.
    blended_model.lexical_weight = 0.0
    np.testing.assert_array_equal(blended_model.predict_proba(TEXTS), alone)
    assert not np.allclose(blended, alone, atol=1e-3)
    lexical = LexicalModel.load(trained.out_dir).log_proba(TEXTS)
    expected = np.exp(0.7 * np.log(alone) + 0.3 * lexical)
    np.testing.assert_allclose(blended, expected / expected.sum(axis=1, keepdims=True), atol=1e-5)


def test_training_with_lexical_weight_zero_ships_no_lexical_model(tmp_path: Path) -> None:
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / LEXICAL_JSON).write_text("{}")  # stale, from an earlier run into the same folder
    config = tiny_config(top_layers=2).model_copy(update={"lexical_weight": 0.0})
    result = train_intent_model(TEXTS, LABELS, NAMES, config, tmp_path / "m")
    assert not (result.out_dir / LEXICAL_JSON).exists() and not (result.out_dir / LEXICAL_ARRAYS).exists()
    assert json.loads((result.out_dir / "intent_config.json").read_text())["lexical_weight"] == 0.0
    model = IntentModel.load(result.out_dir)
    assert model.lexical is None
    np.testing.assert_allclose(model.predict_proba(TEXTS).sum(axis=1), 1.0, atol=1e-5)


def test_lexical_model_save_load_is_exact_and_matches_sklearn(tmp_path: Path) -> None:
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline, make_union

    names = [*NAMES, "never_seen"]  # a label without training data keeps its column
    lexical = LexicalModel.fit(TEXTS, LABELS, names, c=30.0)
    assert lexical is not None and lexical.labels == names
    queries = [*TEXTS, "where is my new card", "zzz", ""]
    before = lexical.log_proba(queries)
    assert before.shape == (len(queries), len(names))
    np.testing.assert_allclose(np.exp(before).sum(axis=1), 1.0, atol=1e-9)
    lexical.save(tmp_path)
    assert not any(f.suffix in {".pkl", ".pickle", ".joblib"} for f in tmp_path.iterdir())
    np.testing.assert_array_equal(LexicalModel.load(tmp_path).log_proba(queries), before)
    # Same probabilities as the plain sklearn pipeline it stands for (float32 storage aside).
    reference = make_pipeline(
        make_union(
            TfidfVectorizer(analyzer="word", ngram_range=(1, 2), sublinear_tf=True),
            TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), sublinear_tf=True, min_df=2),
        ),
        LogisticRegression(C=30.0, max_iter=300),
    ).fit(TEXTS, [names.index(label) for label in LABELS])
    seen = np.exp(before[:, :-1])
    np.testing.assert_allclose(seen / seen.sum(axis=1, keepdims=True), reference.predict_proba(queries), atol=1e-4)
    assert (before[:, -1] <= before[:, :-1].min(axis=1) + 1e-12).all()
    # Two intents: the binary regression is stored in the same softmax form.
    pair = [i for i, label in enumerate(LABELS) if label in NAMES[:2]]
    binary = LexicalModel.fit([TEXTS[i] for i in pair], [LABELS[i] for i in pair], NAMES[:2], c=30.0)
    assert binary is not None and binary.coef.shape[0] == 2
    np.testing.assert_allclose(np.exp(binary.log_proba(queries)).sum(axis=1), 1.0, atol=1e-9)
    assert LexicalModel.fit(TEXTS[:3], LABELS[:3], NAMES, c=30.0) is None  # a single intent: no model


def test_lexical_vocabulary_holds_only_words_of_public_text_or_several_callers() -> None:
    """lexical.json ships in every bundle: a word one caller said (a name redaction missed) must not be in it."""
    one_caller = "my name is quackenbush and my card is lost"
    three_callers = "the zorblax shop charged me twice"
    texts = [*TEXTS, one_caller, three_callers, three_callers + " again", "zorblax charged me"]
    labels = [*LABELS, LABELS[0], LABELS[-1], LABELS[-1], LABELS[-1]]
    callers: list[str | None] = [None] * len(TEXTS) + ["caller-a", "caller-a", "caller-b", "caller-c"]
    lexical = LexicalModel.fit(texts, labels, NAMES, c=30.0, callers=callers, min_callers=3)
    assert lexical is not None
    words, chars = lexical.vocabularies["word"], lexical.vocabularies["char"]
    assert "zorblax" in words and "card" in words  # three callers; public text
    assert not [w for w in words if "quack" in w] and not [g for g in chars if "ckenb" in g or "quac" in g]


    def owners(term: str) -> set[str | None]:  # who said it: char n-grams are taken inside " word "s
        return {c for t, c in zip(texts, callers, strict=True) if term in " " + " ".join(t.lower().split()) + " "}

    assert all(None in owners(g) or len(owners(g)) >= 3 for g in chars)
    everything = LexicalModel.fit(texts, labels, NAMES, c=30.0)  # without callers: min_df alone
    assert everything is not None and "quackenbush" in everything.vocabularies["word"]


def test_lexical_weight_is_validated() -> None:
    assert IntentConfig().lexical_weight == 0.3 and IntentConfig(lexical_weight=0).lexical_weight == 0
    for bad in (-0.1, 1.0):
        with pytest.raises(ValidationError):
            IntentConfig(lexical_weight=bad)
