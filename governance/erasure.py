"""Right to erasure, store side: requests and deadlines, the rights an erasure needs, the zone
deletes, the run's journal and the signed certificate that closes a request.

A request lives in the audit log only: ``erasure.request`` (``detail.request_id``,
``detail.deadline``) opens it and ``erasure.completed`` (same ``request_id``, the certificate's
digest and signature) closes it. The caller appears in both as the log's keyed pseudonym, never in
clear, so the log never has to be edited after an erasure. Carrying a request out needs the
caller id again (nothing stores it in clear), which is checked against the request's pseudonym.

What a run removed is kept in a journal (store state ``erasure-<request_id>``, call ids and paths
only) and saved after every step, so a killed erasure is simply run again and its certificate
still lists everything removed. The steps that touch only the store live here (find and tombstone
the caller's calls, delete them, certify); dataset rebuilding, DVC and MLflow are training's
(``training/erasure.py``), and ``flows/erase.py`` runs the steps in order.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

from governance import access
from governance.access import AccessDenied
from governance.audit import Actor, AuditEntry, AuditLog
from governance.audit_chain import canonical_json
from governance.consent import Withdrawal
from governance.ingest import erased_calls, tombstone
from governance.policy import CALL_ZONES, DATASETS_ZONE, OPERATIONS
from governance.retention import forget_retained, retained_calls_of
from governance.store import CallerFootprint, DatasetInfo, Deletion, GovernedStore

REQUEST_ACTION = "erasure.request"
COMPLETED_ACTION = "erasure.completed"
CERTIFICATE_DIR = "erasure-certificates"
CERTIFICATE_FORMAT = "voiceloop-erasure-certificate/1"
SIGNATURE_ALGORITHM = "HMAC-SHA256 (audit signature key)"
ZONE_RIGHTS = tuple((zone, "delete") for zone in CALL_ZONES)
DATASET_RIGHTS = tuple((DATASETS_ZONE, operation) for operation in OPERATIONS)  # rebuilt without the caller
#: QA labels go with every erasure and withdrawal (found by their task records first, then deleted)
LABEL_RIGHTS = (("labels", "read"), ("labels", "delete"))


class ErasureError(RuntimeError):
    """The request cannot be carried out as asked (wrong caller for the request id, ...)."""


# -- requests ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ErasureRequest:
    request_id: str
    caller: str | None  # the audit log's pseudonym of the caller
    requested_at: datetime
    deadline: date
    completed_at: datetime | None = None
    certificate: str | None = None  # file name of the certificate that closed it

    def status(self, now: datetime) -> str:
        """``completed``, ``overdue`` (past its deadline, as the audit report counts it) or ``pending``."""
        if self.completed_at is not None:
            return "completed"
        return "overdue" if datetime.combine(self.deadline, time(), UTC) < now else "pending"

    def as_dict(self, now: datetime) -> dict[str, Any]:
        return {**asdict(self), "requested_at": self.requested_at.isoformat(), "deadline": self.deadline.isoformat(),
                "completed_at": self.completed_at.isoformat() if self.completed_at else None,
                "status": self.status(now)}


def record_request(audit: AuditLog, actor: Actor, caller_id: str, deadline_days: int,
                   now: datetime | None = None) -> ErasureRequest:
    """Open a request: an ``erasure.request`` entry with its id and legal deadline (caller pseudonymised)."""
    now = now or datetime.now(UTC)
    request_id = f"er-{now:%Y%m%d}-{secrets.token_hex(4)}"
    deadline = (now + timedelta(days=deadline_days)).date()
    entry = audit.append(actor, REQUEST_ACTION, caller=caller_id,
                         detail={"request_id": request_id, "deadline": deadline.isoformat(),
                                 "deadline_days": deadline_days})
    return ErasureRequest(request_id, entry.caller, entry.when, deadline)


def erasure_requests(audit: AuditLog, caller_id: str | None = None) -> list[ErasureRequest]:
    """Every request in the log (of one caller, matched through the pseudonym), with its completion."""
    completed: dict[str, AuditEntry] = {}
    for entry in audit.entries(action=COMPLETED_ACTION, caller=caller_id):
        completed.setdefault(str(entry.detail.get("request_id")), entry)
    out = []
    for entry in audit.entries(action=REQUEST_ACTION, caller=caller_id):
        request_id = str(entry.detail.get("request_id", ""))
        try:
            deadline = date.fromisoformat(str(entry.detail.get("deadline")))
        except ValueError:
            continue  # not one of ours: an entry without a readable deadline is no request
        done = completed.get(request_id)
        out.append(ErasureRequest(request_id, entry.caller, entry.when, deadline,
                                  done.when if done else None,
                                  str(done.detail.get("certificate")) if done else None))
    return out


def open_requests(audit: AuditLog, now: datetime | None = None) -> list[ErasureRequest]:
    """Requests not completed yet, overdue first, then by deadline."""
    now = now or datetime.now(UTC)
    pending = [r for r in erasure_requests(audit) if r.completed_at is None]
    return sorted(pending, key=lambda r: (r.status(now) != "overdue", r.deadline, r.request_id))


OVERDUE_ACTION = "erasure.overdue"


def audit_overdue_requests(audit: AuditLog, actor: Actor, now: datetime | None = None) -> list[ErasureRequest]:
    """Write ``erasure.overdue`` once for each request past its deadline and still open; returns those newly
    written (the scheduled deadline check runs this: an overdue request is on record even if nobody looks)."""
    now = now or datetime.now(UTC)
    noted = {str(e.detail.get("request_id")) for e in audit.entries(action=OVERDUE_ACTION)}
    new = [r for r in open_requests(audit, now) if r.status(now) == "overdue" and r.request_id not in noted]
    for request in new:
        audit.append(actor, OVERDUE_ACTION, detail={"request_id": request.request_id,
                                                    "deadline": request.deadline.isoformat()})
    return new


def resolve_request(audit: AuditLog, actor: Actor, caller_id: str, request_id: str | None,
                    deadline_days: int, now: datetime | None = None) -> ErasureRequest:
    """The request to carry out: the one named (it must be this caller's), else the caller's open
    one, else a new one recorded now."""
    mine = erasure_requests(audit, caller_id)
    if request_id:
        match = [r for r in mine if r.request_id == request_id]
        if not match:
            raise ErasureError(f"request {request_id} is not an erasure request of this caller (check the request "
                               "id and the caller id; `voiceloop erase --list` shows open requests)")
        if match[0].completed_at is not None:
            raise ErasureError(f"request {request_id} was completed on {match[0].completed_at:%Y-%m-%d} "
                               f"(certificate {match[0].certificate}); record a new one to erase again")
        return match[0]
    still_open = [r for r in mine if r.completed_at is None]
    return still_open[0] if still_open else record_request(audit, actor, caller_id, deadline_days, now)


# -- rights ---------------------------------------------------------------------------------------------
def check_rights(store: GovernedStore, datasets: bool, zones: bool = True) -> None:
    """Refuse before anything is touched unless the actor may do every step the run needs (``zones``:
    delete calls from the call zones; ``datasets``: rebuild dataset versions; always: find and delete labels).

    Without this, a role allowed to delete raw data but not to rebuild datasets would stop half-way,
    with the caller gone from some zones and still in the dataset versions.
    """
    for zone, operation in (ZONE_RIGHTS if zones else ()) + (DATASET_RIGHTS if datasets else ()) + LABEL_RIGHTS:
        try:
            access.check(store.policy, store.actor, zone, operation)
        except AccessDenied as denied:
            store.audit.append(store.actor, f"{zone}.{operation}", zone=zone, outcome="denied",
                               detail={"reason": str(denied), "step": "erasure pre-check"})
            raise


# -- the journal: what a (possibly resumed) erasure removed ------------------------------------------
@dataclass
class ZoneRecord:
    call_ids: list[str] = field(default_factory=list)
    paths: list[str] = field(default_factory=list)
    files: int = 0
    bytes: int = 0
    items: list[str] = field(default_factory=list)  # quarantine item keys

    def add(self, deletion: Deletion) -> None:
        self.call_ids = sorted(set(self.call_ids) | set(deletion.call_ids))
        self.paths = sorted(set(self.paths) | set(deletion.paths))
        self.files += deletion.files
        self.bytes += deletion.bytes
        self.items = sorted(set(self.items) | set(deletion.extra.get("items", [])))


@dataclass
class Journal:
    """Everything one request's runs removed so far (call ids, paths, digests, object ids: no PII)."""

    request_id: str
    call_ids: list[str] = field(default_factory=list)
    zones: dict[str, ZoneRecord] = field(
        default_factory=lambda: {z: ZoneRecord() for z in (*CALL_ZONES, DATASETS_ZONE)}
    )
    datasets: list[dict[str, Any]] = field(default_factory=list)  # {name, old_digest, new_digest, rows...}
    dvc_pending: list[str] = field(default_factory=list)  # .dir md5s of dropped versions not yet forgotten
    dvc: dict[str, Any] = field(default_factory=dict)
    models: dict[str, Any] = field(default_factory=dict)
    golden: dict[str, Any] = field(default_factory=dict)

    @staticmethod
    def state_name(request_id: str) -> str:
        return f"erasure-{request_id}"

    @classmethod
    def load(cls, store: GovernedStore, request_id: str) -> Journal:
        state = store.read_state(cls.state_name(request_id))
        if not state:
            return cls(request_id)
        zones = {name: ZoneRecord(**record) for name, record in state.pop("zones").items()}
        return cls(**{**state, "zones": zones})

    def save(self, store: GovernedStore) -> None:
        store.write_state(self.state_name(self.request_id), asdict(self))

    def record(self, deletion: Deletion) -> None:
        self.zones.setdefault(deletion.zone, ZoneRecord()).add(deletion)  # journals begun before a zone existed

    def rebuilt(self, entry: dict[str, Any]) -> None:
        self.datasets = [d for d in self.datasets if d["old_digest"] != entry["old_digest"]] + [entry]


# -- the store-side steps of a run: each records what it did in the journal and saves it --------------
def _datasets_holding(store: GovernedStore, call_ids: list[str]) -> list[DatasetInfo]:
    return [info for info in store.list_datasets() if set(call_ids) & set(info.call_ids)]


def find_caller_calls(store: GovernedStore, journal: Journal, caller_id: str,
                      request_id: str) -> tuple[CallerFootprint, list[DatasetInfo]]:
    """The caller's calls (this run's finds, earlier runs' tombstones, retention's index) and the dataset
    versions holding any of them. Every right the run needs is checked, then the calls are tombstoned
    (ingest never imports them again), before anything is deleted."""
    caller_ref = store.caller_ref(caller_id)
    footprint = store.calls_of_caller(caller_ref)
    earlier = [c for c, r in erased_calls(store).items() if r == request_id]
    expired = retained_calls_of(store, caller_ref)  # raw gone by retention, rows maybe still in datasets
    journal.call_ids = sorted(set(journal.call_ids) | set(footprint.call_ids) | set(earlier) | set(expired))
    affected = _datasets_holding(store, journal.call_ids)
    check_rights(store, datasets=bool(affected or journal.dvc_pending))
    tombstone(store, journal.call_ids, request_id)
    journal.save(store)
    return footprint, affected


def find_withdrawn_calls(store: GovernedStore, journal: Journal, withdrawal: Withdrawal,
                         erase: bool) -> tuple[CallerFootprint, list[DatasetInfo]]:
    """A withdrawal's calls and the dataset versions holding any of them, rights checked first. With
    ``erase`` (consent.on_withdrawal) they are also found in the call zones and tombstoned, as an erasure's."""
    journal.call_ids = sorted(set(journal.call_ids) | set(withdrawal.call_ids))
    affected = _datasets_holding(store, journal.call_ids)
    check_rights(store, datasets=bool(affected or journal.dvc_pending), zones=erase)
    footprint = CallerFootprint(withdrawal.caller_ref or "", (), (), (), ())
    if erase:
        footprint = store.footprint_of_calls(journal.call_ids)
        tombstone(store, journal.call_ids, withdrawal.withdrawal_id)
    journal.save(store)
    return footprint, affected


def delete_caller_calls(store: GovernedStore, journal: Journal, footprint: CallerFootprint) -> None:
    """Remove the caller's calls from raw, redacted, quarantine and monitoring (each delete audited by the
    store), and from retention's index of expired calls."""
    deletions = (store.delete_raw(footprint.raw), store.delete_redacted(footprint.redacted),
                 store.delete_quarantined(journal.call_ids, items=footprint.quarantine),
                 store.delete_monitoring(journal.call_ids))
    for deletion in deletions:
        journal.record(deletion)
    forget_retained(store, journal.call_ids)
    journal.save(store)


def delete_call_labels(store: GovernedStore, journal: Journal) -> None:
    """Remove the journal's calls from the labels zone (reviews, review tasks, review audio, sample lists): an
    erasure's and every consent withdrawal's, since a reviewed label is training data whatever on_withdrawal says."""
    journal.record(store.delete_labels(journal.call_ids))
    journal.save(store)


# -- certificates ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class CertificateCheck:
    ok: bool
    signature_valid: bool
    in_audit_log: bool
    request_id: str | None
    digest: str | None
    reason: str


def certificate_digest(body: dict[str, Any]) -> str:
    """SHA-256 of the certificate's canonical JSON, without its signature (what the log records)."""
    return hashlib.sha256(canonical_json(body).encode()).hexdigest()


WITHDRAWAL_NOT_COVERED = [
    "with consent.on_withdrawal: exclude, the raw and redacted copies, kept for their other uses until retention",
    "the source call store, backups and snapshots of the project folder, and copies others made",
    "model weights trained on the withdrawn calls: tagged voiceloop.retrain_required until retrained",
]


#: A store on object storage: every version of the objects is deleted, and this machine's local copies; other
#: machines' copies (dataset versions a trainer opened, review audio) go when the store is next used there.
REMOTE_COPIES_NOT_COVERED = ("local copies of the store's dataset versions and review audio in the work area of "
                             "other machines (this machine's were deleted; others drop theirs on the store's next "
                             "use there)")


def certificate_body(store: GovernedStore, request: ErasureRequest, journal: Journal,
                     now: datetime | None = None, withdrawal: dict[str, Any] | None = None) -> dict[str, Any]:
    """The facts of a completed erasure: pseudonym, call ids, paths, digests, object ids; never PII.

    ``withdrawal`` (scope, on_withdrawal) makes it the certificate of a consent withdrawal instead.
    """
    return {
        "format": CERTIFICATE_FORMAT,
        "kind": "consent-withdrawal" if withdrawal else "erasure",
        **({"withdrawal": withdrawal} if withdrawal else {}),
        "request_id": request.request_id,
        "caller": request.caller,
        "requested_at": request.requested_at.isoformat(),
        "deadline": request.deadline.isoformat(),
        "completed_at": (now or datetime.now(UTC)).isoformat(),
        "by": {"user": store.actor.user, "role": store.actor.role, "purpose": store.actor.purpose},
        "call_ids": journal.call_ids,
        "zones": {name: asdict(record) for name, record in journal.zones.items()},
        "datasets": journal.datasets,
        "dvc": journal.dvc,
        "models": journal.models,
        "golden": journal.golden,
        "not_covered": (WITHDRAWAL_NOT_COVERED if withdrawal else [
            "the source call store the calls were ingested from (tombstones stop re-import; erase there too)",
            "backups and snapshots of the project folder, and copies others made",
            "model weights trained on the erased calls: tagged voiceloop.retrain_required until retrained",
        ]) + ([REMOTE_COPIES_NOT_COVERED] if store.zones.remote else []),
    }


def sign_certificate(audit: AuditLog, body: dict[str, Any]) -> dict[str, Any]:
    return {**body, "signature": {"algorithm": SIGNATURE_ALGORITHM, "key_id": audit.key_id,
                                  "value": audit.sign(body)}}


def write_certificate(project_dir: Path, certificate: dict[str, Any]) -> Path:
    folder = project_dir / CERTIFICATE_DIR
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{certificate['request_id']}.json"
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(certificate, indent=1, sort_keys=True) + "\n")
    tmp.replace(path)
    return path


def complete_request(audit: AuditLog, actor: Actor, caller_id: str | None, certificate: dict[str, Any],
                     path: Path) -> AuditEntry:
    """Chain the certificate into the log: the ``erasure.completed`` entry that closes the request."""
    body = {k: v for k, v in certificate.items() if k != "signature"}
    return audit.append(actor, COMPLETED_ACTION, call_ids=certificate["call_ids"], caller=caller_id,
                        detail={"request_id": certificate["request_id"], "certificate": path.name,
                                "certificate_sha256": certificate_digest(body),
                                "signature": certificate["signature"]["value"]})


def certify(project_dir: Path, store: GovernedStore, request: ErasureRequest, journal: Journal,
            caller_id: str | None, withdrawal: dict[str, Any] | None = None) -> tuple[dict[str, Any], Path]:
    """The last step: the certificate of what the journal holds, signed, written and chained into the log."""
    body = certificate_body(store, request, journal, datetime.now(UTC), withdrawal)
    certificate = sign_certificate(store.audit, body)
    path = write_certificate(project_dir, certificate)
    complete_request(store.audit, store.actor, caller_id, certificate, path)
    return certificate, path


def verify_certificate(audit: AuditLog, document: Any) -> CertificateCheck:
    """Whether the certificate was signed with this installation's audit key and is the one the log closed
    its request with (any edit changes the digest the ``erasure.completed`` entry recorded)."""
    if not isinstance(document, dict) or not isinstance(document.get("signature"), dict):
        return CertificateCheck(False, False, False, None, None, "not an erasure certificate (no signature)")
    body = {k: v for k, v in document.items() if k != "signature"}
    request_id, digest = body.get("request_id"), certificate_digest(body)
    signed = audit.verify_signature(body, str(document["signature"].get("value", "")))
    logged = any(e.detail.get("request_id") == request_id and e.detail.get("certificate_sha256") == digest
                 for e in audit.entries(action=COMPLETED_ACTION))
    if not signed:
        reason = "the signature does not match: the certificate was changed, or signed with another key"
    elif not logged:
        reason = "signed, but no erasure.completed entry of the audit log records this certificate"
    else:
        reason = f"signature valid; recorded by the audit log for request {request_id}"
    return CertificateCheck(signed and logged, signed, logged, request_id, digest, reason)
