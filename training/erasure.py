"""Right to erasure, training side: dataset versions rebuilt without the caller, the old versions and
the DVC objects only they used dropped, the models trained on them tagged, the champion re-measured.

Each step records what it did in the run's journal (:class:`governance.erasure.Journal`), saves it
before returning, and writes its own audit entry, so a killed run is simply run again;
``flows/erase.py`` calls the steps in order.
"""

from __future__ import annotations

from typing import Any

from core.settings import Settings
from governance.erasure import Journal
from governance.store import DatasetInfo, GovernedStore
from training.asr.data import audio_rows_digest, publish_audio
from training.datasets import ASR_DATASETS, ASR_GOLDEN, INTENT_GOLDEN, canonical_digest, open_version
from training.datasets import publish as publish_version
from training.evaluate import accuracy
from training.finetune import golden_references
from training.lineage import lineage_of_datasets, mark_retrain_required
from training.promotion import champion_predictions, drop_legacy_gate_caches
from training.registry import CHAMPION, Registry
from training.versioning import DvcRemoval, DvcVersioner

GOLDEN_SETS = frozenset({INTENT_GOLDEN, ASR_GOLDEN})  # what the gate scores the champion on
_MANIFEST_KEYS = {"name", "digest", "rows", "call_ids", "rebuilt_from", "erasure_request"}


def rebuild_without(store: GovernedStore, info: DatasetInfo, call_ids: set[str], request_id: str,
                    versioner: DvcVersioner | None) -> dict[str, Any]:
    """Publish ``info`` minus the rows of ``call_ids`` (same name, new digest) from its stored rows.

    The stored rows are checked against the old digest first: when they reproduce it, the new
    digest is exactly what ``build-datasets`` gives once the calls are gone from the redacted zone.
    """
    rows = open_version(store, info.name, info.digest).load().to_list()
    kept = [row for row in rows if row.get("call_id") not in call_ids]
    detail = {k: v for k, v in info.manifest.items() if k not in _MANIFEST_KEYS}
    audio = info.name in ASR_DATASETS  # audio clips are digested by content hash
    publish, digest_of = (publish_audio, audio_rows_digest) if audio else (publish_version, canonical_digest)
    new_digest = None
    if kept:
        new = publish(store, info.name, kept, **detail, rebuilt_from=info.digest, erasure_request=request_id)
        if versioner is not None:
            versioner.track(new.name, new.digest)
        new_digest = new.digest
    return {"name": info.name, "old_digest": info.digest, "new_digest": new_digest, "rows_before": len(rows),
            "rows_after": len(kept), "calls_removed": sorted(set(info.call_ids) & call_ids),
            "old_digest_reproduced": digest_of(rows) == info.digest}


def rebuild_dataset(store: GovernedStore, journal: Journal, info: DatasetInfo, current: bool, request_id: str,
                    versioner: DvcVersioner | None) -> None:
    """One affected version rebuilt without the journal's calls (``current``: the version retraining uses)."""
    entry = rebuild_without(store, info, set(journal.call_ids), request_id, versioner)
    entry["current"] = current
    journal.rebuilt(entry)
    journal.save(store)


def drop_versions(store: GovernedStore, journal: Journal, affected: list[DatasetInfo], request_id: str,
                  versioner: DvcVersioner | None) -> None:
    """Delete the replaced versions, then the DVC objects (cache and remote) that only they used."""
    for info in affected:
        deletion = store.delete_dataset(info.name, info.digest)
        # the other callers' rows live on in the rebuilt version: only the caller's calls were erased
        deletion.call_ids = sorted(set(deletion.call_ids) & set(journal.call_ids))
        journal.record(deletion)
        md5 = deletion.extra.get("dvc_md5")
        if md5 and md5 not in journal.dvc_pending:
            journal.dvc_pending.append(md5)
        journal.save(store)
    if versioner is None or not journal.dvc_pending:
        return
    removal = versioner.forget(journal.dvc_pending)
    journal.dvc = _merge_dvc(journal.dvc, removal)
    journal.dvc_pending = []
    journal.save(store)
    store.audit.append(store.actor, "erasure.dvc", zone="datasets", call_ids=journal.call_ids,
                       detail={"request_id": request_id, "versions": removal.versions,
                               "cache_objects": len(removal.cache.objects),
                               "remote_objects": len(removal.remote.objects), "shared_kept": len(removal.shared)})


def _merge_dvc(before: dict[str, Any], removal: DvcRemoval) -> dict[str, Any]:
    """Fold one removal into the journal's DVC record (a resumed run adds to what the first one did)."""
    out: dict[str, Any] = {
        "versions": sorted(set(before.get("versions", [])) | set(removal.versions)),
        "shared_kept": sorted(set(before.get("shared_kept", [])) | set(removal.shared)),
    }
    for where, part in (("cache", removal.cache), ("remote", removal.remote)):
        old = before.get(where, {})
        out[where] = {"location": part.location,
                      "objects": sorted(set(old.get("objects", [])) | set(part.objects)),
                      "bytes": int(old.get("bytes", 0)) + part.bytes}
    return out


def mark_models(settings: Settings, store: GovernedStore, journal: Journal, request_id: str) -> None:
    """Tag every MLflow run, model version and bundle version trained on a replaced version
    ``voiceloop.retrain_required``; when a golden set was replaced, delete the champion outputs that
    voiceloop before issue 16 kept in model runs (:func:`training.promotion.drop_legacy_gate_caches`)."""
    old = [(d["name"], d["old_digest"]) for d in journal.datasets]
    if not old:
        journal.models = {"runs": [], "model_versions": [], "bundle_versions": []}
        return
    registry = Registry(settings)
    tagged = mark_retrain_required(registry, lineage_of_datasets(registry, old), request_id)
    journal.models = {"tag": "voiceloop.retrain_required", **tagged}
    journal.save(store)
    if any(tagged.values()):
        store.audit.append(store.actor, "erasure.models-tagged", detail={"request_id": request_id, **tagged})
    if any(d["name"] in GOLDEN_SETS for d in journal.datasets):
        cleaned = drop_legacy_gate_caches(registry)
        if cleaned:
            journal.models["legacy_gate_caches_removed_from"] = cleaned
            journal.save(store)
            store.audit.append(store.actor, "erasure.legacy-gate-caches", detail={"request_id": request_id,
                                                                                   "runs": cleaned})


def rebaseline(settings: Settings, store: GovernedStore, journal: Journal, request_id: str) -> None:
    """The gate compares champion and challenger on the current golden set: when the caller was in it,
    measure the champion on the rebuilt set now, so the recorded baseline matches what the next gate sees."""
    golden = next((d for d in journal.datasets if d["name"] == INTENT_GOLDEN and d.get("current")), None)
    if golden is None:
        journal.golden = journal.golden or {"in_golden_set": False, "rebaselined": False}
        return
    record: dict[str, Any] = {"in_golden_set": True, "rebaselined": False, "old_digest": golden["old_digest"],
                              "new_digest": golden["new_digest"]}
    registry = Registry(settings)
    champion = registry.by_alias(CHAMPION)
    if champion is None or golden["new_digest"] is None:
        record["reason"] = "no champion yet" if champion is None else "the golden set is empty without the caller"
    else:
        version = open_version(store, INTENT_GOLDEN, golden["new_digest"])
        texts, labels = golden_references(version)
        scored = champion_predictions(registry, store, version, texts, settings.root / "work")
        if scored is not None:
            new_accuracy = accuracy(labels, scored.predictions)
            registry.record_baseline(champion.version, golden["new_digest"], new_accuracy, request_id)
            before = registry.client.get_run(champion.run_id).data.metrics.get("golden_accuracy") \
                if champion.run_id else None
            record.update(rebaselined=True, champion_version=champion.version, rows=len(labels),
                          accuracy=new_accuracy, accuracy_before=before)
            store.audit.append(store.actor, "erasure.rebaseline", zone="datasets",
                               detail={"request_id": request_id, **record})
    journal.golden = record
    journal.save(store)
