"""QA reviews become training labels: turns labelled, callers split between training and the production golden set."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from governance.audit import Actor, AuditLog
from governance.store import GovernedStore
from training.datasets import INTENT_PRODUCTION_GOLDEN, INTENT_TRAIN, build_call_datasets
from training.finetune import intent_set_names
from training.reviewed_labels import HELD_OUT, PRODUCTION_GOLDEN, apply_reviews, in_production_golden

INTENTS = ("card_arrival", "top_up")


def _store(tmp_path: Path, purpose: str) -> GovernedStore:
    return GovernedStore(tmp_path / "zones", AuditLog(f"sqlite:///{tmp_path / 'audit.db'}"),
                         Actor(role="admin", purpose=purpose, user="t"))


def _callers() -> tuple[str, str]:
    """A caller of the production golden set and one of training, at a share of 0.5."""
    refs = [f"caller-{i:04x}" for i in range(64)]
    return (next(r for r in refs if in_production_golden(r, 0.5)),
            next(r for r in refs if not in_production_golden(r, 0.5)))


def _rows(call_id: str) -> list[dict[str, object]]:
    return [{"call_id": call_id, "turn": 0, "speaker": "bot", "text": "how can I help", "transcript": None,
             "intent": None, "split": "train", "voice": "v", "channel": "c", "snr_db": 20.0},
            {"call_id": call_id, "turn": 1, "speaker": "customer", "text": "my card is late", "transcript": None,
             "intent": None, "split": "train", "voice": "v", "channel": "c", "snr_db": 20.0},
            {"call_id": call_id, "turn": 2, "speaker": "customer", "text": "thanks", "transcript": None,
             "intent": None, "split": "train", "voice": "v", "channel": "c", "snr_db": 20.0}]


def _review(caller_ref: str, blind: bool, first: str) -> dict[str, object]:
    return {"call_ids": [], "caller_ref": caller_ref, "blind": blind, "week": "2026-W46",
            "turns": [{"turn": 1, "transcript": "my card is late", "intent": first},
                      {"turn": 2, "transcript": "thanks", "intent": "no_request"}]}


def test_reviews_label_turns_and_split_callers(tmp_path: Path) -> None:
    golden, trainee = _callers()
    labeller = _store(tmp_path, "labelling")
    reviews = {"g-blind": _review(golden, True, "out_of_scope"), "g-risk": _review(golden, False, "top_up"),
               "t-risk": _review(trainee, False, "card_arrival"), "t-oos": _review(trainee, True, "out_of_scope")}
    labeller.write_labels("reviews", {cid: {**r, "call_ids": [cid]} for cid, r in reviews.items()})
    validated = pd.DataFrame([row for cid in [*reviews, "unreviewed"] for row in _rows(cid)])
    trainer = _store(tmp_path, "training")
    applied = apply_reviews(trainer, validated, 0.5, INTENTS)
    frame = applied.frame.set_index(["call_id", "turn"])
    assert frame.loc[("g-blind", 1), "split"] == PRODUCTION_GOLDEN
    assert frame.loc[("g-blind", 1), "intent"] == "out_of_scope"  # kept in the golden set: an error to predict
    assert frame.loc[("g-risk", 1), "split"] == HELD_OUT  # a golden caller is never trained on
    assert frame.loc[("t-risk", 1), ["split", "intent", "transcript"]].tolist() == [
        "train", "card_arrival", "my card is late"]
    assert pd.isna(frame.loc[("t-oos", 1), "intent"])  # out of scope: not trained on
    assert pd.isna(frame.loc[("t-risk", 2), "intent"]) and frame.loc[("t-risk", 2), "transcript"] == "thanks"
    assert pd.isna(frame.loc[("unreviewed", 1), "intent"])
    assert (applied.train_calls, applied.golden_calls, applied.held_out_calls) == (2, 1, 1)
    assert set(applied.digests) == set(reviews)
    versions = build_call_datasets(trainer, applied.frame, applied.digests)
    assert set(versions) == {INTENT_TRAIN, INTENT_PRODUCTION_GOLDEN}
    manifests = {i.name: i.manifest for i in trainer.list_datasets()}
    assert set(manifests[INTENT_TRAIN]["reviewed_labels"]) == {"t-risk"}
    assert set(manifests[INTENT_PRODUCTION_GOLDEN]["reviewed_labels"]) == {"g-blind"}
    train, judged_on = intent_set_names([*versions, "intent-golden"])
    assert train == [INTENT_TRAIN] and judged_on == "intent-golden"  # the production golden set is never trained on


def test_without_reviews_the_rows_are_untouched(tmp_path: Path) -> None:
    validated = pd.DataFrame(_rows("c1"))
    applied = apply_reviews(_store(tmp_path, "training"), validated, 0.5, INTENTS)
    assert applied.frame is validated and applied.digests == {}
