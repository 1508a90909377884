"""Pull production calls from a call store into the raw zone, incrementally and idempotently.

The store's state keeps a watermark (the latest ``started_at`` seen) and the set of call
files already handled, each with the digest of its JSON and its audio file's identity (size and
time, or ETag, as the file system reports them). A file is read again only when it is new (late
arrivals included: they are new ids, whatever their ``started_at``) or either changed (a fixed,
previously quarantined call; a corrected transcript or recording: the new version replaces the
raw copy, and redaction redoes the call). Every bad call is quarantined with a reason
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
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import fsspec
import soundfile as sf

from core.audio import decode_audio, mono, rms_dbfs
from core.settings import SourcesConfig
from governance.consent import ConsentLedger, withdraw_calls
from governance.contract import SAFE_ID, ContractError, FieldProblem, Turn, parse_call
from governance.store import GovernedStore

BATCH = 200
ERASED_STATE = "erased"
_INGEST_STATE = "ingest-"


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


def _load_call(fs: Any, root: str, json_path: str, raw_bytes: bytes,
               split: str) -> tuple[dict[str, Any], bytes, str, list[FieldProblem]]:
    name = posixpath.basename(json_path)
    try:
        document = json.loads(raw_bytes)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        where = getattr(error, "pos", "?")
        raise BadCall(f"{name}: malformed JSON ({error.__class__.__name__} at byte {where})") from None
    try:
        record = parse_call(document, name)
    except ContractError as error:
        raise BadCall(str(error)) from None
    if posixpath.splitext(name)[0] != record.call_id:
        raise BadCall(f"{name}: file name must be '<call_id>.json' (call_id is {record.call_id!r})")
    audio_path = posixpath.normpath(posixpath.join(posixpath.dirname(json_path), record.audio))
    if not audio_path.startswith(root.rstrip("/") + "/"):
        raise BadCall(f"{name}: audio path leaves the call store; keep audio inside it")
    if not fs.exists(audio_path):
        raise BadCall(f"{name}: audio file {record.audio!r} is missing from the call store")
    audio = fs.cat_file(audio_path)
    facts = _audio_facts(audio, name)
    for index, turn in enumerate(record.turns):
        if turn.end_s > facts["duration_s"] + 0.5:
            raise BadCall(
                f"{name}: turn {index} ends at {turn.end_s:.2f} s but the audio lasts {facts['duration_s']:.2f} s"
            )
    facts["customer_turn_dbfs"] = _customer_turn_loudness(audio, record.turns)
    document["_ingest"] = {
        "split": split,
        "source_file": name,
        "source_digest": _sha256(raw_bytes),
        "ingested_at": datetime.now(UTC).isoformat(),
        "audio": facts,
    }
    suffix = posixpath.splitext(record.audio)[1].lower() or ".wav"
    return document, audio, suffix, record.problems


def ingest_sources(store: GovernedStore, sources: SourcesConfig,
                   progress: Callable[[int, int], None] | None = None) -> dict[str, IngestReport]:
    """The ingest step: the call store as the train split, then the golden store as the golden split
    (``progress(done, total)`` is told the files of each store as they are read)."""
    return {split: ingest(store, url, split, progress)
            for split, url in (("train", sources.call_store), ("golden", sources.golden_store))}


def ingest(
    store: GovernedStore,
    source_url: str,
    split: str,
    progress: Callable[[int, int], None] | None = None,
) -> IngestReport:
    """Ingest new and changed calls from ``source_url`` (a folder or fsspec URL)."""
    fs, root = fsspec.core.url_to_fs(source_url)
    root = root.rstrip("/")
    report = IngestReport(source=source_url, split=split)
    if not fs.exists(root):
        raise FileNotFoundError(f"call store {source_url!r} does not exist; set sources.call_store in params.yaml")
    state_name = f"ingest-{split}"
    state = store.read_state(state_name)
    seen: dict[str, str] = state.get("seen", {})
    audio_seen: dict[str, str] = state.get("audio_seen", {})  # file name -> its audio file's identity
    watermark: str | None = state.get("watermark")
    monitor_pending: dict[str, str] = state.get("monitor_pending", {})  # unconsented files the monitor has not read
    erased = erased_calls(store)
    stored = store.raw_index()
    redacted = store.redacted_call_ids()
    consent = ConsentLedger.load(store)
    listing = sorted(p for p in fs.find(root, maxdepth=1) if p.endswith(".json"))
    report.listed = len(listing)

    pending: list[tuple[dict[str, Any], bytes, str]] = []

    def flush() -> None:
        if pending:
            store.write_raw(pending)
            for document, _, _ in pending:
                seen[document["_ingest"]["source_file"]] = document["_ingest"]["source_digest"]
            store.write_state(state_name, {**state, "seen": seen, "audio_seen": audio_seen, "watermark": watermark,
                                           "monitor_pending": monitor_pending})
            pending.clear()

    for done, json_path in enumerate(listing, start=1):
        name = posixpath.basename(json_path)
        if progress:
            progress(done, len(listing))
        if posixpath.splitext(name)[0] in erased:
            report.erased.append(posixpath.splitext(name)[0])
            continue
        json_bytes = fs.cat_file(json_path)
        audio_key = _audio_identity(fs, root, json_path, json_bytes)
        # audio_seen lacks files first seen by older code: their audio is noted now, not read again
        if seen.get(name) == _sha256(json_bytes) and audio_seen.setdefault(name, audio_key) == audio_key:
            report.already_seen += 1
            continue
        audio_seen[name] = audio_key
        try:
            document, audio, suffix, problems = _load_call(fs, root, json_path, json_bytes, split)
        except BadCall as bad:
            reason = str(bad)
            call_id, caller_id = _claimed_identity(json_bytes)
            store.quarantine(
                "ingest",
                name,
                reason,
                call_id=call_id,
                caller_ref=store.caller_ref(caller_id) if caller_id else None,
                files={name: json_bytes},
            )
            report.quarantined.append((name, reason))
            seen[name] = _sha256(json_bytes)
            continue
        consented = document["consent"]["training"] and not consent.caller_withdrawn(
            store.caller_ref(document["caller_id"]))
        for problem in problems:  # a call stored nowhere keeps no value in quarantine either: the reason alone
            store.quarantine("ingest-field", f"{name}.{problem.field}", problem.reason, call_id=document["call_id"],
                             caller_ref=store.caller_ref(document["caller_id"]),
                             payload={"field": problem.field, "value": problem.value} if consented else None)
            report.fields_quarantined.append((name, problem.reason))
        started = document["started_at"]
        watermark = max(watermark or started, started)
        held = stored.get(document["call_id"])
        if held is not None and (held.source_digest, held.audio_sha256) == (
                document["_ingest"]["source_digest"], document["_ingest"]["audio"]["sha256"]):
            report.already_seen += 1  # the files were touched, not changed: the raw zone holds this version
            seen[name] = document["_ingest"]["source_digest"]
            continue
        call_id = document["call_id"]
        if not document["consent"]["training"] and (held is not None or call_id in redacted):
            report.withdrawn.append(call_id)  # consent withdrawn after ingest: recorded below
            if held is not None:  # the raw copy follows its document (raw past retention is not restored)
                pending.append((document, audio, suffix))
            else:
                seen[name] = document["_ingest"]["source_digest"]
            continue
        if not consented:
            report.no_consent.append(call_id)
            seen[name] = monitor_pending[name] = document["_ingest"]["source_digest"]
            continue
        pending.append((document, audio, suffix))
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
    store.write_state(state_name, {**state, "seen": seen, "audio_seen": audio_seen, "watermark": watermark,
                                   "monitor_pending": monitor_pending})
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
    pending = sorted(store.read_state(f"{_INGEST_STATE}{split}").get("monitor_pending", {}).items())[:limit]
    documents: list[dict[str, Any]] = []
    for name, digest in pending:
        path = f"{root}/{name}"
        if not fs.exists(path):
            continue
        data = fs.cat_file(path)
        if _sha256(data) != digest:
            continue  # changed since: the next ingest judges the new version
        try:
            document, audio, _suffix, _problems = _load_call(fs, root, path, data, split)
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
    state_name = f"{_INGEST_STATE}{split}"
    state = store.read_state(state_name)
    pending = {k: v for k, v in state.get("monitor_pending", {}).items() if k not in set(names)}
    store.write_state(state_name, {**state, "monitor_pending": pending})


def erased_calls(store: GovernedStore) -> dict[str, str]:
    """Tombstones: call id -> the erasure request that removed it."""
    return dict(store.read_state(ERASED_STATE).get("calls", {}))


def tombstone(store: GovernedStore, call_ids: list[str], request_id: str) -> int:
    """Record erased calls so ingest never brings them back; returns how many tombstones exist.

    Written before any data is deleted, so a killed erasure cannot leave a call that the next
    ingest re-imports. The seen-digests of the erased files are dropped from the ingest states at
    the same time: a digest of an erased document is a fingerprint of it, and the tombstone now
    does its job.
    """
    calls = erased_calls(store)
    calls.update({call_id: calls.get(call_id, request_id) for call_id in call_ids})
    store.write_state(ERASED_STATE, {"calls": dict(sorted(calls.items()))})
    names = {f"{call_id}.json" for call_id in call_ids}
    for state_name in store.state_names(_INGEST_STATE):
        state = store.read_state(state_name)
        kept = {key: {k: v for k, v in state.get(key, {}).items() if k not in names}
                for key in ("seen", "audio_seen", "monitor_pending")}
        if kept != {key: state.get(key, {}) for key in kept}:
            store.write_state(state_name, {**state, **kept})
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


def _audio_identity(fs: Any, root: str, json_path: str, json_bytes: bytes) -> str:
    """What the file system says about a call's audio file (size, modification time or ETag), without
    reading it: a corrected recording under an unchanged JSON is noticed by this changing."""
    try:
        audio = json.loads(json_bytes).get("audio")
    except (UnicodeDecodeError, json.JSONDecodeError, AttributeError):
        return ""
    if not isinstance(audio, str):
        return ""
    path = posixpath.normpath(posixpath.join(posixpath.dirname(json_path), audio))
    if not path.startswith(root.rstrip("/") + "/") or not fs.exists(path):
        return ""
    return str(fs.ukey(path))


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
