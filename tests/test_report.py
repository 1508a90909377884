"""The gate's HTML report and the model card, from decisions the real gate rule makes."""

from __future__ import annotations

import re

import numpy as np

from core.settings import GateConfig
from training.gate import AsrEvidence, GateEvidence, decide
from training.report import confusion_changes, decision_html, model_card

CONFIG = GateConfig(n_bootstrap=500, min_slice_utterances=30)


def _flipped_challenger(share: float = 0.2) -> GateEvidence:
    """Champion right on 90% of 770 utterances; the challenger errs like a model trained on ``share`` flipped labels."""
    rng = np.random.default_rng(0)
    labels = [f"intent_{i % 11}" for i in range(770)]
    champion = [y if rng.random() < 0.9 else "intent_0" for y in labels]
    challenger = [f"intent_{(int(y.split('_')[1]) + 1) % 11}" if rng.random() < share else p
                  for y, p in zip(labels, champion, strict=True)]
    voices = [("en-us", "en-sc", "en-in")[i % 3] if i < 700 else "fr" for i in range(770)]
    asr = AsrEvidence(ref_words=np.full(770, 8), challenger_errors=np.full(770, 2), champion_errors=np.full(770, 2),
                      slices=[{"voice": v} for v in voices], challenger_digits_correct=np.ones(10),
                      champion_digits_correct=np.ones(10))
    return GateEvidence(labels, challenger, champion, champion_version="4", asr=asr)


def test_confusion_changes_count_error_cells_only() -> None:
    labels = ["a", "a", "b", "b", "c"]
    champion = ["a", "b", "b", "a", "c"]
    challenger = ["b", "b", "b", "a", "a"]
    changes = confusion_changes(labels, champion, challenger)
    assert changes == [
        {"true": "a", "predicted": "b", "champion": 1, "challenger": 2, "change": 1},
        {"true": "c", "predicted": "a", "champion": 0, "challenger": 1, "change": 1},
    ]


def test_a_challenger_with_flipped_labels_is_blocked_and_the_report_says_why() -> None:
    evidence = _flipped_challenger()
    decision = decide(evidence, CONFIG).to_dict()
    assert decision["verdict"] == "reject"
    confusions = confusion_changes(evidence.labels, evidence.champion_predictions or [],
                                   evidence.challenger_predictions)
    page = decision_html(decision, confusions, "gate decision")
    assert "reject" in page and "intent_accuracy: non-inferiority" in page  # the reason, in words
    why = page[page.index("<h2>Why</h2>"):page.index("<h2>Criteria</h2>")]
    assert "intent_accuracy" in why and "slices_holm" in why
    assert len(re.findall(r"<img src='data:image/png;base64,", page)) == 3  # intervals, WER by slice, confusions
    assert "asr_wer[voice=fr]" in page and "<td>worse</td>" in page  # every slice listed, the harmed ones marked
    assert confusions and confusions[0]["change"] > 0


def test_the_model_card_names_the_data_its_licenses_the_scores_and_the_untested_slices() -> None:
    evidence = _flipped_challenger(share=0.0)
    evidence.asr.slices[-1] = {"voice": "de"}  # type: ignore[union-attr]  # one utterance: untested
    decision = decide(evidence, CONFIG).to_dict()
    card = model_card("7", {"intent": "voiceloop-intent/3", "asr": "voiceloop-asr/2"}, decision,
                      {"banking77-train": "abc123", "asr-digits": "def456", "custom-set": "0f0f"})
    assert card.startswith("# Model card: bundle v7")
    assert "`voiceloop-asr/2`" in card and "CC BY 4.0" in card and "CC BY-SA 4.0" in card
    assert "`custom-set` (digest `0f0f`): see the dataset's manifest" in card
    assert "| intent_accuracy | True |" in card and "asr_wer[voice=de]" in card
