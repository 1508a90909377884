"""The datasets step: every dataset version a retrain uses, built from validated turns, and their versioning.

:func:`build_datasets` is what the retrain flow and the ``build-datasets`` DVC stage both run, so
the two give the same digests from the same redacted zone: the intent sets (call turns, and the
shipped BANKING77 text when configured) and, with ``asr.enabled``, the ASR sets (turns cut from
the redacted audio, and the spoken-digit corpus). :func:`version_datasets` then tracks and pushes
each version with DVC (the flow's versioning; a DVC stage is versioned by the DVC running it).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from core.corpus import intent_names
from core.settings import Settings
from governance.store import GovernedStore
from training.asr.data import build_configured
from training.datasets import DatasetVersion, WaitingForLabels, build_versions, waiting_for_labels
from training.reviewed_labels import apply_reviews
from training.versioning import DvcVersioner


@dataclass
class BuiltDatasets:
    versions: dict[str, DatasetVersion]  # only versions with rows: an empty one is never published
    waiting: WaitingForLabels  # customer turns no version holds yet: they have no intent label
    skipped: list[str] = field(default_factory=list)  # ASR turns left out, each named by call and turn, and why
    reviewed: dict[str, int] = field(default_factory=dict)  # QA-reviewed calls: train, production golden, held out


def build_datasets(store: GovernedStore, validated: pd.DataFrame, settings: Settings) -> BuiltDatasets:
    """Every configured dataset version from ``validated`` turns, with the QA reviews' labels applied (``store``
    acts for training: it reads the labels zone)."""
    reviews = apply_reviews(store, validated, settings.qa.production_golden_share, intent_names())
    validated = reviews.frame
    versions = build_versions(store, validated, settings.intent.include_banking77_train,
                              settings.intent.banking77_limit, labels=reviews.digests)
    asr = build_configured(store, validated, settings, labels=reviews.digests)
    return BuiltDatasets({**versions, **asr.versions}, waiting_for_labels(validated), [str(s) for s in asr.skipped],
                         {"train": reviews.train_calls, "production_golden": reviews.golden_calls,
                          "held_out": reviews.held_out_calls})


def version_datasets(store: GovernedStore, settings: Settings, versions: dict[str, DatasetVersion]) -> None:
    """Track and push every version with DVC (nothing when ``dvc.enabled`` is off)."""
    if not settings.dvc.enabled:
        return
    dvc = DvcVersioner.of(store, settings)
    for version in versions.values():
        dvc.track(version.name, version.digest)
