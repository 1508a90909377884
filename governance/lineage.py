"""Lineage, store side: where a call is, which dataset versions hold it, and which version is current.

Built from metadata only (the raw index, zone listings, quarantine reasons, dataset manifests,
tombstones and the audit log), so it needs no right to any zone and reads no call content. The
MLflow side (runs, model and bundle versions) is :mod:`training.lineage`; the CLI composes both.

A dataset version is *current* when it is the one last written under its name (the newest
``datasets.write`` entry of the audit log): what the latest retrain, ``build-datasets`` or erasure
rebuild produced. Older versions stay until an erasure removes them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from governance.ingest import erased_calls
from governance.store import DatasetInfo, GovernedStore


@dataclass(frozen=True)
class DatasetFacts:
    name: str
    digest: str
    present: bool  # still in the store (an erasure removes replaced versions)
    current: bool
    rows: int | None = None
    calls: int | None = None
    rebuilt_from: str | None = None  # set on versions an erasure rebuilt
    erasure_request: str | None = None
    reviewed_label: str | None = None  # the digest of the call's QA review this version's rows carry (if any)


@dataclass
class CallLocation:
    """Where one call is now, and the dataset versions that hold it."""

    call_id: str
    raw: bool
    redacted: bool
    quarantine: list[str] = field(default_factory=list)  # quarantine stage/item names
    erased_by: str | None = None  # erasure request id, when tombstoned
    datasets: list[DatasetFacts] = field(default_factory=list)
    reviewed: bool = False  # a QA review of the call is in the labels zone

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def current_versions(store: GovernedStore, names: set[str] | None = None) -> dict[str, str]:
    """Dataset name -> digest of its newest write (stops reading the log once every name is found)."""
    wanted = names if names is not None else {info.name for info in store.list_datasets()}
    out: dict[str, str] = {}
    for entry in store.audit.entries(action="datasets.write", newest_first=True):
        name = entry.detail.get("dataset")
        if name in wanted and name not in out:
            out[name] = str(entry.detail.get("digest"))
            if len(out) == len(wanted):
                break
    return out


def _facts(info: DatasetInfo, current: dict[str, str], call_id: str | None = None) -> DatasetFacts:
    return DatasetFacts(info.name, info.digest, True, current.get(info.name) == info.digest, info.rows,
                        len(info.call_ids), info.manifest.get("rebuilt_from"), info.manifest.get("erasure_request"),
                        info.manifest.get("reviewed_labels", {}).get(call_id) if call_id else None)


def locate_call(store: GovernedStore, call_id: str) -> CallLocation:
    """Zones, tombstone and dataset versions of one call."""
    holding = [info for info in store.list_datasets() if call_id in info.call_ids]
    current = current_versions(store, {info.name for info in holding}) if holding else {}
    return CallLocation(
        call_id=call_id,
        raw=call_id in store.raw_call_ids(),
        redacted=call_id in store.redacted_call_ids(),
        quarantine=[f"{r['stage']}/{r['item']}" for r in store.quarantined() if r.get("call_id") == call_id],
        erased_by=erased_calls(store).get(call_id),
        datasets=[_facts(info, current, call_id) for info in holding],
        reviewed=call_id in store.label_keys("reviews"),
    )


def dataset_facts(store: GovernedStore, datasets: dict[str, str]) -> list[DatasetFacts]:
    """Facts of named versions (``name -> digest``), including ones no longer in the store."""
    stored = {(info.name, info.digest): info for info in store.list_datasets()}
    current = current_versions(store, set(datasets))
    out = []
    for name, digest in sorted(datasets.items()):
        info = stored.get((name, digest))
        out.append(_facts(info, current) if info else DatasetFacts(name, digest, False, current.get(name) == digest))
    return out
