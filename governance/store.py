"""The governed store: the only code that reads or writes call data.

Six zones live under one folder: ``raw`` (calls as ingested, with audio), ``redacted``
(PII-free transcripts and audio facts), ``datasets`` (versioned training/evaluation sets, and what
models said on a version: :meth:`GovernedStore.write_evaluation`), ``quarantine`` (what failed a
check, with the reason), ``monitoring`` (numbers about production calls, per call and per day,
and alerts with the calls behind them: :meth:`GovernedStore.write_monitoring`) and ``labels`` (the weekly
QA review: samples, review tasks, what reviewers labelled: :meth:`GovernedStore.write_labels`). Every
operation is checked by :func:`governance.access.check` for the actor's role and purpose and written to the audit
trail, denied ones too. Writes are atomic (temp file + rename) so a killed run never leaves
half a record.

Raw call data is encrypted at rest (Fernet, :mod:`governance.crypto`): each raw call is a
folder with ``call.json.enc`` (the document), ``audio<suffix>.enc`` and a plaintext
``meta.json`` that holds no PII (dates, split, consent, caller pseudonym) so that retention and
erasure can find calls without decrypting anything. Quarantined payloads and files are
encrypted the same way (they may hold the raw PII that failed a check); their ``reason.json``
stays readable and names the failure, never the data.

The store hands out data, never paths: documents, bytes, and dataset versions as
``datasets.Dataset`` objects (:meth:`GovernedStore.open_dataset`), so callers do not depend on
where a zone lives. The exceptions are :meth:`GovernedStore.dvc_workspace`, the datasets zone's
folder for DVC, which versions whole dataset folders and can only work on files, and
:meth:`GovernedStore.review_media_root`, the redacted audio copies a review tool serves to reviewers.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import shutil
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import yaml

from governance import access
from governance.access import AccessDenied, Operation
from governance.audit import Actor, AuditLog
from governance.contract import SAFE_ID
from governance.crypto import Keyring, RawKeyError, pseudonym
from governance.policy import CALL_ZONES, Policy, load_policy

if TYPE_CHECKING:  # imported where rows are read: the store's other users do not pay for `datasets`
    from datasets import Dataset

ENCRYPTED = ".enc"
RAW_DOCUMENT = "call.json" + ENCRYPTED
RAW_META = "meta.json"
REASON = "reason.json"
DATASET_DATA = "data"  # a version's rows, as datasets.Dataset.save_to_disk writes them
DATASET_MANIFEST = "manifest.json"
EVALUATIONS = ".evaluations"  # beside a version's folder: what models said on it (write_evaluation)
#: What the monitoring zone keeps: per-call signals, per-day figures, alerts, calibrations of a champion.
MONITORING_KINDS = ("calls", "days", "alerts", "calibration")
#: What the labels zone keeps (see write_labels): a week's QA sample (<week>), where a call's review task lives in
#: Label Studio (<call_id>), a call's reconciled, redacted review (<call_id>).
SAMPLE_KIND, TASK_KIND, REVIEW_KIND = "samples", "tasks", "reviews"
LABEL_KINDS = (SAMPLE_KIND, TASK_KIND, REVIEW_KIND)
RECORD_KINDS = {"monitoring": MONITORING_KINDS, "labels": LABEL_KINDS}
REVIEW_MEDIA = "media"  # labels/media/<call_id>/audio.<suffix>: redacted audio the review tool serves
LOCK_FILE = ".ingest.lock"
_SUFFIX = re.compile(r"^\.[a-z0-9]{1,10}$")


def _atomic_write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _dump(document: Any) -> bytes:
    return json.dumps(document, indent=1, sort_keys=True, default=str).encode()


def _safe(value: str, what: str = "call id") -> str:
    """Ids become path parts: only SAFE_ID characters, so nothing can leave its zone."""
    if not SAFE_ID.match(value):
        raise ValueError(f"unsafe {what} rejected by the store (letters, digits, '_', '-', '.' only)")
    return value


# -- what the store hands out ---------------------------------------------------------------------
class EmptyDatasetError(ValueError):
    """A dataset version without rows: never published, never opened as data."""


class RawCall(NamedTuple):
    """A decrypted raw call: the document as ingested and its audio bytes."""

    document: dict[str, Any]
    audio: bytes


@dataclass(frozen=True)
class RawIndexEntry:
    """What the store knows about a raw call without decrypting it: no PII."""

    call_id: str
    started_at: str
    ingested_at: str
    split: str | None
    consent_training: bool
    caller_ref: str  # keyed pseudonym of the caller id, the same as redacted documents carry
    # which version of the call this is: the SHA-256 of its JSON and of its audio at ingest (None in
    # entries written before they were kept); a redacted document records the same two
    source_digest: str | None = None
    audio_sha256: str | None = None


@dataclass(frozen=True)
class QuarantinedItem:
    key: str  # "<stage>/<item>", the handle delete_quarantined(items=...) takes
    reason: dict[str, Any]
    payload: dict[str, Any] | None
    files: dict[str, bytes]


@dataclass(frozen=True)
class DatasetInfo:
    """A published dataset version's metadata (its manifest): no rows."""

    name: str
    digest: str
    rows: int | None
    call_ids: tuple[str, ...]
    manifest: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)  # as written at publish
    published: float = field(default=0.0, compare=False, hash=False)  # when (the manifest's modification time)


@dataclass(frozen=True)
class OpenedDataset:
    """A dataset version handed out by :meth:`GovernedStore.open_dataset`: its rows and its manifest."""

    name: str
    digest: str
    data: Dataset
    manifest: dict[str, Any]

    @property
    def call_ids(self) -> tuple[str, ...]:
        return tuple(self.manifest.get("call_ids", []))


@dataclass(frozen=True)
class CallerFootprint:
    """Where one caller's calls are, by zone (ids and quarantine keys only)."""

    caller_ref: str
    raw: tuple[str, ...]
    redacted: tuple[str, ...]
    quarantine: tuple[str, ...]  # quarantine item keys
    quarantine_call_ids: tuple[str, ...]
    monitoring: tuple[str, ...] = ()  # calls with a monitoring record (calls without consent exist only there)
    labels: tuple[str, ...] = ()  # calls with a QA review task or review

    @property
    def call_ids(self) -> tuple[str, ...]:
        return tuple(sorted(set(self.raw) | set(self.redacted) | set(self.quarantine_call_ids) | set(self.monitoring)
                            | set(self.labels)))


@dataclass
class Deletion:
    """What a delete removed: evidence for the erasure/retention record."""

    zone: str
    call_ids: list[str] = field(default_factory=list)  # calls whose data was removed
    missing: list[str] = field(default_factory=list)  # asked for, nothing there
    paths: list[str] = field(default_factory=list)  # files removed, relative to the store root
    bytes: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def files(self) -> int:
        return len(self.paths)


@dataclass
class RotationReport:
    files: int = 0
    bytes: int = 0
    call_ids: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)  # relative paths no configured key could decrypt
    primary: str = ""  # fingerprint of the key everything is now encrypted with


class GovernedStore:
    """Zones on a local folder, accessed on behalf of one :class:`Actor` under one :class:`Policy`.

    ``keyring`` defaults to ``<root>/../keys``: the layout of :class:`core.settings.Settings`
    (``<project_dir>/zones`` and ``<project_dir>/keys``); :func:`governance.session.open_store`
    always passes the configured one. ``policy`` defaults to the shipped policy.
    """

    def __init__(
        self,
        root: Path,
        audit: AuditLog,
        actor: Actor,
        *,
        policy: Policy | None = None,
        keyring: Keyring | None = None,
    ) -> None:
        self.root = root
        self.audit = audit
        self.actor = actor
        self.policy = policy or load_policy()
        self.keys = keyring or Keyring(root.parent / "keys")
        for zone in access.ZONES:
            (root / zone).mkdir(parents=True, exist_ok=True)
        (root / "state").mkdir(parents=True, exist_ok=True)

    def as_purpose(self, purpose: str) -> GovernedStore:
        """The same store, used for another purpose (each purpose is checked on its own)."""
        return GovernedStore(
            self.root, self.audit, self.actor.for_purpose(purpose), policy=self.policy, keyring=self.keys
        )

    def caller_ref(self, caller_id: str) -> str:
        """The caller pseudonym the store and redacted documents use (for erasure requests)."""
        return pseudonym(caller_id, self.keys.pseudonym_key)

    # -- access and audit -------------------------------------------------
    def _authorise(self, zone: str, operation: Operation) -> None:
        try:
            access.check(self.policy, self.actor, zone, operation)
        except AccessDenied as denied:
            # No call ids: a denial records the rule that refused, not what was asked for.
            self.audit.append(
                self.actor, f"{zone}.{operation}", zone=zone, outcome="denied", detail={"reason": str(denied)}
            )
            raise

    def check(self, zone: str, operation: Operation) -> None:
        """Refuse (audited) unless this actor may do ``operation`` on ``zone``: for work beside the zones'
        own methods that needs the same right (reading a call store is the right to write raw)."""
        self._authorise(zone, operation)

    def _record(self, zone: str, action: str, call_ids: Iterable[str], **detail: Any) -> None:
        ids = list(call_ids)
        if ids or detail:
            self.audit.append(self.actor, action, zone=zone, call_ids=ids, detail=detail)

    def _rel(self, path: Path) -> str:
        return path.relative_to(self.root).as_posix()

    # -- raw zone -----------------------------------------------------------
    def _raw_dir(self, call_id: str) -> Path:
        return self.root / "raw" / _safe(call_id)

    def write_raw(self, records: list[tuple[dict[str, Any], bytes, str]]) -> None:
        """Store calls as ingested, encrypted: (document, audio bytes, audio file suffix) each."""
        self._authorise("raw", "write")
        cipher = self.keys.raw
        for document, audio, suffix in records:
            folder = self._raw_dir(document["call_id"])
            audio_name = f"audio{suffix if _SUFFIX.match(suffix) else '.bin'}"
            _atomic_write(folder / (audio_name + ENCRYPTED), cipher.encrypt(audio))
            for stale in folder.glob(f"audio*{ENCRYPTED}"):
                if stale.name != audio_name + ENCRYPTED:
                    stale.unlink()
            _atomic_write(folder / RAW_META, _dump(asdict(self._index_entry(document))))
            # The document goes last: its presence is what makes the call part of the zone.
            _atomic_write(folder / RAW_DOCUMENT, cipher.encrypt(_dump({**document, "audio": audio_name})))
        self._record("raw", "raw.write", [d["call_id"] for d, _, _ in records], key=cipher.primary)

    def _index_entry(self, document: dict[str, Any]) -> RawIndexEntry:
        ingest_info = document.get("_ingest") or {}
        return RawIndexEntry(
            call_id=document["call_id"],
            started_at=str(document["started_at"]),
            ingested_at=str(ingest_info.get("ingested_at") or datetime.now(UTC).isoformat()),
            split=ingest_info.get("split"),
            consent_training=bool((document.get("consent") or {}).get("training")),
            caller_ref=self.caller_ref(str(document["caller_id"])),
            source_digest=ingest_info.get("source_digest"),
            audio_sha256=(ingest_info.get("audio") or {}).get("sha256"),
        )

    def raw_call_ids(self) -> set[str]:
        return {p.parent.name for p in (self.root / "raw").glob(f"*/{RAW_DOCUMENT}")}

    def raw_index(self) -> dict[str, RawIndexEntry]:
        """call_id -> non-PII facts of every raw call (for retention and erasure; no decryption)."""
        index = {}
        for path in sorted((self.root / "raw").glob(f"*/{RAW_META}")):
            entry = RawIndexEntry(**json.loads(path.read_text()))
            index[entry.call_id] = entry
        return index

    def read_raw(self, call_ids: Iterable[str]) -> Iterator[RawCall]:
        """Decrypted (document, audio bytes) per call; checked and audited once, when called."""
        ids = sorted(call_ids)
        self._authorise("raw", "read")
        if ids:
            self._record("raw", "raw.read", ids, content="documents+audio")
        return (RawCall(document, self._decrypt_audio(document)) for document in self._raw_documents(ids))

    def read_raw_documents(self, call_ids: Iterable[str]) -> Iterator[dict[str, Any]]:
        """Decrypted documents only, for steps that need no audio (redaction): less exposure, less work."""
        ids = sorted(call_ids)
        self._authorise("raw", "read")
        if ids:
            self._record("raw", "raw.read", ids, content="documents")
        return self._raw_documents(ids)

    def _raw_documents(self, ids: list[str]) -> Iterator[dict[str, Any]]:
        for call_id in ids:
            path = self._raw_dir(call_id) / RAW_DOCUMENT
            if not path.exists():
                raise FileNotFoundError(f"call {call_id} is not in the raw zone (removed by retention or erasure?)")
            yield json.loads(self.keys.raw.decrypt(path.read_bytes(), self._rel(path)))

    def _decrypt_audio(self, document: dict[str, Any]) -> bytes:
        path = self._raw_dir(document["call_id"]) / (Path(document["audio"]).name + ENCRYPTED)
        return self.keys.raw.decrypt(path.read_bytes(), self._rel(path))

    def delete_raw(self, call_ids: Iterable[str]) -> Deletion:
        """Remove raw calls (documents, audio and index entries) for good."""
        return self._delete_calls("raw", call_ids, self._raw_dir)

    # -- redacted zone --------------------------------------------------------
    def _redacted_path(self, call_id: str) -> Path:
        return self.root / "redacted" / f"{_safe(call_id)}.json"

    def write_redacted(self, documents: list[dict[str, Any]]) -> None:
        self._authorise("redacted", "write")
        for document in documents:
            _atomic_write(self._redacted_path(document["call_id"]), _dump(document))
        self._record("redacted", "redacted.write", [d["call_id"] for d in documents])

    def redacted_call_ids(self) -> set[str]:
        return {p.stem for p in (self.root / "redacted").glob("*.json")}

    def redacted_versions(self, call_ids: Iterable[str]) -> dict[str, str | None]:
        """Call id -> the digest of the raw document each redacted call was made from (ids and digests only,
        so nothing is handed out to audit): how a reader tells a call it read before from a newer version."""
        return {c: json.loads(path.read_text()).get("raw_digest") for c in sorted(set(call_ids))
                if (path := self._redacted_path(c)).exists()}

    def stale_redacted_call_ids(self) -> set[str]:
        """Redacted calls made from another version of the call than the raw zone holds now (a fixed
        transcript or corrected audio was ingested since): they must be redacted again. Only call ids
        leave the store, so nothing is handed out to audit."""
        index = self.raw_index()
        stale = set()
        for call_id in self.redacted_call_ids() & set(index):
            raw = index[call_id]
            if raw.source_digest is None:  # indexed before versions were kept: nothing to compare
                continue
            redacted = json.loads(self._redacted_path(call_id).read_text())
            made_from = (redacted.get("raw_digest"), (redacted.get("audio") or {}).get("sha256"))
            if made_from != (raw.source_digest, raw.audio_sha256):
                stale.add(call_id)
        return stale

    def read_redacted(self, call_ids: Iterable[str] | None = None) -> list[dict[str, Any]]:
        ids = sorted(self.redacted_call_ids() if call_ids is None else call_ids)
        self._authorise("redacted", "read")
        documents = [json.loads(self._redacted_path(c).read_text()) for c in ids]
        self._record("redacted", "redacted.read", ids)
        return documents

    def delete_redacted(self, call_ids: Iterable[str]) -> Deletion:
        """Remove redacted calls: the document and, with it, the call's redacted audio."""
        return self._delete_calls("redacted", call_ids, self._redacted_path, self._redacted_audio_dir)

    def _redacted_audio_dir(self, call_id: str) -> Path:
        """``redacted/audio/<call_id>/``: one folder per call, so a delete removes every format written."""
        return self.root / "redacted" / "audio" / _safe(call_id)

    def write_redacted_audio(self, call_id: str, data: bytes, suffix: str) -> str:
        """Store a call's PII-masked audio beside its redacted document; returns its zone-relative name.

        Not encrypted: it holds no PII once masked and verified (the raw audio stays encrypted in
        the raw zone, untouched). The redacted document must be written first, so retention and
        erasure, which find redacted calls by their documents, always find the audio too.
        """
        self._authorise("redacted", "write")
        if not _SUFFIX.match(suffix) or suffix == ".json":
            raise ValueError(f"audio suffix {suffix!r} rejected (a dot and 1-10 letters or digits, not .json)")
        if not self._redacted_path(call_id).exists():
            raise FileNotFoundError(f"call {call_id} has no redacted document; write it before its audio")
        folder = self._redacted_audio_dir(call_id)
        path = folder / f"audio{suffix}"
        _atomic_write(path, data)
        for stale in folder.glob("audio.*"):
            if stale != path:
                stale.unlink()
        self._record("redacted", "redacted.write", [call_id], content="audio", file=path.name, bytes=len(data))
        return self._rel(path)

    def read_redacted_audio(self, call_id: str) -> bytes:
        """A call's redacted audio bytes (checked and audited like redacted documents)."""
        self._authorise("redacted", "read")
        found = sorted(self._redacted_audio_dir(call_id).glob("audio.*"))
        if not found:
            raise FileNotFoundError(f"call {call_id} has no redacted audio")
        data = found[0].read_bytes()
        self._record("redacted", "redacted.read", [call_id], content="audio")
        return data

    # -- record zones: monitoring and labels ------------------------------------------------
    def _record_path(self, zone: str, kind: str, key: str) -> Path:
        kinds = RECORD_KINDS[zone]
        if kind not in kinds:
            raise ValueError(f"unknown {zone} record kind {kind!r}; kinds are {', '.join(kinds)}")
        return self.root / zone / kind / f"{_safe(key, 'record key')}.json"

    def _write_records(self, zone: str, kind: str, records: dict[str, dict[str, Any]]) -> None:
        self._authorise(zone, "write")
        ids: set[str] = set()
        for key, record in records.items():
            if not isinstance(record.get("call_ids"), list):
                raise ValueError(f"{zone} record {kind}/{key} lacks its call_ids list (erasure finds it by them)")
            _atomic_write(self._record_path(zone, kind, key), _dump(record))
            ids.update(record["call_ids"])
        self._record(zone, f"{zone}.write", sorted(ids), kind=kind, records=len(records))

    def _record_keys(self, zone: str, kind: str) -> list[str]:
        return sorted(p.stem for p in self._record_path(zone, kind, "x").parent.glob("*.json"))

    def _read_records(self, zone: str, kind: str, keys: Iterable[str] | None) -> dict[str, dict[str, Any]]:
        self._authorise(zone, "read")
        wanted = self._record_keys(zone, kind) if keys is None else sorted(set(keys))
        records = {key: json.loads(path.read_text()) for key in wanted
                   if (path := self._record_path(zone, kind, key)).exists()}
        ids = sorted({call_id for record in records.values() for call_id in record.get("call_ids", [])})
        self._record(zone, f"{zone}.read", ids, kind=kind, records=len(records))
        return records

    def _records_of_caller(self, zone: str, kind: str, caller_ref: str) -> list[str]:
        folder = self._record_path(zone, kind, "x").parent
        return sorted(p.stem for p in folder.glob("*.json")
                      if json.loads(p.read_text()).get("caller_ref") == caller_ref)

    def _delete_records(self, zone: str, call_ids: Iterable[str], per_call: str, shared: tuple[str, ...],
                        refitted: tuple[str, ...] = ()) -> tuple[Deletion, set[str]]:
        """Remove the calls' own records (kind ``per_call``, keyed by call id) and scrub them from the records of
        ``shared`` kinds: out of each one's ``call_ids`` and its ``calls`` map (the numbers, aggregates of many
        calls, stay). A record of a ``refitted`` kind built on any of them is removed whole (made again later).
        The caller audits the returned deletion once it has added what else it removed."""
        self._authorise(zone, "delete")
        doomed = set(call_ids)
        result = Deletion(zone)
        found: set[str] = set()
        for call_id in sorted(doomed):
            if self._remove(self._record_path(zone, per_call, call_id), result):
                found.add(call_id)
        scrubbed = 0
        for kind in (*shared, *refitted):
            for path in sorted(self._record_path(zone, kind, "x").parent.glob("*.json")):
                record = json.loads(path.read_text())
                hit = doomed & set(record.get("call_ids", []))
                if not hit:
                    continue
                found |= hit
                if kind in refitted:
                    self._remove(path, result)
                    continue
                record["call_ids"] = [c for c in record["call_ids"] if c not in doomed]
                if isinstance(record.get("calls"), dict):
                    record["calls"] = {c: v for c, v in record["calls"].items() if c not in doomed}
                _atomic_write(path, _dump(record))
                scrubbed += 1
        result.call_ids = sorted(found)
        result.missing = sorted(doomed - found)
        result.extra["records_scrubbed"] = scrubbed
        return result, found

    # -- monitoring zone ----------------------------------------------------------------
    def write_monitoring(self, kind: str, records: dict[str, dict[str, Any]]) -> None:
        """Keep monitoring records (key -> record); each names the calls it is about in ``call_ids``.

        Records hold numbers, slice names and entity types, never call text: the monitor computes
        them from redacted calls and from calls without training consent, which are kept nowhere else.
        """
        self._write_records("monitoring", kind, records)

    def monitoring_keys(self, kind: str) -> list[str]:
        """The keys of one kind of monitoring record (keys are dates, call ids, alert ids: no content)."""
        return self._record_keys("monitoring", kind)

    def read_monitoring(self, kind: str, keys: Iterable[str] | None = None) -> dict[str, dict[str, Any]]:
        """Monitoring records by key (all of the kind when ``keys`` is None); checked and audited."""
        return self._read_records("monitoring", kind, keys)

    def monitored_call_starts(self) -> dict[str, str]:
        """Call id -> ``started_at`` of every per-call monitoring record: what retention decides by (ids and
        times only, so nothing is handed out to audit)."""
        folder = self._record_path("monitoring", "calls", "x").parent
        return {p.stem: json.loads(p.read_text())["started_at"] for p in sorted(folder.glob("*.json"))}

    def monitored_calls_of(self, caller_ref: str) -> list[str]:
        """The calls of one caller (by pseudonym) that have a per-call monitoring record."""
        return self._records_of_caller("monitoring", "calls", caller_ref)

    def delete_monitoring(self, call_ids: Iterable[str]) -> Deletion:
        """Take calls out of the monitoring zone: their per-call records, their ids from every day's and
        alert's call list (the numbers, aggregates of many calls, stay), and calibrations built on them."""
        result, _ = self._delete_records("monitoring", call_ids, "calls", ("days", "alerts"), ("calibration",))
        self._audit_deletion(result)
        return result

    # -- labels zone: the QA review's samples, tasks, reviews and the redacted audio reviewers hear -----
    def write_labels(self, kind: str, records: dict[str, dict[str, Any]]) -> None:
        """Keep labels-zone records (key -> record, each with its ``call_ids``; per-call ones with ``caller_ref``).

        ``samples``: a week's QA sample (call ids, inclusion probabilities); ``tasks``: where a call's review
        lives in Label Studio; ``reviews``: a call's pulled review (redacted transcripts, intents, flags).
        """
        self._write_records("labels", kind, records)

    def label_keys(self, kind: str) -> list[str]:
        """The keys of one kind of labels record (weeks, call ids: no content)."""
        return self._record_keys("labels", kind)

    def read_labels(self, kind: str, keys: Iterable[str] | None = None) -> dict[str, dict[str, Any]]:
        """Labels records by key (all of the kind when ``keys`` is None); checked and audited."""
        return self._read_records("labels", kind, keys)

    def labelled_calls_of(self, caller_ref: str) -> list[str]:
        """The calls of one caller (by pseudonym) with a review task or a review."""
        return sorted(set(self._records_of_caller("labels", "tasks", caller_ref))
                      | set(self._records_of_caller("labels", "reviews", caller_ref)))

    def _review_media_path(self, call_id: str) -> Path:
        return self.root / "labels" / REVIEW_MEDIA / _safe(call_id)

    def review_media_root(self) -> Path:
        """The folder the review tool serves redacted audio from (Label Studio's local-files root).

        Like :meth:`dvc_workspace`, a path: the review tool reads files. Only copies made by
        :meth:`export_review_media` are there (redacted audio of sampled calls), deleted with the labels.
        """
        self._authorise("labels", "read")
        folder = self.root / "labels" / REVIEW_MEDIA
        folder.mkdir(parents=True, exist_ok=True)
        return folder

    def export_review_media(self, call_ids: Iterable[str]) -> dict[str, str]:
        """Copy calls' redacted audio where the review tool serves it: call id -> its path relative to
        :meth:`review_media_root`; a call without redacted audio is left out. Read as redacted audio and
        written as labels: both checked first and audited once for the batch."""
        self._authorise("redacted", "read")
        self._authorise("labels", "write")
        exported: dict[str, str] = {}
        size = 0
        for call_id in sorted(set(call_ids)):
            found = sorted(self._redacted_audio_dir(call_id).glob("audio.*"))
            if not found:
                continue
            data = found[0].read_bytes()
            path = self._review_media_path(call_id) / f"audio{found[0].suffix}"
            _atomic_write(path, data)
            exported[call_id] = path.relative_to(self.root / "labels" / REVIEW_MEDIA).as_posix()
            size += len(data)
        self._record("redacted", "redacted.read", sorted(exported), content="audio", purpose_of="review media")
        self._record("labels", "labels.write", sorted(exported), content="review-media", bytes=size)
        return exported

    def delete_labels(self, call_ids: Iterable[str]) -> Deletion:
        """Take calls out of the labels zone: their reviews, tasks and review audio, and their ids from every
        week's sample (the sample's design figures stay)."""
        result, found = self._delete_records("labels", call_ids, "reviews", ("samples",))
        for call_id in sorted(set(call_ids)):
            for companion in (self._record_path("labels", "tasks", call_id), self._review_media_path(call_id)):
                if self._remove(companion, result):
                    found.add(call_id)
        result.call_ids = sorted(found)
        result.missing = sorted(set(call_ids) - found)
        self._audit_deletion(result)
        return result

    @contextmanager
    def ingest_lock(self, timeout_s: float = 3600.0) -> Iterator[None]:
        """Hold the store-wide ingest lock: one ingest at a time (the retrain's, the monitor's) per store.

        A second flow waits (it is told so once after 5 s) rather than importing the same files twice.
        """
        import time

        path = self.root / LOCK_FILE
        with path.open("a+") as handle:
            started, told = time.monotonic(), False
            while True:
                try:
                    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    waited = time.monotonic() - started
                    if waited > timeout_s:
                        raise TimeoutError(f"another voiceloop flow has held {path} for {timeout_s:.0f} s") from None
                    if waited > 5 and not told:
                        print(f"waiting for another flow's ingest to finish ({path})", flush=True)
                        told = True
                    time.sleep(0.5)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    # -- quarantine -------------------------------------------------------------
    def quarantine(
        self,
        stage: str,
        item_id: str,
        reason: str,
        *,
        call_id: str | None = None,
        caller_ref: str | None = None,
        payload: dict[str, Any] | None = None,
        files: dict[str, bytes] | None = None,
    ) -> Path:
        """Keep what failed, with why; nothing that fails a check is ever dropped.

        The payload and files are encrypted like raw data; ``reason.json`` stays readable and
        carries the call id and caller pseudonym (taken from the raw index when not given) so
        erasure finds the item.
        """
        self._authorise("quarantine", "write")
        safe_item = "".join(ch if ch.isalnum() or ch in "_.-" else "_" for ch in item_id)[:150] or "item"
        folder = self.root / "quarantine" / stage / safe_item
        if caller_ref is None and call_id and SAFE_ID.match(call_id):
            meta = self._raw_dir(call_id) / RAW_META
            caller_ref = json.loads(meta.read_text())["caller_ref"] if meta.exists() else None
        record = {
            "stage": stage,
            "item": item_id if SAFE_ID.match(item_id) else safe_item,
            "call_id": call_id,
            "caller_ref": caller_ref,
            "reason": reason,
            "quarantined_at": datetime.now(UTC).isoformat(),
            "flow_run_id": self.actor.flow_run_id,
        }
        if payload is not None or files:
            cipher = self.keys.raw
            if payload is not None:
                _atomic_write(folder / ("payload.json" + ENCRYPTED), cipher.encrypt(_dump(payload)))
            for name, data in (files or {}).items():
                _atomic_write(folder / (Path(name).name + ENCRYPTED), cipher.encrypt(data))
        _atomic_write(folder / REASON, _dump(record))
        self.audit.append(
            self.actor,
            "quarantine.write",
            zone="quarantine",
            call_ids=[call_id] if call_id else [],
            detail={"stage": stage, "item": record["item"], "reason": reason},
        )
        return folder

    def _quarantine_items(self) -> list[tuple[str, Path, dict[str, Any]]]:
        """(key, folder, reason) of every quarantined item."""
        out = []
        for path in sorted((self.root / "quarantine").glob(f"*/*/{REASON}")):
            folder = path.parent
            out.append((f"{folder.parent.name}/{folder.name}", folder, json.loads(path.read_text())))
        return out

    def quarantined(self, stage: str | None = None) -> list[dict[str, Any]]:
        """Reasons only (no payloads): safe for summaries and the CLI."""
        pattern = f"{stage}/*/{REASON}" if stage else f"*/*/{REASON}"
        return [json.loads(p.read_text()) for p in sorted((self.root / "quarantine").glob(pattern))]

    def read_quarantined(self, key: str) -> QuarantinedItem:
        """One item with its decrypted payload and files (for QA review), audited."""
        self._authorise("quarantine", "read")
        matches = [(folder, reason) for k, folder, reason in self._quarantine_items() if k == key]
        if not matches:
            raise FileNotFoundError(f"no quarantined item {key!r}; list them with `voiceloop quarantine`")
        folder, reason = matches[0]
        cipher = self.keys.raw
        payload, files = None, {}
        for path in sorted(folder.glob(f"*{ENCRYPTED}")):
            data = cipher.decrypt(path.read_bytes(), self._rel(path))
            name = path.name[: -len(ENCRYPTED)]
            if name == "payload.json":
                payload = json.loads(data)
            else:
                files[name] = data
        call_id = reason.get("call_id")
        self._record("quarantine", "quarantine.read", [call_id] if call_id else [], item=key)
        return QuarantinedItem(key, reason, payload, files)

    def delete_quarantined(self, call_ids: Iterable[str] = (), *, items: Iterable[str] = ()) -> Deletion:
        """Remove every quarantined item whose reason names one of ``call_ids``, and the ``items`` keys."""
        self._authorise("quarantine", "delete")
        wanted_calls, wanted_items = set(call_ids), set(items)
        result = Deletion("quarantine")
        removed_calls: set[str] = set()
        removed_items: list[str] = []
        for key, folder, reason in self._quarantine_items():
            if key in wanted_items or reason.get("call_id") in wanted_calls:
                self._remove(folder, result)
                removed_items.append(key)
                if reason.get("call_id"):
                    removed_calls.add(reason["call_id"])
        result.call_ids = sorted(removed_calls)
        result.missing = sorted((wanted_calls - removed_calls) | (wanted_items - set(removed_items)))
        result.extra["items"] = removed_items
        self._audit_deletion(result)
        return result

    # -- datasets zone ------------------------------------------------------------
    def _dataset_dir(self, name: str, digest: str) -> Path:
        return self.root / "datasets" / _safe(name, "dataset name") / _safe(digest, "dataset digest")

    def write_dataset(self, name: str, digest: str, data: Dataset, call_ids: Iterable[str], **detail: Any) -> None:
        """Publish ``data`` atomically as version ``name@digest``, with a manifest of the calls it holds.

        The manifest is ``{name, digest, rows, call_ids, **detail}``; a version already published is
        left as it is (its digest names its content).
        """
        self._authorise("datasets", "write")
        if len(data) == 0:  # `datasets` cannot load an empty saved dataset back: never publish one
            raise EmptyDatasetError(f"dataset {name} has no rows; an empty version is never published")
        ids = list(call_ids)
        final = self._dataset_dir(name, digest)
        if not final.exists():
            tmp = final.with_name(f".{digest}.tmp-{os.getpid()}")
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.mkdir(parents=True)
            data.save_to_disk(str(tmp / DATASET_DATA))
            manifest = {"name": name, "digest": digest, "rows": len(data), "call_ids": ids, **detail}
            (tmp / DATASET_MANIFEST).write_text(json.dumps(manifest, indent=1))
            os.replace(tmp, final)
        self._record("datasets", "datasets.write", ids, dataset=name, digest=digest, rows=len(data))

    def open_dataset(self, name: str, digest: str) -> OpenedDataset:
        """A dataset version's rows and manifest for training/evaluation, checked and audited with its calls."""
        self._authorise("datasets", "read")
        folder = self._dataset_dir(name, digest)
        if not (folder / DATASET_MANIFEST).exists():
            raise FileNotFoundError(f"dataset {name}@{digest[:12]} is not in the store; run `voiceloop retrain`")
        from datasets import Dataset

        manifest = json.loads((folder / DATASET_MANIFEST).read_text())
        if not manifest.get("rows"):  # published by code before the guard in write_dataset
            raise EmptyDatasetError(f"dataset {name}@{digest[:12]} has no rows: nothing to train or evaluate on")
        self._record("datasets", "datasets.read", manifest.get("call_ids", []), dataset=name, digest=digest)
        return OpenedDataset(name, digest, Dataset.load_from_disk(str(folder / DATASET_DATA)), manifest)

    def _evaluations_dir(self, name: str, digest: str) -> Path:
        """Beside the version's folder, not in it: DVC versions that folder, and these are not the version."""
        folder = self._dataset_dir(name, digest)
        return folder.with_name(folder.name + EVALUATIONS)

    def _version_call_ids(self, name: str, digest: str) -> list[str]:
        manifest = self._dataset_dir(name, digest) / DATASET_MANIFEST
        if not manifest.exists():
            raise FileNotFoundError(f"dataset {name}@{digest[:12]} is not in the store; run `voiceloop retrain`")
        return list(json.loads(manifest.read_text()).get("call_ids", []))

    def write_evaluation(self, name: str, digest: str, key: str, record: dict[str, Any]) -> None:
        """Keep what a model said on version ``name@digest`` (its transcripts, its predictions) under ``key``.

        Model outputs on call text or audio are derived from those calls, so they live with the
        version: audited with its calls, and removed with it (:meth:`delete_dataset`), which is how an
        erasure that rebuilds a version without a caller removes them too. The gate keeps the champion's
        outputs on the golden set here instead of computing them again every retrain.
        """
        self._authorise("datasets", "write")
        ids = self._version_call_ids(name, digest)
        _atomic_write(self._evaluations_dir(name, digest) / f"{_safe(key, 'evaluation key')}.json", _dump(record))
        self._record("datasets", "datasets.write-evaluation", ids, dataset=name, digest=digest, evaluation=key)

    def read_evaluation(self, name: str, digest: str, key: str) -> dict[str, Any] | None:
        """What :meth:`write_evaluation` kept under ``key`` for ``name@digest`` (None: nothing yet)."""
        self._authorise("datasets", "read")
        path = self._evaluations_dir(name, digest) / f"{_safe(key, 'evaluation key')}.json"
        if not path.exists():
            return None
        record: dict[str, Any] = json.loads(path.read_text())
        self._record("datasets", "datasets.read-evaluation", self._version_call_ids(name, digest), dataset=name,
                     digest=digest, evaluation=key)
        return record

    def dvc_workspace(self, operation: Operation) -> Path:
        """The datasets zone's folder, for DVC alone (training/versioning.py): the one place the store hands
        out a path, because DVC versions whole dataset folders on disk. Checked like any access to the zone
        (``operation``: write to track and push versions, delete to forget them)."""
        self._authorise("datasets", operation)
        return self.root / "datasets"

    def list_datasets(self) -> list[DatasetInfo]:
        """Every published dataset version with the calls its manifest lists (metadata only)."""
        out = []
        for manifest_path in sorted((self.root / "datasets").glob(f"*/*/{DATASET_MANIFEST}")):
            folder = manifest_path.parent
            if folder.name.startswith(".") or folder.parent.name.startswith("."):
                continue
            manifest = json.loads(manifest_path.read_text())
            out.append(
                DatasetInfo(
                    name=folder.parent.name,
                    digest=folder.name,
                    rows=manifest.get("rows"),
                    call_ids=tuple(manifest.get("call_ids", [])),
                    manifest=manifest,
                    published=manifest_path.stat().st_mtime,
                )
            )
        return out

    def delete_dataset(self, name: str, digest: str) -> Deletion:
        """Remove a dataset version, its DVC pointer file and the models' outputs kept on it.

        DVC's cache and remote still hold a copy: ``extra["dvc_md5"]`` names it so the caller
        can remove it there too (``dvc gc`` or deleting that object).
        """
        self._authorise("datasets", "delete")
        folder = self._dataset_dir(name, digest)
        result = Deletion("datasets", extra={"dataset": name, "digest": digest})
        manifest = folder / DATASET_MANIFEST
        call_ids = json.loads(manifest.read_text()).get("call_ids", []) if manifest.exists() else []
        dvc_file = folder.with_name(folder.name + ".dvc")
        if dvc_file.exists():
            outs = (yaml.safe_load(dvc_file.read_text()) or {}).get("outs") or [{}]
            result.extra["dvc_md5"] = outs[0].get("md5")
            self._remove(dvc_file, result)
        if self._remove(folder, result):
            result.call_ids = sorted(call_ids)
        else:
            result.missing = [f"{name}@{digest}"]
        self._remove(self._evaluations_dir(name, digest), result)  # models' outputs on it go with it
        if folder.parent.exists() and not any(folder.parent.iterdir()):
            folder.parent.rmdir()
        self._audit_deletion(result)
        return result

    # -- retention / erasure support -------------------------------------------------
    def footprint_of_calls(self, call_ids: Iterable[str]) -> CallerFootprint:
        """Where these calls are, by zone, as :meth:`calls_of_caller` finds a caller's (same rights, audited)."""
        self._authorise_footprint()
        wanted = set(call_ids)
        return self._footprint("", sorted(wanted & self.raw_call_ids()), sorted(wanted & self.redacted_call_ids()),
                               lambda reason: reason.get("call_id") in wanted, "store.find_calls", {},
                               sorted(wanted & set(self.monitoring_keys("calls"))),
                               sorted(wanted & (set(self.label_keys("tasks")) | set(self.label_keys("reviews")))))

    def calls_of_caller(self, caller_ref: str) -> CallerFootprint:
        """Every call of one caller (by pseudonym) across raw, redacted and quarantine; the lookup is audited.

        A footprint is found in order to delete it (erasure, retention), so the actor must be allowed to
        delete from every zone it spans; others are refused (and the refusal audited) before anything is read.
        """
        self._authorise_footprint()
        raw = sorted(cid for cid, entry in self.raw_index().items() if entry.caller_ref == caller_ref)
        redacted = sorted(
            path.stem
            for path in (self.root / "redacted").glob("*.json")
            if json.loads(path.read_text()).get("caller_ref") == caller_ref
        )
        monitored = self.monitored_calls_of(caller_ref)
        labelled = self.labelled_calls_of(caller_ref)
        known = set(raw) | set(redacted) | set(monitored) | set(labelled)
        return self._footprint(caller_ref, raw, redacted,
                               lambda reason: reason.get("caller_ref") == caller_ref or reason.get("call_id") in known,
                               "store.find_caller", {"caller_ref": caller_ref}, monitored, labelled)

    def _authorise_footprint(self) -> None:
        for zone in CALL_ZONES:
            self._authorise(zone, "delete")

    def _footprint(self, caller_ref: str, raw: list[str], redacted: list[str],
                   quarantined: Callable[[dict[str, Any]], bool], action: str,
                   detail: dict[str, Any], monitored: list[str], labelled: list[str]) -> CallerFootprint:
        """The footprint of the calls found in raw and redacted and the quarantine items ``quarantined`` picks."""
        items, item_calls = [], set()
        for key, _folder, reason in self._quarantine_items():
            if quarantined(reason):
                items.append(key)
                if reason.get("call_id"):
                    item_calls.add(reason["call_id"])
        footprint = CallerFootprint(caller_ref, tuple(raw), tuple(redacted), tuple(items), tuple(sorted(item_calls)),
                                    tuple(monitored), tuple(labelled))
        self.audit.append(self.actor, action, call_ids=footprint.call_ids,
                          detail={**detail, "raw": len(raw), "redacted": len(redacted), "quarantine": len(items),
                                  "monitoring": len(monitored), "labels": len(labelled)})
        return footprint

    def _remove(self, path: Path, result: Deletion) -> bool:
        """Move ``path`` out of its zone at once (rename), then unlink its files; False if absent."""
        if not path.exists():
            return False
        files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
        for file in files:
            result.paths.append(self._rel(file))
            result.bytes += file.stat().st_size
        trash = self.root / ".trash"
        trash.mkdir(exist_ok=True)
        doomed = trash / uuid.uuid4().hex
        os.replace(path, doomed)
        self._empty_trash()
        return True

    def _empty_trash(self) -> None:
        """Unlink what earlier deletes moved aside (a killed delete leaves it here, not in a zone)."""
        for leftover in (self.root / ".trash").iterdir():
            if leftover.is_dir():
                shutil.rmtree(leftover)
            else:
                leftover.unlink()

    def _delete_calls(
        self,
        zone: str,
        call_ids: Iterable[str],
        location: Callable[[str], Path],
        *companions: Callable[[str], Path],
    ) -> Deletion:
        """Delete each call's file or folder (``location(call_id)``, then each ``companions(call_id)``), audited."""
        self._authorise(zone, "delete")
        result = Deletion(zone)
        for call_id in sorted(set(call_ids)):
            found = self._remove(location(call_id), result)
            for companion in companions:
                found = self._remove(companion(call_id), result) or found
            (result.call_ids if found else result.missing).append(call_id)
        self._audit_deletion(result)
        return result

    def _audit_deletion(self, result: Deletion) -> None:
        self.audit.append(
            self.actor,
            f"{result.zone}.delete",
            zone=result.zone,
            call_ids=result.call_ids,
            detail={"files": result.files, "bytes": result.bytes, "missing": result.missing, **result.extra},
        )

    # -- keys ---------------------------------------------------------------------------
    def rotate_raw_keys(self) -> RotationReport:
        """Re-encrypt every encrypted file (raw zone and quarantine) with the primary key, file by file.

        Each file is replaced atomically, so a killed rotation leaves every file readable with the
        configured keys and can simply be run again. Files no key can decrypt are reported in
        ``failed`` (and the audit entry's outcome is ``partial``): do not drop an old key until a
        rotation reports none.
        """
        self._authorise("raw", "write")
        self._authorise("quarantine", "write")
        self.keys.reload()
        cipher = self.keys.raw
        report = RotationReport(primary=cipher.primary)
        files = sorted((self.root / "raw").glob(f"*/*{ENCRYPTED}")) + sorted(
            (self.root / "quarantine").glob(f"*/*/*{ENCRYPTED}")
        )
        calls: set[str] = set()
        for path in files:
            relative = self._rel(path)
            try:
                rotated = cipher.rotate(path.read_bytes(), relative)
            except RawKeyError:
                report.failed.append(relative)
                continue
            _atomic_write(path, rotated)
            report.files += 1
            report.bytes += len(rotated)
            if relative.startswith("raw/"):
                calls.add(path.parent.name)
        report.call_ids = sorted(calls)
        self.audit.append(
            self.actor,
            "keys.rotate",
            zone="raw",
            call_ids=report.call_ids,
            outcome="partial" if report.failed else "ok",
            detail={"files": report.files, "failed": report.failed, "primary": cipher.primary,
                    "keys": len(cipher.fingerprints)},
        )
        return report

    # -- small state files (watermarks, stage markers) ------------------------------
    def read_state(self, name: str) -> dict[str, Any]:
        path = self.root / "state" / f"{name}.json"
        return json.loads(path.read_text()) if path.exists() else {}

    def write_state(self, name: str, state: dict[str, Any]) -> None:
        _atomic_write(self.root / "state" / f"{name}.json", _dump(state))

    def state_names(self, prefix: str) -> list[str]:
        """The names of the state files that start with ``prefix`` (e.g. one ingest state per call store)."""
        return sorted(path.stem for path in (self.root / "state").glob(f"{prefix}*.json"))

