"""Pull production calls from a call store into the raw zone, incrementally and idempotently.

A run costs what changed, not the store's history: it lists only the parts of the store that can hold
new or changed calls (:mod:`governance.ingest_listing`: the top level, and of a date-partitioned store
the date folders within ``sources.lateness_days`` of the watermark, plus the old ones the sweep is due
to list again), and reads only the files whose listing signature (ETag, or size and time:
:mod:`governance.change_signals`) differs from the one recorded when the file was last handled
(:mod:`governance.ingest_ledger`: per file, that signature and the digest of the JSON). A file is read
when it is new (late arrivals included: they are new ids, whatever their ``started_at``) or either
file changed (a fixed, previously quarantined call; a corrected transcript or recording: the new version
replaces the raw copy, and redaction redoes the call); a file that was touched but not changed is read
once and counted as already seen. Every bad call is quarantined with a reason
that names the file and the fix, and the rest of the batch goes on; the quarantined original is
encrypted like raw data and tagged with the call id and caller pseudonym it claims, so an
erasure request finds it too.

A call the raw or redacted zone holds whose document now says ``consent.training: false`` is a
withdrawal (``governance/consent.py``): the raw copy is updated to the new document and the
withdrawal recorded for the retrain to carry out. Calls of a caller who withdrew consent are
treated as calls without consent until the caller consents again.

Calls without training consent are not imported, but service-quality monitoring covers them: their
file names wait in the state (``monitor_pending``: names and digests, nothing of the content) until the
monitor reads them, in memory, with :func:`read_monitor_pending` and keeps only numbers about them.

A bad optional field (a bot turn's ``bot`` log, the ``handoff`` packet) is quarantined on its own with
its reason (stage ``ingest-field``) and the call is imported without it.

Erased calls are tombstoned (state ``erased``: call id -> erasure request id) and never read from
the call store again, whatever the call store still holds; they are counted as ``erased``.
"""

from __future__ import annotations

import hashlib
import io
import json
import posixpath
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cached_property
from typing import Any

import fsspec
import soundfile as sf

from core.audio import decode_audio, mono, rms_dbfs
from core.settings import SourcesConfig
from governance.change_signals import MISSING, signature
from governance.consent import ConsentLedger, withdraw_calls
from governance.contract import SAFE_ID, ContractError, FieldProblem, Turn, parse_call
from governance.ingest_ledger import INGEST_STATE, MONITOR_PENDING, IngestLedger, Signature, forget_calls
from governance.ingest_listing import Listing, ListingWindow, list_store
from governance.store import GovernedStore, RawIndexEntry

BATCH = 200
ERASED_STATE = "erased"


@dataclass
class IngestReport:
    source: str
    split: str
    listed: int = 0
    already_seen: int = 0
    ingested: list[str] = field(default_factory=list)
    no_consent: list[str] = field(default_factory=list)  # their own document's or their caller's withdrawal
    withdrawn: list[str] = field(default_factory=list)  # held calls whose document now withdraws consent
    erased: list[str] = field(default_factory=list)  # tombstoned by an erasure: never imported again
    quarantined: list[tuple[str, str]] = field(default_factory=list)  # (file, reason)
    fields_quarantined: list[tuple[str, str]] = field(default_factory=list)  # (file, reason): the call went on
    watermark: str | None = None
    documents_read: int = 0  # call JSONs read from the store: the new and changed ones (and touched ones, once)
    listing_seconds: float = 0.0  # how long listing the store took
    folders_listed: int = 0  # date folders listed this run
    folders_skipped: int = 0  # date folders not listed: older than the lateness window, not due for the sweep


class BadCall(Exception):
    """A call that breaks the contract in a way only its files can show."""


def _audio_facts(data: bytes, where: str) -> dict[str, Any]:
    if not data:
        raise BadCall(f"{where}: audio file is empty; re-export the recording")
    try:
        info = sf.info(io.BytesIO(data))
    except Exception as error:  # soundfile raises several types for bad bytes
        raise BadCall(f"{where}: audio is unreadable ({type(error).__name__}); expected WAV/FLAC/OGG") from None
    if info.frames == 0 or info.samplerate <= 0:
        raise BadCall(f"{where}: audio holds no samples; re-export the recording")
    return {
        "sample_rate": int(info.samplerate),
        "channels": int(info.channels),
        "duration_s": round(info.frames / info.samplerate, 3),
        "sha256": hashlib.sha256(data).hexdigest(),
    }


def _customer_turn_loudness(audio: bytes, turns: list[Turn]) -> dict[str, float]:
    """Each customer turn's loudness on the raw recording (turn index -> RMS dBFS): measured here, before
    redaction silences PII, so validation can tell a turn with text over silence from a turn made of PII."""
    decoded = decode_audio(audio)
    samples, rate = mono(decoded.samples), decoded.sample_rate
    return {str(index): rms_dbfs(samples[int(turn.start_s * rate):int(turn.end_s * rate)])
            for index, turn in enumerate(turns) if turn.speaker == "customer"}


def _load_call(fs: Any, root: str, path: str, raw_bytes: bytes,
               split: str) -> tuple[dict[str, Any], bytes, str, list[FieldProblem]]:
    """Parse and check the call at ``path`` (in the store) and read its audio; reasons name ``path``."""
    try:
        document = json.loads(raw_bytes)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        where = getattr(error, "pos", "?")
        raise BadCall(f"{path}: malformed JSON ({error.__class__.__name__} at byte {where})") from None
    try:
        record = parse_call(document, path)
    except ContractError as error:
        raise BadCall(str(error)) from None
    if posixpath.splitext(posixpath.basename(path))[0] != record.call_id:
        raise BadCall(f"{path}: file name must be '<call_id>.json' (call_id is {record.call_id!r})")
    audio_path = posixpath.normpath(posixpath.join(root, posixpath.dirname(path), record.audio))
    if not audio_path.startswith(root.rstrip("/") + "/"):
        raise BadCall(f"{path}: audio path leaves the call store; keep audio inside it")
    if not fs.exists(audio_path):
        raise BadCall(f"{path}: audio file {record.audio!r} is missing from the call store")
    audio = fs.cat_file(audio_path)
    facts = _audio_facts(audio, path)
    for index, turn in enumerate(record.turns):
        if turn.end_s > facts["duration_s"] + 0.5:
            raise BadCall(
                f"{path}: turn {index} ends at {turn.end_s:.2f} s but the audio lasts {facts['duration_s']:.2f} s"
            )
    facts["customer_turn_dbfs"] = _customer_turn_loudness(audio, record.turns)
    document["_ingest"] = {
        "split": split,
        "source_file": path,
        "source_digest": _sha256(raw_bytes),
        "ingested_at": datetime.now(UTC).isoformat(),
        "audio": facts,
    }
    suffix = posixpath.splitext(record.audio)[1].lower() or ".wav"
    return document, audio, suffix, record.problems


def ingest_sources(store: GovernedStore, sources: SourcesConfig,
                   progress: Callable[[int, int], None] | None = None) -> dict[str, IngestReport]:
    """The ingest step: the call store as the train split, then the golden store as the golden split
    (``progress(done, total)`` is told the files of each store as they are considered)."""
    window = ListingWindow.of(sources)
    return {split: ingest(store, url, split, progress, window=window)
            for split, url in (("train", sources.call_store), ("golden", sources.golden_store))}


class _Zones:
    """What the governed store holds, looked up only once a run reads a document: a run that finds
    nothing changed reads nothing of the store either."""

    def __init__(self, store: GovernedStore) -> None:
        self.store = store

    def held(self, call_id: str) -> RawIndexEntry | None:
        """The raw zone's entry for a call: one small read, whatever the size of the zone."""
        return self.store.raw_entries([call_id]).get(call_id)

    @cached_property
    def redacted(self) -> set[str]:
        return self.store.redacted_call_ids()

    @cached_property
    def consent(self) -> ConsentLedger:
        return ConsentLedger.load(self.store)


def ingest(
    store: GovernedStore,
    source_url: str,
    split: str,
    progress: Callable[[int, int], None] | None = None,
    *,
    window: ListingWindow | None = None,
    now: datetime | None = None,
) -> IngestReport:
    """Ingest new and changed calls from ``source_url`` (a folder or fsspec URL).

    ``window`` says which date folders are listed again (default: the ``sources`` defaults); ``now`` is
    the sweep's clock (default: the current time).
    """
    fs, root = fsspec.core.url_to_fs(source_url)
    root = root.rstrip("/")
    report = IngestReport(source=source_url, split=split)
    if not fs.exists(root):
        raise FileNotFoundError(f"call store {source_url!r} does not exist; set sources.call_store in params.yaml")
    ledger = IngestLedger(store, f"{INGEST_STATE}{split}")
    watermark: str | None = ledger.main.get("watermark")
    monitor_pending: dict[str, str] = ledger.main.get(MONITOR_PENDING, {})  # unconsented files the monitor has not read
    erased = erased_calls(store)
    zones = _Zones(store)
    began = time.perf_counter()
    listing = list_store(fs, root, watermark, ledger.main.get("folders", {}),
                         window or ListingWindow.of(SourcesConfig()), now or datetime.now(UTC))
    report.listing_seconds = round(time.perf_counter() - began, 3)
    report.listed = len(listing.documents)
    report.folders_listed, report.folders_skipped = len(listing.listed_folders), len(listing.skipped_folders)

    pending: list[tuple[dict[str, Any], bytes, str, str, Signature]] = []  # (document, audio, suffix, shard, mark)

    def flush() -> None:
        if pending:
            store.write_raw([(document, audio, suffix) for document, audio, suffix, _, _ in pending])
            for document, _, _, shard, mark in pending:
                ledger.record(shard, document["_ingest"]["source_file"], document["_ingest"]["source_digest"], mark)
            ledger.save(watermark=watermark, monitor_pending=monitor_pending)
            pending.clear()

    for done, (path, shard) in enumerate(listing.documents, start=1):
        if progress:
            progress(done, len(listing.documents))
        call_id = posixpath.splitext(posixpath.basename(path))[0]
        if call_id in erased:
            report.erased.append(call_id)
            continue
        json_signature = listing.files.get(path)
        recorded = ledger.signature(shard, path)
        if recorded is not None and _unchanged(
                recorded, [json_signature, recorded[1], _audio_signature(fs, root, listing, recorded[1])]):
            report.already_seen += 1  # the listing says neither file changed: not read
            continue
        json_bytes = fs.cat_file(f"{root}/{path}")
        report.documents_read += 1
        digest = _sha256(json_bytes)
        audio_path = _audio_path(path, json_bytes)
        mark: Signature = [json_signature, audio_path, _audio_signature(fs, root, listing, audio_path)]
        if ledger.digest(shard, path) == digest and _same_audio(fs, root, ledger, shard, path, json_bytes, mark):
            report.already_seen += 1  # touched, not changed
            ledger.record(shard, path, digest, mark)
            continue
        try:
            document, audio, suffix, problems = _load_call(fs, root, path, json_bytes, split)
        except BadCall as bad:
            reason = str(bad)
            claimed_call, caller_id = _claimed_identity(json_bytes)
            store.quarantine(
                "ingest",
                path,
                reason,
                call_id=claimed_call,
                caller_ref=store.caller_ref(caller_id) if caller_id else None,
                files={posixpath.basename(path): json_bytes},
            )
            report.quarantined.append((path, reason))
            ledger.record(shard, path, digest, mark)
            continue
        consented = document["consent"]["training"] and not zones.consent.caller_withdrawn(
            store.caller_ref(document["caller_id"]))
        for problem in problems:  # a call stored nowhere keeps no value in quarantine either: the reason alone
            store.quarantine("ingest-field", f"{path}.{problem.field}", problem.reason, call_id=document["call_id"],
                             caller_ref=store.caller_ref(document["caller_id"]),
                             payload={"field": problem.field, "value": problem.value} if consented else None)
            report.fields_quarantined.append((path, problem.reason))
        started = document["started_at"]
        watermark = max(watermark or started, started)
        held = zones.held(document["call_id"])
        if held is not None and (held.source_digest, held.audio_sha256) == (
                document["_ingest"]["source_digest"], document["_ingest"]["audio"]["sha256"]):
            report.already_seen += 1  # the files were touched, not changed: the raw zone holds this version
            ledger.record(shard, path, digest, mark)
            continue
        call_id = document["call_id"]
        if not document["consent"]["training"] and (held is not None or call_id in zones.redacted):
            report.withdrawn.append(call_id)  # consent withdrawn after ingest: recorded below
            if held is not None:  # the raw copy follows its document (raw past retention is not restored)
                pending.append((document, audio, suffix, shard, mark))
            else:
                ledger.record(shard, path, digest, mark)
            continue
        if not consented:
            report.no_consent.append(call_id)
            ledger.record(shard, path, digest, mark)
            monitor_pending[path] = digest
            continue
        pending.append((document, audio, suffix, shard, mark))
        report.ingested.append(document["call_id"])
        if len(pending) >= BATCH:
            flush()
    flush()
    withdraw_calls(store, report.withdrawn)
    if report.no_consent:
        store.audit.append(
            store.actor, "ingest.no_consent", call_ids=report.no_consent, detail={"count": len(report.no_consent)}
        )
    if report.erased:
        store.audit.append(store.actor, "ingest.erased", call_ids=report.erased,
                           detail={"count": len(report.erased), "skipped": "tombstoned by an erasure request"})
    # the folders' listing times go last: a run that stopped early lists them again next time
    ledger.save(watermark=watermark, monitor_pending=monitor_pending, folders=listing.folders)
    report.watermark = watermark
    return report


def read_monitor_pending(store: GovernedStore, source_url: str, split: str = "train",
                         limit: int | None = None) -> tuple[list[dict[str, Any]], list[str]]:
    """The calls without training consent that the monitor has not seen yet, read from the call store in
    memory (documents with ``_ingest`` facts and ``_audio`` bytes): they are never written to a zone.

    ``store`` acts for ingest (it reads the call store, as ingest does); each read is audited with the call
    ids. Also returns the file names considered: files that changed since (the next ingest judges the new
    version), vanished or turned bad are skipped; :func:`monitor_pending_done` clears them all.
    """
    store.check("raw", "write")  # reading the call store is ingest's work: only ingest writes what it reads
    fs, root = fsspec.core.url_to_fs(source_url)
    root = root.rstrip("/")
    pending = sorted(store.read_state(f"{INGEST_STATE}{split}").get(MONITOR_PENDING, {}).items())[:limit]
    documents: list[dict[str, Any]] = []
    for name, digest in pending:
        path = f"{root}/{name}"
        if not fs.exists(path):
            continue
        data = fs.cat_file(path)
        if _sha256(data) != digest:
            continue  # changed since: the next ingest judges the new version
        try:
            document, audio, _suffix, _problems = _load_call(fs, root, name, data, split)
        except BadCall:
            continue
        document["_audio"] = audio
        documents.append(document)
    if documents:
        store.audit.append(store.actor, "ingest.read-unconsented-for-monitoring",
                           call_ids=[d["call_id"] for d in documents],
                           detail={"count": len(documents), "kept": "numbers only, in the monitoring zone"})
    return documents, [name for name, _ in pending]


def monitor_pending_done(store: GovernedStore, names: list[str], split: str = "train") -> None:
    """Forget pending unconsented files the monitor has handled (or found gone)."""
    state_name = f"{INGEST_STATE}{split}"
    state = store.read_state(state_name)
    pending = {k: v for k, v in state.get(MONITOR_PENDING, {}).items() if k not in set(names)}
    store.write_state(state_name, {**state, MONITOR_PENDING: pending})


def erased_calls(store: GovernedStore) -> dict[str, str]:
    """Tombstones: call id -> the erasure request that removed it."""
    return dict(store.read_state(ERASED_STATE).get("calls", {}))


def tombstone(store: GovernedStore, call_ids: list[str], request_id: str) -> int:
    """Record erased calls so ingest never brings them back; returns how many tombstones exist.

    Written before any data is deleted, so a killed erasure cannot leave a call that the next
    ingest re-imports. The erased files' records (digests, listing signatures, pending monitoring) are
    dropped from every ingest state at the same time, date-folder shards included: a digest of an
    erased document is a fingerprint of it, its path names the call, and the tombstone now does
    their job.
    """
    calls = erased_calls(store)
    calls.update({call_id: calls.get(call_id, request_id) for call_id in call_ids})
    store.write_state(ERASED_STATE, {"calls": dict(sorted(calls.items()))})
    forget_calls(store, call_ids)
    return len(calls)


def _claimed_identity(data: bytes) -> tuple[str | None, str | None]:
    """The call id and caller id a bad document claims, if it can be read that far.

    Quarantined originals hold the caller's data, so erasure must find them by caller; a document
    too broken to name its caller is found by its file name only.
    """
    try:
        document = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError):
        return None, None
    if not isinstance(document, dict):
        return None, None
    call_id, caller_id = document.get("call_id"), document.get("caller_id")
    return (
        call_id if isinstance(call_id, str) and SAFE_ID.match(call_id) else None,
        caller_id if isinstance(caller_id, str) and caller_id else None,
    )


def _audio_path(path: str, json_bytes: bytes) -> str | None:
    """Where in the store the document at ``path`` says its recording is, without checking it (None when
    it cannot say: the contract check reports why)."""
    try:
        audio = json.loads(json_bytes).get("audio")
    except (UnicodeDecodeError, json.JSONDecodeError, AttributeError):
        return None
    if not isinstance(audio, str) or not audio or audio.startswith("/"):
        return None
    joined = posixpath.normpath(posixpath.join(posixpath.dirname(path), audio))
    return None if joined == ".." or joined.startswith("../") else joined


def _audio_signature(fs: Any, root: str, listing: Listing, audio_path: str | None) -> str | None:
    """What the listing says of a recording; one outside what this run listed is asked for on its own."""
    if audio_path is None:
        return None
    if audio_path in listing.files:
        return listing.files[audio_path]
    try:
        return signature(fs.info(f"{root}/{audio_path}"))
    except FileNotFoundError:
        return MISSING


def _same_audio(fs: Any, root: str, ledger: IngestLedger, shard: str, path: str, json_bytes: bytes,
                mark: Signature) -> bool:
    """Whether the recording of a document whose JSON is unchanged is the one handled last time."""
    recorded = ledger.signature(shard, path)
    if recorded is not None:
        return _same_recording(recorded, mark)
    legacy = ledger.legacy_audio(shard, path)  # handled by code before signatures: compare as it did
    return legacy is None or legacy == _audio_identity(fs, root, path, json_bytes)


def _unchanged(recorded: Signature, now: Signature) -> bool:
    """Whether the listing says the same of a document and its recording as when it was handled.

    Signatures are ``[json signature, audio path, audio signature]``; a file whose listing gives no
    signature (None) may have changed, so it never counts as unchanged.
    """
    return now[0] is not None and recorded[0] == now[0] and _same_recording(recorded, now)


def _same_recording(recorded: Signature, now: Signature) -> bool:
    """Whether the document names the same recording, and the listing says the same of it, as last time."""
    return recorded[1:] == now[1:] and (now[1] is None or now[2] is not None)


def _audio_identity(fs: Any, root: str, path: str, json_bytes: bytes) -> str:
    """The recording's identity as code before listing signatures recorded it (``fs.ukey``)."""
    audio_path = _audio_path(path, json_bytes)
    full = f"{root}/{audio_path}"
    if audio_path is None or not fs.exists(full):
        return ""
    return str(fs.ukey(full))


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
