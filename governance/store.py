"""The governed store: the only code that reads or writes call data.

Six zones live under one root, a local folder or any fsspec URL (``store.url``, e.g. an S3 bucket;
every file operation goes through :mod:`governance.zone_fs`): ``raw`` (calls as ingested, with audio), ``redacted``
(PII-free transcripts and audio facts), ``datasets`` (versioned training/evaluation sets, and what
models said on a version: :meth:`GovernedStore.write_evaluation`), ``quarantine`` (what failed a
check, with the reason), ``monitoring`` (numbers about production calls, per call and per day,
and alerts with the calls behind them: :meth:`GovernedStore.write_monitoring`) and ``labels`` (the weekly
QA review: samples, review tasks, what reviewers labelled: :meth:`GovernedStore.write_labels`). Every
operation is checked by :func:`governance.access.check` for the actor's role and purpose and written to the audit
trail, denied ones too. Writes are atomic (on disk temp file + rename; on object storage one PUT
per object, a folder's marker file last) so a killed run never leaves half a record. On a versioned
bucket a delete removes every version of the objects (an erasure leaves no copy behind).

Raw call data is encrypted on the client, before it reaches any disk or bucket (Fernet,
:mod:`governance.crypto`): each raw call is a
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
On a remote store both are local copies in the store's work area (``settings.zones_dir``): store
data, deleted with the objects they copy.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any, NamedTuple

import yaml

from governance import access
from governance.access import AccessDenied, Operation
from governance.audit import Actor, AuditLog
from governance.contract import SAFE_ID
from governance.crypto import Keyring, RawKeyError, pseudonym
from governance.ingest_lock import ingest_lock
from governance.policy import CALL_ZONES, Policy, load_policy
from governance.zone_fs import LocalZoneFS, ZoneFS

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
#: The files whose presence makes an item part of its zone: a delete removes them first.
PRESENCE_MARKERS = (RAW_DOCUMENT, DATASET_MANIFEST, REASON)
_SUFFIX = re.compile(r"^\.[a-z0-9]{1,10}$")


def _name(key: str) -> str:
    return PurePosixPath(key).name


def _stem(key: str) -> str:
    return PurePosixPath(key).stem


def _parent(key: str) -> str:
    return PurePosixPath(key).parent.as_posix()


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
    """Zones on a local folder or object storage, accessed on behalf of one :class:`Actor` under one :class:`Policy`.

    ``root`` is a local folder, or the :class:`~governance.zone_fs.ZoneFS` of any other location
    (:func:`governance.zone_fs.open_zone_fs`; :func:`governance.session.open_store` opens ``store.url``).
    ``keyring`` defaults to ``<root>/../keys`` for a folder: the layout of :class:`core.settings.Settings`
    (``<project_dir>/zones`` and ``<project_dir>/keys``); :func:`governance.session.open_store`
    always passes the configured one. ``policy`` defaults to the shipped policy.
    """

    def __init__(
        self,
        root: Path | ZoneFS,
        audit: AuditLog,
        actor: Actor,
        *,
        policy: Policy | None = None,
        keyring: Keyring | None = None,
    ) -> None:
        self.root = root  # what the store was opened on: pass it to open the same store again
        self.zones = root if isinstance(root, ZoneFS) else LocalZoneFS(root)
        self.audit = audit
        self.actor = actor
        self.policy = policy or load_policy()
        if keyring is None and self.zones.remote:
            raise ValueError(f"a store at {self.zones.location} needs its keyring (keys stay on the client)")
        self.keys = keyring or Keyring(Path(self.zones.location).parent / "keys")
        self.zones.prepare([*access.ZONES, "state"])

    def as_purpose(self, purpose: str) -> GovernedStore:
        """The same store, used for another purpose (each purpose is checked on its own)."""
        return GovernedStore(
            self.root, self.audit, self.actor.for_purpose(purpose), policy=self.policy, keyring=self.keys
        )

    @property
    def location(self) -> str:
        """Where the zones are (a folder or a URL): for messages and the status page."""
        return self.zones.location

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

    # -- raw zone -----------------------------------------------------------
    def _raw_dir(self, call_id: str) -> str:
        return f"raw/{_safe(call_id)}"

    def write_raw(self, records: list[tuple[dict[str, Any], bytes, str]]) -> None:
        """Store calls as ingested, encrypted here, before any byte leaves: (document, audio bytes, audio file
        suffix) each."""
        self._authorise("raw", "write")
        cipher = self.keys.raw
        for document, audio, suffix in records:
            folder = self._raw_dir(document["call_id"])
            audio_name = f"audio{suffix if _SUFFIX.match(suffix) else '.bin'}"
            self.zones.write(f"{folder}/{audio_name}{ENCRYPTED}", cipher.encrypt(audio))
            for stale in self.zones.glob(f"{folder}/audio*{ENCRYPTED}"):
                if _name(stale) != audio_name + ENCRYPTED:
                    self.zones.remove(stale)
            self.zones.write(f"{folder}/{RAW_META}", _dump(asdict(self._index_entry(document))))
            # The document goes last: its presence is what makes the call part of the zone.
            self.zones.write(f"{folder}/{RAW_DOCUMENT}", cipher.encrypt(_dump({**document, "audio": audio_name})))
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
        return {_name(_parent(key)) for key in self.zones.glob(f"raw/*/{RAW_DOCUMENT}")}

    def raw_index(self) -> dict[str, RawIndexEntry]:
        """call_id -> non-PII facts of every raw call (for retention and erasure; no decryption)."""
        index = {}
        metas = self.zones.read_many(self.zones.glob(f"raw/*/{RAW_META}"))
        for key in sorted(metas, key=lambda k: k.split("/")):
            entry = RawIndexEntry(**json.loads(metas[key]))
            index[entry.call_id] = entry
        return index

    def raw_entries(self, call_ids: Iterable[str]) -> dict[str, RawIndexEntry]:
        """The index entries of the given raw calls (those the raw zone holds): one read per call, so a step
        about a few calls costs the same in a store of any size (:meth:`raw_index` reads every call's)."""
        metas = self.zones.read_many(f"{self._raw_dir(call_id)}/{RAW_META}" for call_id in sorted(set(call_ids)))
        entries = (RawIndexEntry(**json.loads(data)) for data in metas.values())
        return {entry.call_id: entry for entry in sorted(entries, key=lambda e: e.call_id)}

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
            key = f"{self._raw_dir(call_id)}/{RAW_DOCUMENT}"
            try:
                data = self.zones.read(key)
            except FileNotFoundError:
                raise FileNotFoundError(f"call {call_id} is not in the raw zone (removed by retention or "
                                        "erasure?)") from None
            yield json.loads(self.keys.raw.decrypt(data, key))

    def _decrypt_audio(self, document: dict[str, Any]) -> bytes:
        key = f"{self._raw_dir(document['call_id'])}/{_name(document['audio'])}{ENCRYPTED}"
        return self.keys.raw.decrypt(self.zones.read(key), key)

    def delete_raw(self, call_ids: Iterable[str]) -> Deletion:
        """Remove raw calls (documents, audio and index entries) for good."""
        return self._delete_calls("raw", call_ids, self._raw_dir)

    # -- redacted zone --------------------------------------------------------
    def _redacted_path(self, call_id: str) -> str:
        return f"redacted/{_safe(call_id)}.json"

    def write_redacted(self, documents: list[dict[str, Any]]) -> None:
        self._authorise("redacted", "write")
        for document in documents:
            self.zones.write(self._redacted_path(document["call_id"]), _dump(document))
        self._record("redacted", "redacted.write", [d["call_id"] for d in documents])

    def redacted_call_ids(self) -> set[str]:
        return {_stem(key) for key in self.zones.glob("redacted/*.json")}

    def _redacted_documents(self, call_ids: Iterable[str]) -> dict[str, dict[str, Any]]:
        """Call id -> redacted document of each of ``call_ids`` in the zone (for the store's own bookkeeping)."""
        found = self.zones.read_many(self._redacted_path(c) for c in sorted(set(call_ids)))
        return {_stem(key): json.loads(data) for key, data in found.items()}

    def redacted_versions(self, call_ids: Iterable[str]) -> dict[str, str | None]:
        """Call id -> the digest of the raw document each redacted call was made from (ids and digests only,
        so nothing is handed out to audit): how a reader tells a call it read before from a newer version."""
        return {c: document.get("raw_digest") for c, document in sorted(self._redacted_documents(call_ids).items())}

    def stale_redacted_call_ids(self) -> set[str]:
        """Redacted calls made from another version of the call than the raw zone holds now (a fixed
        transcript or corrected audio was ingested since): they must be redacted again. Only call ids
        leave the store, so nothing is handed out to audit."""
        index = self.raw_index()
        stale = set()
        compared = [c for c in self.redacted_call_ids() & set(index)
                    if index[c].source_digest is not None]  # indexed before versions were kept: nothing to compare
        for call_id, redacted in self._redacted_documents(compared).items():
            raw = index[call_id]
            made_from = (redacted.get("raw_digest"), (redacted.get("audio") or {}).get("sha256"))
            if made_from != (raw.source_digest, raw.audio_sha256):
                stale.add(call_id)
        return stale

    def read_redacted(self, call_ids: Iterable[str] | None = None) -> list[dict[str, Any]]:
        ids = sorted(self.redacted_call_ids() if call_ids is None else call_ids)
        self._authorise("redacted", "read")
        found = self._redacted_documents(ids)
        if missing := [c for c in ids if c not in found]:
            raise FileNotFoundError(f"{len(missing)} call(s) not in the redacted zone, e.g. {missing[0]}")
        documents = [found[c] for c in ids]
        self._record("redacted", "redacted.read", ids)
        return documents

    def delete_redacted(self, call_ids: Iterable[str]) -> Deletion:
        """Remove redacted calls: the document and, with it, the call's redacted audio."""
        return self._delete_calls("redacted", call_ids, self._redacted_path, self._redacted_audio_dir)

    def _redacted_audio_dir(self, call_id: str) -> str:
        """``redacted/audio/<call_id>/``: one folder per call, so a delete removes every format written."""
        return f"redacted/audio/{_safe(call_id)}"

    def write_redacted_audio(self, call_id: str, data: bytes, suffix: str) -> str:
        """Store a call's PII-masked audio beside its redacted document; returns its zone-relative name.

        Not encrypted: it holds no PII once masked and verified (the raw audio stays encrypted in
        the raw zone, untouched). The redacted document must be written first, so retention and
        erasure, which find redacted calls by their documents, always find the audio too.
        """
        self._authorise("redacted", "write")
        if not _SUFFIX.match(suffix) or suffix == ".json":
            raise ValueError(f"audio suffix {suffix!r} rejected (a dot and 1-10 letters or digits, not .json)")
        if not self.zones.exists(self._redacted_path(call_id)):
            raise FileNotFoundError(f"call {call_id} has no redacted document; write it before its audio")
        folder = self._redacted_audio_dir(call_id)
        key = f"{folder}/audio{suffix}"
        self.zones.write(key, data)
        for stale in self.zones.glob(f"{folder}/audio.*"):
            if stale != key:
                self.zones.remove(stale)
        self._record("redacted", "redacted.write", [call_id], content="audio", file=_name(key), bytes=len(data))
        return key

    def _redacted_audio_key(self, call_id: str) -> str | None:
        found = self.zones.glob(f"{self._redacted_audio_dir(call_id)}/audio.*")
        return found[0] if found else None

    def read_redacted_audio(self, call_id: str) -> bytes:
        """A call's redacted audio bytes (checked and audited like redacted documents)."""
        self._authorise("redacted", "read")
        key = self._redacted_audio_key(call_id)
        if key is None:
            raise FileNotFoundError(f"call {call_id} has no redacted audio")
        data = self.zones.read(key)
        self._record("redacted", "redacted.read", [call_id], content="audio")
        return data

    # -- record zones: monitoring and labels ------------------------------------------------
    def _record_folder(self, zone: str, kind: str) -> str:
        kinds = RECORD_KINDS[zone]
        if kind not in kinds:
            raise ValueError(f"unknown {zone} record kind {kind!r}; kinds are {', '.join(kinds)}")
        return f"{zone}/{kind}"

    def _record_path(self, zone: str, kind: str, key: str) -> str:
        return f"{self._record_folder(zone, kind)}/{_safe(key, 'record key')}.json"

    def _all_records(self, zone: str, kind: str) -> dict[str, dict[str, Any]]:
        """Zone key -> record of every record of one kind, in key order (for the store's own bookkeeping)."""
        found = self.zones.read_many(self.zones.glob(f"{self._record_folder(zone, kind)}/*.json"))
        return {key: json.loads(found[key]) for key in sorted(found, key=lambda k: k.split("/"))}

    def _write_records(self, zone: str, kind: str, records: dict[str, dict[str, Any]]) -> None:
        self._authorise(zone, "write")
        ids: set[str] = set()
        for key, record in records.items():
            if not isinstance(record.get("call_ids"), list):
                raise ValueError(f"{zone} record {kind}/{key} lacks its call_ids list (erasure finds it by them)")
            self.zones.write(self._record_path(zone, kind, key), _dump(record))
            ids.update(record["call_ids"])
        self._record(zone, f"{zone}.write", sorted(ids), kind=kind, records=len(records))

    def _record_keys(self, zone: str, kind: str) -> list[str]:
        return sorted(_stem(key) for key in self.zones.glob(f"{self._record_folder(zone, kind)}/*.json"))

    def _read_records(self, zone: str, kind: str, keys: Iterable[str] | None) -> dict[str, dict[str, Any]]:
        self._authorise(zone, "read")
        wanted = self._record_keys(zone, kind) if keys is None else sorted(set(keys))
        found = self.zones.read_many(self._record_path(zone, kind, key) for key in wanted)
        records = {key: json.loads(found[path]) for key in wanted
                   if (path := self._record_path(zone, kind, key)) in found}
        ids = sorted({call_id for record in records.values() for call_id in record.get("call_ids", [])})
        self._record(zone, f"{zone}.read", ids, kind=kind, records=len(records))
        return records

    def _records_of_caller(self, zone: str, kind: str, caller_ref: str) -> list[str]:
        return sorted(_stem(key) for key, record in self._all_records(zone, kind).items()
                      if record.get("caller_ref") == caller_ref)

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
            for path, record in self._all_records(zone, kind).items():
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
                self.zones.replace(path, _dump(record))  # no earlier version keeps the erased ids
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
        return {_stem(key): record["started_at"] for key, record in self._all_records("monitoring", "calls").items()}

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

    def _review_media_path(self, call_id: str) -> str:
        return f"labels/{REVIEW_MEDIA}/{_safe(call_id)}"

    def review_media_root(self) -> Path:
        """The folder the review tool serves redacted audio from (Label Studio's local-files root).

        Like :meth:`dvc_workspace`, a path: the review tool reads files. Only copies made by
        :meth:`export_review_media` are there (redacted audio of sampled calls), deleted with the labels.
        On a remote store it is the local copy of the labels zone's media, in the store's work area.
        """
        self._authorise("labels", "read")
        if self.zones.remote:
            self._drop_stale_copies()
        folder = self.zones.local_path(f"labels/{REVIEW_MEDIA}")
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
            source = self._redacted_audio_key(call_id)
            if source is None:
                continue
            data = self.zones.read(source)
            name = f"audio{PurePosixPath(source).suffix}"
            self.zones.write(f"{self._review_media_path(call_id)}/{name}", data, keep_local=True)  # the tool reads it
            exported[call_id] = f"{call_id}/{name}"
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

    def ingest_lock(self, timeout_s: float = 3600.0) -> AbstractContextManager[None]:
        """The store-wide ingest lock: one ingest at a time (the retrain's, the monitor's) per store, across the
        machines that share it (governance/ingest_lock.py). A second flow waits (it is told so once after 5 s)
        rather than importing the same files twice."""
        return ingest_lock(self.zones.local_path(LOCK_FILE), self.audit, self.zones.location, timeout_s)

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
    ) -> str:
        """Keep what failed, with why; nothing that fails a check is ever dropped. Returns the item's key
        (``<stage>/<item>``, what :meth:`read_quarantined` and :meth:`delete_quarantined` take).

        The payload and files are encrypted like raw data; ``reason.json`` stays readable and
        carries the call id and caller pseudonym (taken from the raw index when not given) so
        erasure finds the item.
        """
        self._authorise("quarantine", "write")
        safe_item = "".join(ch if ch.isalnum() or ch in "_.-" else "_" for ch in item_id)[:150] or "item"
        folder = f"quarantine/{_safe(stage, 'quarantine stage')}/{safe_item}"
        if caller_ref is None and call_id and SAFE_ID.match(call_id):
            meta = self.zones.read_many([f"{self._raw_dir(call_id)}/{RAW_META}"])
            caller_ref = next((json.loads(data)["caller_ref"] for data in meta.values()), None)
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
                self.zones.write(f"{folder}/payload.json{ENCRYPTED}", cipher.encrypt(_dump(payload)))
            for name, data in (files or {}).items():
                self.zones.write(f"{folder}/{Path(name).name}{ENCRYPTED}", cipher.encrypt(data))
        self.zones.write(f"{folder}/{REASON}", _dump(record))
        self.audit.append(
            self.actor,
            "quarantine.write",
            zone="quarantine",
            call_ids=[call_id] if call_id else [],
            detail={"stage": stage, "item": record["item"], "reason": reason},
        )
        return folder.removeprefix("quarantine/")

    def _quarantine_reasons(self, stage: str = "*") -> dict[str, dict[str, Any]]:
        """Item folder key -> reason of every quarantined item (of one stage), in key order."""
        found = self.zones.read_many(self.zones.glob(f"quarantine/{stage}/*/{REASON}"))
        return {_parent(key): json.loads(found[key]) for key in sorted(found, key=lambda k: k.split("/"))}

    def _quarantine_items(self) -> list[tuple[str, str, dict[str, Any]]]:
        """(key, folder, reason) of every quarantined item."""
        return [(folder.removeprefix("quarantine/"), folder, reason)
                for folder, reason in self._quarantine_reasons().items()]

    def quarantined(self, stage: str | None = None) -> list[dict[str, Any]]:
        """Reasons only (no payloads): safe for summaries and the CLI."""
        return list(self._quarantine_reasons(_safe(stage, "quarantine stage") if stage else "*").values())

    def read_quarantined(self, key: str) -> QuarantinedItem:
        """One item with its decrypted payload and files (for QA review), audited."""
        self._authorise("quarantine", "read")
        matches = [(folder, reason) for k, folder, reason in self._quarantine_items() if k == key]
        if not matches:
            raise FileNotFoundError(f"no quarantined item {key!r}; list them with `voiceloop quarantine`")
        folder, reason = matches[0]
        cipher = self.keys.raw
        payload, files = None, {}
        for path in self.zones.glob(f"{folder}/*{ENCRYPTED}"):
            data = cipher.decrypt(self.zones.read(path), path)
            name = _name(path)[: -len(ENCRYPTED)]
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
    def _dataset_dir(self, name: str, digest: str) -> str:
        return f"datasets/{_safe(name, 'dataset name')}/{_safe(digest, 'dataset digest')}"

    def write_dataset(self, name: str, digest: str, data: Dataset, call_ids: Iterable[str], **detail: Any) -> None:
        """Publish ``data`` atomically as version ``name@digest``, with a manifest of the calls it holds.

        The manifest is ``{name, digest, rows, call_ids, **detail}``; a version already published is
        left as it is (its digest names its content).
        """
        self._authorise("datasets", "write")
        if len(data) == 0:  # `datasets` cannot load an empty saved dataset back: never publish one
            raise EmptyDatasetError(f"dataset {name} has no rows; an empty version is never published")
        ids = list(call_ids)
        folder = self._dataset_dir(name, digest)
        if not self.zones.exists(f"{folder}/{DATASET_MANIFEST}"):
            manifest = {"name": name, "digest": digest, "rows": len(data), "call_ids": ids, **detail}

            def build(tmp: Path) -> None:  # on disk first: `datasets` saves to files (a remote store uploads them)
                data.save_to_disk(str(tmp / DATASET_DATA))
                (tmp / DATASET_MANIFEST).write_text(json.dumps(manifest, indent=1))

            self.zones.publish_folder(folder, build, last=DATASET_MANIFEST)
        self._record("datasets", "datasets.write", ids, dataset=name, digest=digest, rows=len(data))

    def open_dataset(self, name: str, digest: str) -> OpenedDataset:
        """A dataset version's rows and manifest for training/evaluation, checked and audited with its calls."""
        self._authorise("datasets", "read")
        folder = self._dataset_dir(name, digest)
        manifest = self._manifest(name, digest)
        from datasets import Dataset

        if not manifest.get("rows"):  # published by code before the guard in write_dataset
            raise EmptyDatasetError(f"dataset {name}@{digest[:12]} has no rows: nothing to train or evaluate on")
        self._record("datasets", "datasets.read", manifest.get("call_ids", []), dataset=name, digest=digest)
        # `datasets` maps files: a remote store's version is read from its local copy (made once, kept with it)
        if self.zones.remote:
            self._drop_stale_copies()
        rows = Dataset.load_from_disk(str(self.zones.fetch(folder) / DATASET_DATA))
        return OpenedDataset(name, digest, rows, manifest)

    def _manifest(self, name: str, digest: str) -> dict[str, Any]:
        key = f"{self._dataset_dir(name, digest)}/{DATASET_MANIFEST}"
        try:
            manifest: dict[str, Any] = json.loads(self.zones.read(key))
        except FileNotFoundError:
            missing = f"dataset {name}@{digest[:12]} is not in the store; run `voiceloop retrain`"
            raise FileNotFoundError(missing) from None
        return manifest

    def _evaluations_dir(self, name: str, digest: str) -> str:
        """Beside the version's folder, not in it: DVC versions that folder, and these are not the version."""
        return self._dataset_dir(name, digest) + EVALUATIONS

    def _version_call_ids(self, name: str, digest: str) -> list[str]:
        return list(self._manifest(name, digest).get("call_ids", []))

    def write_evaluation(self, name: str, digest: str, key: str, record: dict[str, Any]) -> None:
        """Keep what a model said on version ``name@digest`` (its transcripts, its predictions) under ``key``.

        Model outputs on call text or audio are derived from those calls, so they live with the
        version: audited with its calls, and removed with it (:meth:`delete_dataset`), which is how an
        erasure that rebuilds a version without a caller removes them too. The gate keeps the champion's
        outputs on the golden set here instead of computing them again every retrain.
        """
        self._authorise("datasets", "write")
        ids = self._version_call_ids(name, digest)
        self.zones.write(f"{self._evaluations_dir(name, digest)}/{_safe(key, 'evaluation key')}.json", _dump(record))
        self._record("datasets", "datasets.write-evaluation", ids, dataset=name, digest=digest, evaluation=key)

    def read_evaluation(self, name: str, digest: str, key: str) -> dict[str, Any] | None:
        """What :meth:`write_evaluation` kept under ``key`` for ``name@digest`` (None: nothing yet)."""
        self._authorise("datasets", "read")
        path = f"{self._evaluations_dir(name, digest)}/{_safe(key, 'evaluation key')}.json"
        try:
            record: dict[str, Any] = json.loads(self.zones.read(path))
        except FileNotFoundError:
            return None
        self._record("datasets", "datasets.read-evaluation", self._version_call_ids(name, digest), dataset=name,
                     digest=digest, evaluation=key)
        return record

    def dvc_workspace(self, operation: Operation) -> Path:
        """The datasets zone's folder, for DVC alone (training/versioning.py): the one place the store hands
        out a path, because DVC versions whole dataset folders on disk. Checked like any access to the zone
        (``operation``: write to track and push versions, delete to forget them).

        On a remote store (DVC 3 tracks no cloud outputs) it is a local staging copy of the zone in the store's
        work area: every version's DVC pointer (the zone keeps them too: :meth:`keep_dvc_pointer`) and copies
        of the versions DVC tracked (:meth:`stage_for_dvc`); a copy of a version the zone no longer holds
        (erased on another machine) is deleted here before DVC sees it."""
        self._authorise("datasets", operation)
        if self.zones.remote:
            for pointer in self.zones.glob("datasets/*/*.dvc"):
                self.zones.fetch(pointer)
            self._drop_stale_copies()
        return self.zones.local_path("datasets")

    def _drop_stale_copies(self) -> None:
        """Delete this machine's copies of dataset versions (and their pointers) and review audio that the zone no
        longer holds: erased or expired from another machine. Local copies of a remote store are store data."""
        versions = {_parent(key) for key in self.zones.glob(f"datasets/*/*/{DATASET_MANIFEST}")}
        pointers = set(self.zones.glob("datasets/*/*.dvc")) | {f"{version}.dvc" for version in versions}
        self.zones.prune_local("datasets/*/*", keep=versions | pointers)
        media = {_parent(key) for key in self.zones.glob(f"labels/{REVIEW_MEDIA}/*/*")}
        self.zones.prune_local(f"labels/{REVIEW_MEDIA}/*", keep=media)

    def stage_for_dvc(self, name: str, digest: str) -> Path:
        """Version ``name@digest``'s folder in :meth:`dvc_workspace`, for DVC to add (on a remote store, its local
        copy, downloaded once)."""
        self._authorise("datasets", "write")
        return self.zones.fetch(self._dataset_dir(name, digest))

    def keep_dvc_pointer(self, name: str, digest: str) -> None:
        """Keep the ``.dvc`` pointer DVC wrote beside ``name@digest`` in the zone (on a local store it already is):
        erasure reads it to purge the version's objects from DVC's cache and remote, from any machine."""
        self._authorise("datasets", "write")
        self.zones.upload(self._dataset_dir(name, digest) + ".dvc")

    def list_datasets(self) -> list[DatasetInfo]:
        """Every published dataset version with the calls its manifest lists (metadata only)."""
        out = []
        manifests = self.zones.read_many(self.zones.glob(f"datasets/*/*/{DATASET_MANIFEST}"))
        for key in sorted(manifests, key=lambda k: k.split("/")):
            _zone, name, digest, _file = key.split("/")
            if name.startswith(".") or digest.startswith("."):
                continue
            manifest = json.loads(manifests[key])
            out.append(
                DatasetInfo(
                    name=name,
                    digest=digest,
                    rows=manifest.get("rows"),
                    call_ids=tuple(manifest.get("call_ids", [])),
                    manifest=manifest,
                    published=self.zones.modified(key),
                )
            )
        return out

    def _dvc_md5(self, pointer: str) -> str | None:
        """The object a version's ``.dvc`` pointer names (the zone's pointer, else the work area's copy, left by a
        run killed before it kept the pointer in the zone)."""
        found = self.zones.read_many([pointer])
        if pointer in found:
            text = found[pointer].decode()
        elif (copy := self.zones.local_path(pointer)).is_file():
            text = copy.read_text()
        else:
            return None
        outs = (yaml.safe_load(text) or {}).get("outs") or [{}]
        md5 = outs[0].get("md5")
        return str(md5) if md5 else None

    def delete_dataset(self, name: str, digest: str) -> Deletion:
        """Remove a dataset version, its DVC pointer file and the models' outputs kept on it.

        DVC's cache and remote still hold a copy: ``extra["dvc_md5"]`` names it so the caller
        can remove it there too (``dvc gc`` or deleting that object).
        """
        self._authorise("datasets", "delete")
        folder = self._dataset_dir(name, digest)
        result = Deletion("datasets", extra={"dataset": name, "digest": digest})
        manifest = self.zones.read_many([f"{folder}/{DATASET_MANIFEST}"])
        call_ids = [c for data in manifest.values() for c in json.loads(data).get("call_ids", [])]
        dvc_file = f"{folder}.dvc"
        md5 = self._dvc_md5(dvc_file)
        if md5 is not None:
            result.extra["dvc_md5"] = md5
        self._remove(dvc_file, result)
        if self._remove(folder, result):
            result.call_ids = sorted(call_ids)
        else:
            result.missing = [f"{name}@{digest}"]
        self._remove(self._evaluations_dir(name, digest), result)  # models' outputs on it go with it
        self.zones.drop_if_empty(_parent(folder))
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
        redacted = sorted(call_id for call_id, document in self._redacted_documents(self.redacted_call_ids()).items()
                          if document.get("caller_ref") == caller_ref)
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

    def _remove(self, key: str, result: Deletion) -> bool:
        """Delete the file or folder ``key`` for good, its presence marker first (on disk: out of its zone at once
        by a rename; on a versioned bucket: every version; a remote store's local copy too); False if absent."""
        removed = self.zones.remove(key, first=PRESENCE_MARKERS)
        for stored in removed:
            result.paths.append(stored.key)
            result.bytes += stored.size
        return bool(removed)

    def _delete_calls(
        self,
        zone: str,
        call_ids: Iterable[str],
        location: Callable[[str], str],
        *companions: Callable[[str], str],
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
        files = self.zones.glob(f"raw/*/*{ENCRYPTED}") + self.zones.glob(f"quarantine/*/*/*{ENCRYPTED}")
        calls: set[str] = set()
        for key in files:
            try:
                rotated = cipher.rotate(self.zones.read(key), key)
            except RawKeyError:
                report.failed.append(key)
                continue
            self.zones.replace(key, rotated)  # no earlier version under a retired key stays behind
            report.files += 1
            report.bytes += len(rotated)
            if key.startswith("raw/"):
                calls.add(_name(_parent(key)))
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
        found = self.zones.read_many([f"state/{name}.json"])
        return json.loads(found[f"state/{name}.json"]) if found else {}

    def write_state(self, name: str, state: dict[str, Any]) -> None:
        self.zones.replace(f"state/{name}.json", _dump(state))  # what a state forgets (erased calls) stays forgotten

    def state_names(self, prefix: str) -> list[str]:
        """The names of the state files that start with ``prefix`` (e.g. one ingest state per call store)."""
        return sorted(_stem(key) for key in self.zones.glob(f"state/{prefix}*.json"))

