"""Redact whole calls: raw zone -> redacted zone, with the leak gate on every turn.

A redacted call keeps what training and evaluation need (redacted ASR text, redacted
reference transcript, intent, timings, audio facts, channel/voice metadata) and nothing that
identifies the caller: the caller id becomes a pseudonym (the store's keyed hash, the same one its
raw index holds, so erasure finds a caller's calls in both zones). A turn whose redacted text still
trips the independent leak check is quarantined (the call, turn and entity types are named,
never the value) and left out of the redacted call; when more than ``leak_max_share`` of the
batch's turns leak, redaction itself is broken and the batch is refused.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from core.settings import RedactionConfig
from governance.crypto import pseudonym
from governance.redaction.call_audio import AudioRedactionReport, group_turn_redactions, redact_audio_of_calls
from governance.redaction.leak_gate import TurnText, leak_gate
from governance.redaction.redactor import Redaction, Redactor
from governance.store import GovernedStore

if TYPE_CHECKING:
    from core.asr import AsrEngine

__all__ = ["RedactionBroken", "RedactionReport", "pseudonym", "redact_calls", "redact_in_memory"]

BATCH = 100


class RedactionBroken(RuntimeError):
    """Too many turns leaked PII after redaction: stop before anything reaches a dataset."""


@dataclass
class RedactionReport:
    calls: list[str] = field(default_factory=list)
    turns: int = 0
    entities: dict[str, int] = field(default_factory=dict)
    leaks: list[tuple[str, int, list[str]]] = field(default_factory=list)  # (call, turn, types)
    audio: AudioRedactionReport = field(default_factory=AudioRedactionReport)

    @property
    def leak_share(self) -> float:
        return len(self.leaks) / self.turns if self.turns else 0.0


#: What a redacted call keeps of a bot log and a handoff packet: numbers, intents, types; never text.
_BOT_LOG_FIELDS = ("turn", "intent", "confidence", "bundle", "asr")
_HANDOFF_FIELDS = ("at_s", "intent", "intent_confidence", "sentiment", "verified")


def _bot_log(turn: dict[str, Any]) -> dict[str, Any] | None:
    log = turn.get("bot")
    if not isinstance(log, dict):
        return None
    kept = {k: log[k] for k in _BOT_LOG_FIELDS if k in log}
    if isinstance(kept.get("asr"), dict):
        kept["asr"] = {k: kept["asr"][k] for k in ("avg_logprob", "no_speech_prob") if k in kept["asr"]}
    return kept


def _handoff(document: dict[str, Any]) -> dict[str, Any] | None:
    """The packet as the monitor needs it: whether a transcript was sent, not the transcript."""
    packet = document.get("handoff")
    if not isinstance(packet, dict):
        return None
    transcript = packet.get("transcript")
    return {**{k: packet[k] for k in _HANDOFF_FIELDS if k in packet},
            "transcript_sent": bool(isinstance(transcript, str) and transcript.strip())}


def _redacted_call(document: dict[str, Any], texts: dict[tuple[int, str], Any], salt: str) -> dict[str, Any]:
    labels = {label["turn"]: label for label in document.get("labels", [])}
    loudness = document["_ingest"]["audio"].get("customer_turn_dbfs", {})  # measured on the raw audio at ingest
    turns = []
    for index, turn in enumerate(document["turns"]):
        label = labels.get(index, {})
        transcript = texts.get((index, "transcript"))
        turns.append(
            {
                "index": index,
                "speaker": turn["speaker"],
                "start_s": turn["start_s"],
                "end_s": turn["end_s"],
                "text": texts[(index, "text")].redacted,
                "transcript": transcript.redacted if transcript else None,
                "intent": label.get("intent"),
                "speech_dbfs": loudness.get(str(index)),
                "pii_types": sorted(
                    {e.type for e in texts[(index, "text")].entities}
                    | ({e.type for e in transcript.entities} if transcript else set())
                ),
                **({"bot": log} if (log := _bot_log(turn)) else {}),
            }
        )
    ingest_info = document["_ingest"]
    return {
        "call_id": document["call_id"],
        "started_at": document["started_at"],
        "caller_ref": pseudonym(document["caller_id"], salt),
        "split": ingest_info["split"],
        "consent_training": bool(document["consent"]["training"]),
        "outcome": document.get("outcome"),
        "meta": {k: v for k, v in (document.get("meta") or {}).items() if k in ("voice", "channel", "snr_db")},
        "audio": {k: v for k, v in ingest_info["audio"].items() if k != "customer_turn_dbfs"},  # per turn above
        "raw_digest": ingest_info["source_digest"],
        "turns": turns,
        **({"handoff": packet} if (packet := _handoff(document)) else {}),
    }


def redact_pending(store: GovernedStore, config: RedactionConfig,
                   progress: Callable[[int, int], None] | None = None) -> RedactionReport:
    """The redaction step: every raw call not redacted yet, and every call redacted from an older version
    of it than the raw zone now holds (its redacted document and audio are replaced; ``store`` acts for
    redaction)."""
    pending = sorted((store.raw_call_ids() - store.redacted_call_ids()) | store.stale_redacted_call_ids())
    return redact_calls(store, pending, config, progress=progress) if pending else RedactionReport()


def redact_calls(
    store: GovernedStore,
    call_ids: list[str],
    config: RedactionConfig,
    redactor: Redactor | None = None,
    progress: Callable[[int, int], None] | None = None,
    asr: AsrEngine | None = None,
) -> RedactionReport:
    """Redact the given raw calls; already-redacted calls are the caller's business to skip.

    With ``config.audio.enabled`` the audio of each redacted call of ``config.audio.splits`` is
    masked too (after its document is written: the store keeps the two together); ``asr`` is the
    engine for word times and verification, loaded when needed if not given.

    Caller pseudonyms use the store's pseudonym key, the one erasure looks callers up by.
    """
    salt = store.keys.pseudonym_key
    redactor = redactor or Redactor(config, entities=config.entities)
    report = RedactionReport()
    pending: list[dict[str, Any]] = []
    audio_inputs: dict[str, dict[int, list[Redaction]]] = {}
    ids = sorted(call_ids)
    for start in range(0, len(ids), BATCH):
        chunk = ids[start : start + BATCH]
        # Documents only: the audio facts redaction keeps were measured at ingest (document["_ingest"]).
        documents = list(store.read_raw_documents(chunk))
        redacted_calls, by_call = _redact_texts(documents, redactor, salt)
        for results in by_call.values():
            for result in results.values():
                for entity in result.entities:
                    report.entities[entity.type] = report.entities.get(entity.type, 0) + 1
        for document in documents:
            if document["_ingest"]["split"] in config.audio.splits:
                audio_inputs[document["call_id"]] = group_turn_redactions(by_call[document["call_id"]])
        pending.extend(_gate(store, redacted_calls, report))
        if progress:
            progress(min(start + BATCH, len(ids)), len(ids))
    if report.leak_share > config.leak_max_share:
        raise RedactionBroken(
            f"{len(report.leaks)} of {report.turns} turns ({report.leak_share:.1%}) still hold PII after redaction, "
            f"above redaction.leak_max_share={config.leak_max_share:.1%}; the leaking turns are in the quarantine "
            "zone (stage 'redaction'); fix the recognizers before re-running"
        )
    if pending:
        store.write_redacted(pending)
    report.calls = [doc["call_id"] for doc in pending]
    if config.audio.enabled and audio_inputs:
        blank_turns: dict[str, list[int]] = {}
        for call_id, turn, _types in report.leaks:
            blank_turns.setdefault(call_id, []).append(turn)
        report.audio = redact_audio_of_calls(
            store,
            audio_inputs,
            config.audio,
            asr or _asr_engine(config.audio.asr_model),
            blank_turns=blank_turns,
            timings=config.audio.timings,
        )
    return report


def _redact_texts(documents: list[dict[str, Any]], redactor: Redactor,
                  salt: str) -> tuple[list[dict[str, Any]], dict[str, dict[tuple[int, str], Redaction]]]:
    """The redacted calls of raw documents, and each call's turn redactions by (turn, "text"/"transcript")."""
    keys: list[tuple[str, int, str]] = []
    texts: list[str] = []
    for document in documents:
        labels = {label["turn"]: label for label in document.get("labels", [])}
        for index, turn in enumerate(document["turns"]):
            keys.append((document["call_id"], index, "text"))
            texts.append(turn["text"])
            if labels.get(index, {}).get("transcript"):
                keys.append((document["call_id"], index, "transcript"))
                texts.append(labels[index]["transcript"])
    by_call: dict[str, dict[tuple[int, str], Redaction]] = {doc["call_id"]: {} for doc in documents}
    for (call_id, index, kind), result in zip(keys, redactor.redact_many(texts), strict=True):
        by_call[call_id][(index, kind)] = result
    return [_redacted_call(doc, by_call[doc["call_id"]], salt) for doc in documents], by_call


def redact_in_memory(documents: list[dict[str, Any]], redactor: Redactor, salt: str) -> list[dict[str, Any]]:
    """Redacted calls of documents that are stored nowhere (calls without training consent, which only
    the monitor sees): the same redaction as the redacted zone's, handed back and never written."""
    return _redact_texts(documents, redactor, salt)[0]


def _gate(store: GovernedStore, redacted_calls: list[dict[str, Any]], report: RedactionReport) -> list[dict[str, Any]]:
    """Run the leak gate over the calls' turns; quarantine leaking turns and drop them from the calls."""
    leaks = {
        (leak.call_id, leak.turn): list(leak.types)
        for leak in leak_gate(
            [
                TurnText(call["call_id"], turn["index"], text)
                for call in redacted_calls
                for turn in call["turns"]
                for text in (turn["text"], turn["transcript"])
                if text
            ]
        )
    }
    for redacted in redacted_calls:
        kept = []
        for turn in redacted["turns"]:
            report.turns += 1
            leaked = leaks.get((redacted["call_id"], turn["index"]))
            if not leaked:
                kept.append(turn)
                continue
            report.leaks.append((redacted["call_id"], turn["index"], leaked))
            store.quarantine(
                "redaction",
                f"{redacted['call_id']}.turn{turn['index']}",
                f"PII survived redaction in call {redacted['call_id']} turn {turn['index']}: {', '.join(leaked)}",
                call_id=redacted["call_id"],
                payload=turn,
            )
        redacted["quarantined_turns"] = len(redacted["turns"]) - len(kept)
        redacted["turns"] = kept
    return redacted_calls


def _asr_engine(model: str | None) -> AsrEngine:
    from core.asr import AsrEngine

    # Many turns in batches: a one-thread worker per core (CTranslate2's default of 4 threads
    # oversubscribes a 2-core machine).
    return AsrEngine.for_throughput(model, min(4, os.cpu_count() or 1))
