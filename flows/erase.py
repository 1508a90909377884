"""Carry out a right-to-erasure request, end to end, and close it with a signed certificate.

Order matters, so that a run killed at any point leaves nothing behind that the next run cannot
find (the journal in :mod:`governance.erasure` remembers what was done; running again finishes):

1. find the caller's calls (raw index, redacted zone, quarantine, and the calls retention deleted
   from raw whose rows live on) and the dataset versions whose
   manifests hold them; check every right the run needs before touching anything;
2. tombstone the calls, so ingest never re-imports them from the call store;
3. rebuild each affected dataset version without the caller's rows, from the stored rows (raw data
   may be long gone), publish it through the store and push it with DVC;
4. delete the calls from raw, redacted and quarantine, then the old dataset versions, then the DVC
   objects only they used, from the cache and the remote;
5. tag every MLflow run, model version and bundle version trained on an old version
   ``voiceloop.retrain_required``; if the current golden set held the caller, re-measure the
   champion on the rebuilt one (the set the next gate compares on) and record it;
6. write the certificate, sign it with the audit key, chain it into the audit log.

Not a Prefect flow on purpose: a flow's parameters are stored in Prefect's database, and the
caller id is the one thing an erasure must not write anywhere.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from core.settings import Settings
from governance.erasure import (
    ErasureRequest,
    Journal,
    certificate_body,
    check_rights,
    complete_request,
    delete_calls,
    resolve_request,
    sign_certificate,
    write_certificate,
)
from governance.ingest import erased_calls, tombstone
from governance.lineage import current_versions
from governance.retention import forget_retained, retained_calls_of
from governance.session import open_store
from governance.store import CallerFootprint, DatasetInfo, GovernedStore
from training.asr.data import audio_rows_digest, publish_audio
from training.datasets import ASR_DATASETS, INTENT_GOLDEN, canonical_digest, open_version
from training.datasets import publish as publish_version
from training.evaluate import accuracy
from training.finetune import golden_references
from training.lineage import lineage_of_datasets, mark_retrain_required
from training.promotion import champion_predictions
from training.registry import CHAMPION, Registry
from training.versioning import DvcRemoval, DvcVersioner

StepCallback = Callable[[str, int, int], None]  # (what is starting, steps done, steps in all)
_MANIFEST_KEYS = {"name", "digest", "rows", "call_ids", "rebuilt_from", "erasure_request"}


@dataclass
class ErasureOutcome:
    request: ErasureRequest
    certificate: dict[str, Any]
    path: Path
    timings_s: dict[str, float] = field(default_factory=dict)


def erase_caller(settings: Settings, role: str, caller_id: str, *, request_id: str | None = None,
                 now: datetime | None = None, on_step: StepCallback | None = None) -> ErasureOutcome:
    """Erase everything the project holds of one caller; returns the signed certificate.

    Carries out ``request_id`` (it must be this caller's), else the caller's open request, else
    records a new one. Raises :class:`governance.access.AccessDenied` before anything is deleted
    when ``role`` may not do every step (see ``docs/erasure.md``).
    """
    store = open_store(settings, role, "erasure")
    request = resolve_request(store.audit, store.actor, caller_id, request_id,
                              settings.retention.erasure_deadline_days, now)
    return _Erasure(settings, store, request, caller_id, on_step).run()


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


class _Erasure:
    """One run of one request: each step saves the journal before the next starts."""

    def __init__(self, settings: Settings, store: GovernedStore, request: ErasureRequest, caller_id: str,
                 on_step: StepCallback | None) -> None:
        self.settings, self.store, self.request, self.caller_id = settings, store, request, caller_id
        self.journal = Journal.load(store, request.request_id)
        self.on_step = on_step
        self.timings: dict[str, float] = {}
        self.done, self.total = 0, 6
        self._label, self._started = "", time.perf_counter()

    def _step(self, label: str) -> None:
        now = time.perf_counter()
        if self.done:
            self.timings[self._label] = round(now - self._started, 3)
        self._label, self._started = label, now
        if self.on_step:
            self.on_step(label, self.done, self.total)
        self.done += 1

    def _registry(self) -> Registry:
        return Registry(self.settings)

    def _find(self) -> tuple[CallerFootprint, list[DatasetInfo]]:
        """The caller's calls (this run's finds, earlier runs' tombstones, retention's index) and the
        dataset versions holding any of them; the calls are tombstoned before anything is deleted."""
        store, journal, request_id = self.store, self.journal, self.request.request_id
        caller_ref = store.caller_ref(self.caller_id)
        footprint = store.calls_of_caller(caller_ref)
        earlier = [c for c, r in erased_calls(store).items() if r == request_id]
        expired = retained_calls_of(store, caller_ref)  # raw gone by retention, rows maybe still in datasets
        journal.call_ids = sorted(set(journal.call_ids) | set(footprint.call_ids) | set(earlier) | set(expired))
        affected = [info for info in store.list_datasets() if set(journal.call_ids) & set(info.call_ids)]
        check_rights(store, datasets=bool(affected or journal.dvc_pending))
        tombstone(store, journal.call_ids, request_id)
        journal.save(store)
        return footprint, affected

    def run(self) -> ErasureOutcome:
        store, journal, request_id = self.store, self.journal, self.request.request_id
        self._step("finding the caller's calls")
        footprint, affected = self._find()
        self.total += len(affected)
        erased = set(journal.call_ids)
        current = current_versions(store, {info.name for info in affected}) if affected else {}

        versioner = self._versioner() if affected or journal.dvc_pending else None
        for info in affected:
            self._step(f"rebuilding {info.name}@{info.digest[:12]} without the caller")
            entry = rebuild_without(store, info, erased, request_id, versioner)
            entry["current"] = current.get(info.name) == info.digest
            journal.rebuilt(entry)
            journal.save(store)

        self._step("deleting raw, redacted and quarantined calls")
        for deletion in delete_calls(store, footprint, journal.call_ids).values():
            journal.record(deletion)
        forget_retained(store, journal.call_ids)
        journal.save(store)

        self._step("deleting replaced dataset versions and their DVC objects")
        self._drop_versions(affected, versioner)
        self._step("tagging models trained on the caller's calls")
        self._mark_models()
        self._step("re-measuring the champion on the rebuilt golden set")
        self._rebaseline()
        self._step("signing the certificate")
        return self._certify()

    def _versioner(self) -> DvcVersioner | None:
        if not self.settings.dvc.enabled:
            return None
        return DvcVersioner.of(self.store, self.settings)

    def _drop_versions(self, affected: list[DatasetInfo], versioner: DvcVersioner | None) -> None:
        journal = self.journal
        for info in affected:
            deletion = self.store.delete_dataset(info.name, info.digest)
            # the other callers' rows live on in the rebuilt version: only the caller's calls were erased
            deletion.call_ids = sorted(set(deletion.call_ids) & set(journal.call_ids))
            journal.record(deletion)
            md5 = deletion.extra.get("dvc_md5")
            if md5 and md5 not in journal.dvc_pending:
                journal.dvc_pending.append(md5)
            journal.save(self.store)
        if versioner is not None and journal.dvc_pending:
            removal = versioner.forget(journal.dvc_pending)
            journal.dvc = _merge_dvc(journal.dvc, removal)
            journal.dvc_pending = []
            journal.save(self.store)
            self.store.audit.append(self.store.actor, "erasure.dvc", zone="datasets", call_ids=journal.call_ids,
                                    detail={"request_id": self.request.request_id, "versions": removal.versions,
                                            "cache_objects": len(removal.cache.objects),
                                            "remote_objects": len(removal.remote.objects),
                                            "shared_kept": len(removal.shared)})

    def _mark_models(self) -> None:
        old = [(d["name"], d["old_digest"]) for d in self.journal.datasets]
        if not old:
            self.journal.models = {"runs": [], "model_versions": [], "bundle_versions": []}
            return
        registry = self._registry()
        tagged = mark_retrain_required(registry, lineage_of_datasets(registry, old), self.request.request_id)
        self.journal.models = {"tag": "voiceloop.retrain_required", **tagged}
        self.journal.save(self.store)
        if any(tagged.values()):
            self.store.audit.append(self.store.actor, "erasure.models-tagged",
                                    detail={"request_id": self.request.request_id, **tagged})

    def _rebaseline(self) -> None:
        """The gate compares champion and challenger on the current golden set: when the caller was in it,
        measure the champion on the rebuilt set now, so the recorded baseline matches what the next gate sees."""
        golden = next((d for d in self.journal.datasets if d["name"] == INTENT_GOLDEN and d.get("current")), None)
        if golden is None:
            self.journal.golden = self.journal.golden or {"in_golden_set": False, "rebaselined": False}
            return
        record: dict[str, Any] = {"in_golden_set": True, "rebaselined": False, "old_digest": golden["old_digest"],
                                  "new_digest": golden["new_digest"]}
        registry = self._registry()
        champion = registry.by_alias(CHAMPION)
        if champion is None or golden["new_digest"] is None:
            record["reason"] = "no champion yet" if champion is None else "the golden set is empty without the caller"
        else:
            version = open_version(self.store, INTENT_GOLDEN, golden["new_digest"])
            texts, labels = golden_references(version)
            scored = champion_predictions(registry, texts, self.settings.root / "work")
            if scored is not None:
                new_accuracy = accuracy(labels, scored.predictions)
                registry.record_baseline(champion.version, golden["new_digest"], new_accuracy,
                                         self.request.request_id)
                before = registry.client.get_run(champion.run_id).data.metrics.get("golden_accuracy") \
                    if champion.run_id else None
                record.update(rebaselined=True, champion_version=champion.version, rows=len(labels),
                              accuracy=new_accuracy, accuracy_before=before)
                self.store.audit.append(self.store.actor, "erasure.rebaseline", zone="datasets",
                                        detail={"request_id": self.request.request_id, **record})
        self.journal.golden = record
        self.journal.save(self.store)

    def _certify(self) -> ErasureOutcome:
        audit = self.store.audit
        certificate = sign_certificate(audit, certificate_body(self.store, self.request, self.journal,
                                                               datetime.now(UTC)))
        path = write_certificate(self.settings.root, certificate)
        complete_request(audit, self.store.actor, self.caller_id, certificate, path)
        self._step("done")
        return ErasureOutcome(self.request, certificate, path, self.timings)
