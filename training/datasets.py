"""Versioned datasets, built with Hugging Face ``datasets`` from validated, redacted turns.

A dataset version is named by the SHA-256 of its canonical rows, so the flow and
``dvc repro`` produce the same digest from the same redacted zone, and a re-run that finds
the digest already in the store reuses it. Each version keeps a manifest of the calls it
holds: the project's own record, which erasure and lineage rely on.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal, get_args

import pandas as pd
from datasets import Dataset

from core.corpus import Banking77Split, load_banking77
from governance.store import GovernedStore

COLUMNS = ["call_id", "turn", "text", "transcript", "intent", "voice", "channel", "snr_db"]
Task = Literal["intent", "asr"]
#: The splits of call rows: the simulator's and labelled calls' ``train`` and ``golden``, and the production
#: golden set grown from blind QA reviews (training/reviewed_labels.py).
DatasetSplit = Literal["train", "golden", "production-golden"]
DATASET_SPLITS: tuple[DatasetSplit, ...] = get_args(DatasetSplit)


def dataset_name(task: Task, split: DatasetSplit) -> str:
    """The one naming of per-split dataset versions: ``intent-train``, ``asr-golden`` ..."""
    return f"{task}-{split}"


INTENT_TRAIN, INTENT_GOLDEN = dataset_name("intent", "train"), dataset_name("intent", "golden")
ASR_TRAIN, ASR_GOLDEN = dataset_name("asr", "train"), dataset_name("asr", "golden")
INTENT_PRODUCTION_GOLDEN = dataset_name("intent", "production-golden")
ASR_PRODUCTION_GOLDEN = dataset_name("asr", "production-golden")
ASR_DIGITS = "asr-digits"  # the spoken-digit corpus (training only, no split)
BANKING77_TRAIN = "banking77-train"  # the shipped BANKING77 text (training only)
ASR_DATASETS = frozenset({ASR_TRAIN, ASR_GOLDEN, ASR_DIGITS, ASR_PRODUCTION_GOLDEN})
#: Judged on, never trained on.
EVALUATION_SETS = frozenset({INTENT_GOLDEN, ASR_GOLDEN, INTENT_PRODUCTION_GOLDEN, ASR_PRODUCTION_GOLDEN})


@dataclass(frozen=True)
class DatasetVersion:
    """A dataset version: named by its content digest, with the calls it holds.

    ``data`` is there only when the version was opened through the store (:func:`open_version`, or
    :meth:`opened`), which checks and audits the read; a version as published is a reference.
    """

    name: str
    digest: str
    rows: int
    call_ids: tuple[str, ...]
    data: Dataset | None = field(default=None, compare=False, repr=False)

    def load(self) -> Dataset:
        """The rows; the version must have been opened through the store."""
        if self.data is None:
            raise RuntimeError(f"dataset {self.short} was not opened through the store: use open_version()")
        return self.data

    def opened(self, store: GovernedStore) -> DatasetVersion:
        """This version with its rows, read through ``store`` (checked and audited for its purpose)."""
        return open_version(store, self.name, self.digest)

    def reference(self) -> DatasetVersion:
        """This version without its rows: what names it where the rows are not needed."""
        return replace(self, data=None)

    @property
    def short(self) -> str:
        return f"{self.name}@{self.digest[:12]}"


def canonical_digest(rows: list[dict[str, Any]]) -> str:
    payload = json.dumps(rows, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(payload.encode()).hexdigest()


def hashed_audio(row: Mapping[str, Any]) -> dict[str, Any]:
    """``row`` with its clip (an ``audio`` column's bytes) replaced by the clip's SHA-256: what digests hash."""
    audio = row.get("audio")
    if isinstance(audio, Mapping) and isinstance(audio.get("bytes"), bytes):
        return {**row, "audio": hashlib.sha256(audio["bytes"]).hexdigest()}
    return dict(row)


def row_key(row: Mapping[str, Any]) -> str:
    """One row's identity (its canonical content, clips hashed): the same turn with the same words and label
    in two versions has one key, and an edited transcript or a new label makes another."""
    return canonical_digest([hashed_audio(row)])


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    frame = frame.sort_values(["call_id", "turn"])
    frame = frame.astype(object).where(frame.notna(), None)
    return [{c: row[c] for c in COLUMNS} for row in frame.to_dict("records")]


def publish(store: GovernedStore, name: str, rows: list[dict[str, Any]], labels: Mapping[str, str] | None = None,
            **detail: Any) -> DatasetVersion:
    """Publish text rows as version ``name@<digest of the rows>`` through the store."""
    return publish_data(store, name, canonical_digest(rows), Dataset.from_list(rows), rows, labels, **detail)


def publish_data(store: GovernedStore, name: str, digest: str, data: Dataset, rows: list[dict[str, Any]],
                 labels: Mapping[str, str] | None = None, **detail: Any) -> DatasetVersion:
    """Publish ``data`` (made from ``rows``) under ``digest``; the manifest lists the calls the rows hold and,
    of ``labels`` (call id -> review digest), the QA reviews they carry (``reviewed_labels``)."""
    call_ids = tuple(sorted({r["call_id"] for r in rows if r.get("call_id")}))
    used = {c: labels[c] for c in call_ids if c in labels} if labels else {}
    store.write_dataset(name, digest, data, call_ids, **detail, **({"reviewed_labels": used} if used else {}))
    return DatasetVersion(name, digest, len(rows), call_ids)


def build_call_datasets(store: GovernedStore, validated: pd.DataFrame,
                        labels: Mapping[str, str] | None = None) -> dict[str, DatasetVersion]:
    """Labelled customer turns -> ``intent-train``, ``intent-golden`` and ``intent-production-golden``, one per split.

    A split with no labelled turn has no version (production calls arrive unlabelled: that is normal).
    """
    labelled = validated[(validated["speaker"] == "customer") & validated["intent"].notna()]
    out = {}
    for split in DATASET_SPLITS:
        name = dataset_name("intent", split)
        rows = _records(labelled[labelled["split"] == split])
        if rows:
            out[name] = publish(store, name, rows, labels, split=split)
    return out


@dataclass(frozen=True)
class WaitingForLabels:
    """Validated customer turns that carry no intent yet, and the calls they belong to."""

    calls: int
    turns: int


def waiting_for_labels(validated: pd.DataFrame) -> WaitingForLabels:
    unlabelled = validated[(validated["speaker"] == "customer") & validated["intent"].isna()]
    return WaitingForLabels(calls=int(unlabelled["call_id"].nunique()), turns=len(unlabelled))


def banking77_rows(split: Banking77Split, limit: int | None = None) -> list[dict[str, Any]]:
    """The shipped BANKING77 text (no call data): rows shaped like call rows."""
    rows = [
        {"call_id": None, "turn": u.row, "text": u.text, "transcript": u.text, "intent": u.intent,
         "voice": None, "channel": None, "snr_db": None}
        for u in load_banking77(split)
    ]
    return _balanced(rows, limit) if limit else rows


def _balanced(rows: list[dict[str, Any]], limit: int) -> list[dict[str, Any]]:
    """The first rows of every intent in turn: the CSV is sorted by intent, so a plain head is not a sample."""
    by_intent: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        by_intent.setdefault(row["intent"], []).append(row)
    picked: list[dict[str, Any]] = []
    for rank in range(max(len(group) for group in by_intent.values())):
        picked += [group[rank] for group in by_intent.values() if rank < len(group)]
    return picked[:limit]


def build_text_dataset(store: GovernedStore, limit: int | None = None) -> DatasetVersion:
    return publish(store, BANKING77_TRAIN, banking77_rows("train", limit), source="BANKING77 (CC BY 4.0)")


def build_versions(
    store: GovernedStore, validated: pd.DataFrame, include_banking77: bool, banking77_limit: int | None = None,
    labels: Mapping[str, str] | None = None,
) -> dict[str, DatasetVersion]:
    """Every dataset a retrain uses, from validated rows: what the flow and ``dvc repro`` both run."""
    versions = build_call_datasets(store, validated, labels)
    if include_banking77:
        versions[BANKING77_TRAIN] = build_text_dataset(store, banking77_limit)
    return versions


def callers_of(store: GovernedStore, versions: list[DatasetVersion]) -> dict[str, str]:
    """Call id -> the caller's pseudonym, for the calls of ``versions`` still in the redacted zone (a read for
    the store's purpose, checked and audited): which turns share a caller, never who it is."""
    call_ids = sorted({c for version in versions for c in version.call_ids} & store.redacted_call_ids())
    return {d["call_id"]: d["caller_ref"] for d in store.read_redacted(call_ids)} if call_ids else {}


def open_version(store: GovernedStore, name: str, digest: str) -> DatasetVersion:
    """A stored dataset version with its rows, handed out (checked and audited) by the store."""
    opened = store.open_dataset(name, digest)
    return DatasetVersion(name, digest, opened.manifest["rows"], opened.call_ids, opened.data)
