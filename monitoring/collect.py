"""Bring new production calls under watch: ingest, redact, read each call's signals, keep them as numbers.

Holds the store-wide ingest lock (shared with the retrain's ingest) while it imports and redacts, so
two flows never import one file twice. Consented calls go the retrain's way (raw -> redacted zone)
and are read back from the redacted zone; calls without training consent are read from the call
store in memory (``governance.ingest.read_monitor_pending``), redacted in memory and forgotten: only
their monitoring record stays. Turns no bot log covers are heard by the champion on the redacted
audio (for calls without consent, on the call's audio in memory: there is no redacted copy).
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from core.audio import decode_16k
from core.compute import ShardMap, in_process
from governance.ingest import IngestReport, ingest, monitor_pending_done, read_monitor_pending
from governance.ingest_listing import ListingWindow
from governance.redaction.calls import RedactionReport, redact_in_memory, redact_pending
from governance.store import GovernedStore
from monitoring.champion import Champion, TurnAudio, hear, turn_audio
from monitoring.signals import CallSignals, call_signals

if TYPE_CHECKING:
    from core.settings import Settings

Progress = Callable[[str, int, int], None]  # (stage, done, total)
_NOT_PRODUCTION = "monitor-not-production"  # redacted calls of other splits (golden): ids only, never read again


@dataclass
class CollectReport:
    """What one collection did: counts and ids, never content."""

    ingest: IngestReport | None = None
    redaction: RedactionReport | None = None
    consented: list[str] = field(default_factory=list)  # call ids given a monitoring record from the redacted zone
    unconsented: list[str] = field(default_factory=list)  # ... from memory (no training consent)
    bot_logged_turns: int = 0
    champion_turns: int = 0
    champion: str | None = None  # the bundle version that heard turns, when any did
    undecodable: list[str] = field(default_factory=list)


def _needs_champion(call: dict[str, Any]) -> bool:
    logged = {t["bot"].get("turn") for t in call["turns"] if t.get("bot")}
    customer = [t for t in call["turns"] if t["speaker"] == "customer"]
    return len(logged) < len(customer)


def _handoff_at(call: dict[str, Any]) -> float:
    packet = call.get("handoff")
    if packet:
        return float(packet["at_s"])
    return min((t["start_s"] for t in call["turns"] if t["speaker"] == "agent"), default=float("inf"))


class _Hearing:
    """Loads the champion (``load``: once per run, the caller's cache) only when a call needs it."""

    def __init__(self, settings: Settings, load: Callable[[Settings], Champion], shards: ShardMap) -> None:
        self.settings, self.load, self.shards = settings, load, shards
        self.champion: Champion | None = None  # set once a call needed it

    def __call__(self, calls: list[tuple[dict[str, Any], np.ndarray | None]],
                 progress: Callable[[int, int], None] | None) -> dict[tuple[str, int], Any]:
        turns: list[TurnAudio] = []
        for call, samples in calls:
            if samples is not None and _needs_champion(call):
                turns += turn_audio(call, samples, _handoff_at(call))
        if not turns:
            return {}
        self.champion = self.load(self.settings)
        return hear(self.champion, turns, self.settings.monitor.asr_batch, progress, self.shards)


def _signals(settings: Settings, calls: list[tuple[dict[str, Any], np.ndarray | None]], hearing: _Hearing,
             report: CollectReport, progress: Callable[[int, int], None] | None) -> list[CallSignals]:
    heard = hearing(calls, progress)
    report.champion_turns += len(heard)
    counted = set(settings.monitor.handoff_repeat_types)
    out = []
    for call, _samples in calls:
        mine = {index: h for (call_id, index), h in heard.items() if call_id == call["call_id"]}
        signals = call_signals(call, mine, counted)
        report.bot_logged_turns += sum(t.source == "bot-log" for t in signals.turns)
        out.append(signals)
    return out


def _unwatched(watcher: GovernedStore, skipped: set[str]) -> set[str]:
    """Redacted production calls without a monitoring record, or with one read from an older version of the call
    (a corrected document or recording was ingested since: its signals are read again)."""
    redacted = watcher.redacted_call_ids() - skipped
    recorded = set(watcher.monitoring_keys("calls"))
    versions = watcher.redacted_versions(redacted & recorded)
    made_from = {key: record.get("made_from") for key, record in
                 watcher.read_monitoring("calls", sorted(redacted & recorded)).items()} if versions else {}
    return (redacted - recorded) | {c for c, digest in versions.items() if made_from.get(c) != digest}


def _decode(data: bytes | None, call_id: str, report: CollectReport) -> np.ndarray | None:
    if data is None:
        return None
    try:
        return decode_16k(io.BytesIO(data))
    except ValueError:
        report.undecodable.append(call_id)
        return None


def collect(settings: Settings, store: GovernedStore, load_champion: Callable[[Settings], Champion],
            progress: Progress | None = None, batch: int = 50, shards: ShardMap = in_process) -> CollectReport:
    """Ingest and redact new calls, then give every call without a monitoring record one (``store`` as pipeline).

    ``load_champion`` is called each time calls need the champion: it should keep what it loaded (the flow's does).
    ``shards`` runs redaction's per-call work and the champion's hearing (flows/fan_out.py: on Dask workers).
    """
    report = CollectReport()
    tell = (lambda stage: (lambda done, total: progress(stage, done, total))) if progress else (lambda stage: None)
    ingester = store.as_purpose("ingest")
    with store.ingest_lock():
        report.ingest = ingest(ingester, settings.sources.call_store, "train", tell("ingest"),
                               window=ListingWindow.of(settings.sources))
        report.redaction = redact_pending(store.as_purpose("redaction"), settings.redaction, tell("redact"), shards)
        unconsented, considered = read_monitor_pending(ingester, settings.sources.call_store)
    watcher = store.as_purpose("monitoring")
    hearing = _Hearing(settings, load_champion, shards)
    skipped = set(store.read_state(_NOT_PRODUCTION).get("calls", []))
    pending = sorted(_unwatched(watcher, skipped))
    for start in range(0, len(pending), batch):
        documents = watcher.read_redacted(pending[start:start + batch])
        golden = [d["call_id"] for d in documents if d.get("split") != "train"]
        if golden:  # the golden store's calls are evaluation material, not production traffic
            skipped.update(golden)
            store.write_state(_NOT_PRODUCTION, {"calls": sorted(skipped)})
        documents = [d for d in documents if d.get("split") == "train"]
        calls = []
        for document in documents:
            audio = None
            if _needs_champion(document):
                try:
                    audio = watcher.read_redacted_audio(document["call_id"])
                except FileNotFoundError:
                    audio = None  # no redacted audio (audio redaction off, or the call's audio quarantined)
            calls.append((document, _decode(audio, document["call_id"], report)))
        signals = _signals(settings, calls, hearing, report, tell("hear"))
        watcher.write_monitoring("calls", {s.call_id: s.to_record() for s in signals})
        report.consented += [s.call_id for s in signals]
    if unconsented:
        from governance.redaction.redactor import Redactor

        redactor = hearing.champion.redactor if hearing.champion else Redactor(settings.redaction,
                                                                               entities=settings.redaction.entities)
        redacted = redact_in_memory(unconsented, redactor, store.keys.pseudonym_key)
        calls = [(doc, _decode(raw.pop("_audio", None), doc["call_id"], report))
                 for doc, raw in zip(redacted, unconsented, strict=True)]
        signals = _signals(settings, calls, hearing, report, tell("hear"))
        watcher.write_monitoring("calls", {s.call_id: s.to_record() for s in signals})
        report.unconsented = [s.call_id for s in signals]
        del redacted, calls, unconsented
    if considered:
        monitor_pending_done(ingester, considered)
    report.champion = hearing.champion.version if hearing.champion else None
    return report
