"""Carry out a right-to-erasure request or a consent withdrawal, end to end, and close it with a signed certificate.

Order matters, so that a run killed at any point leaves nothing behind that the next run cannot
find (the journal in :mod:`governance.erasure` remembers what was done; running again finishes):

1. find the caller's calls (raw index, redacted zone, quarantine, and the calls retention deleted
   from raw whose rows live on) and the dataset versions whose
   manifests hold them; check every right the run needs before touching anything;
2. tombstone the calls, so ingest never re-imports them from the call store;
3. rebuild each affected dataset version without the caller's rows, from the stored rows (raw data
   may be long gone), publish it through the store and push it with DVC;
4. delete the calls' QA reviews (their Label Studio tasks first, then the labels zone's reviews, tasks and
   review audio: for a withdrawal too, whatever ``consent.on_withdrawal`` says), then the calls from raw,
   redacted and quarantine, then the old dataset versions, then the DVC objects only they used, from the
   cache and the remote;
5. tag every MLflow run, model version and bundle version trained on an old version
   ``voiceloop.retrain_required``; if the current golden set held the caller, re-measure the
   champion on the rebuilt one (the set the next gate compares on) and record it;
6. write the certificate, sign it with the audit key, chain it into the audit log.

The store-side steps are governance's (``governance/erasure.py``), the dataset, DVC and MLflow steps
training's (``training/erasure.py``); this module only runs them in order and reports progress.
A consent withdrawal (``governance/consent.py``) runs the same steps for its calls, except that the
calls stay in the call zones unless ``consent.on_withdrawal`` is ``erase``; the retrain flow carries
out the withdrawals ingest found, ``voiceloop consent withdraw`` a caller's at once.

Not a Prefect flow on purpose: a flow's parameters are stored in Prefect's database, and the
caller id is the one thing an erasure must not write anywhere.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from core.settings import Settings
from flows.qa_studio import delete_review_tasks
from governance.consent import ConsentLedger, Withdrawal, mark_applied
from governance.erasure import (
    ErasureRequest,
    Journal,
    certify,
    delete_call_labels,
    delete_caller_calls,
    find_caller_calls,
    find_withdrawn_calls,
    resolve_request,
)
from governance.lineage import current_versions
from governance.session import open_store
from governance.store import CallerFootprint, DatasetInfo, GovernedStore
from training.erasure import drop_versions, mark_models, rebaseline, rebuild_dataset
from training.versioning import DvcVersioner

StepCallback = Callable[[str, int, int], None]  # (what is starting, steps done, steps in all)


@dataclass
class ErasureOutcome:
    request: ErasureRequest
    certificate: dict[str, Any]
    path: Path
    timings_s: dict[str, float] = field(default_factory=dict)


@dataclass
class _Progress:
    """Announces each step to ``on_step`` and times the one before it."""

    on_step: StepCallback | None
    total: int = 7
    done: int = 0
    timings: dict[str, float] = field(default_factory=dict)
    _label: str = ""
    _started: float = 0.0

    def step(self, label: str) -> None:
        now = time.perf_counter()
        if self.done:
            self.timings[self._label] = round(now - self._started, 3)
        self._label, self._started = label, now
        if self.on_step:
            self.on_step(label, self.done, self.total)
        self.done += 1


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
    journal = Journal.load(store, request.request_id)
    progress = _Progress(on_step)
    progress.step("finding the caller's calls")
    footprint, affected = find_caller_calls(store, journal, caller_id, request.request_id)
    _take_out(settings, store, journal, footprint, affected, progress, delete=True)
    progress.step("signing the certificate")
    certificate, path = certify(settings.root, store, request, journal, caller_id)
    progress.step("done")
    return ErasureOutcome(request, certificate, path, progress.timings)


def carry_out_withdrawal(settings: Settings, store: GovernedStore, withdrawal: Withdrawal,
                         caller_id: str | None = None, on_step: StepCallback | None = None) -> ErasureOutcome:
    """Take a withdrawal's calls out of every dataset version and model lineage (and, with
    ``consent.on_withdrawal: erase``, out of the call zones); ``store`` acts for withdrawal."""
    erase = settings.consent.on_withdrawal == "erase"
    journal = Journal.load(store, withdrawal.withdrawal_id)
    progress = _Progress(on_step)
    progress.step("finding the withdrawn calls")
    footprint, affected = find_withdrawn_calls(store, journal, withdrawal, erase)
    _take_out(settings, store, journal, footprint, affected, progress, delete=erase)
    progress.step("signing the certificate")
    recorded = datetime.fromisoformat(withdrawal.at)
    request = ErasureRequest(withdrawal.withdrawal_id, None, recorded, recorded.date())
    certificate, path = certify(settings.root, store, request, journal, caller_id, withdrawal={
        "scope": withdrawal.scope, "recorded_at": withdrawal.at, "on_withdrawal": settings.consent.on_withdrawal})
    mark_applied(store, withdrawal.withdrawal_id)
    progress.step("done")
    return ErasureOutcome(request, certificate, path, progress.timings)


def carry_out_pending_withdrawals(settings: Settings, store: GovernedStore) -> list[ErasureOutcome]:
    """Every recorded withdrawal not carried out yet (ingest's findings, interrupted runs), oldest first."""
    return [carry_out_withdrawal(settings, store, w) for w in ConsentLedger.load(store).pending()]


def _take_out(settings: Settings, store: GovernedStore, journal: Journal, footprint: CallerFootprint,
              affected: list[DatasetInfo], progress: _Progress, delete: bool) -> None:
    """The middle both runs share: rebuild the affected versions without the journal's calls, delete the calls
    from the call zones (``delete``), drop the replaced versions and their DVC objects, tag the models
    trained on them, and re-measure the champion if the current golden set changed."""
    request_id = journal.request_id
    progress.total += len(affected) - (0 if delete else 1)
    current = current_versions(store, {info.name for info in affected}) if affected else {}
    versioner = DvcVersioner.of(store, settings) if settings.dvc.enabled and (affected or journal.dvc_pending) \
        else None
    for info in affected:
        progress.step(f"rebuilding {info.name}@{info.digest[:12]} without the calls")
        rebuild_dataset(store, journal, info, current.get(info.name) == info.digest, request_id, versioner)
    progress.step("deleting QA reviews: Label Studio tasks, review audio, labels")
    delete_review_tasks(settings, store, journal.call_ids)
    delete_call_labels(store, journal)
    if delete:
        progress.step("deleting raw, redacted and quarantined calls")
        delete_caller_calls(store, journal, footprint)
    progress.step("deleting replaced dataset versions and their DVC objects")
    drop_versions(store, journal, affected, request_id, versioner)
    progress.step("tagging models trained on the calls")
    mark_models(settings, store, journal, request_id)
    progress.step("re-measuring the champion on the rebuilt golden set")
    rebaseline(settings, store, journal, request_id)
