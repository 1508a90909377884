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

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from core.compute import LazyShards, ShardMap, chunks, content_key, in_process, shard_size
from core.settings import RedactionConfig
from governance.crypto import pseudonym
from governance.redaction.call_audio import (
    AudioRedactionReport,
    group_turn_redactions,
    raw_version,
    redact_audio_of_calls,
)
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


def _redacted_call(document: dict[str, Any], texts: dict[tuple[int, str], Any], caller_ref: str) -> dict[str, Any]:
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
        "caller_ref": caller_ref,
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
                   progress: Callable[[int, int], None] | None = None,
                   shards: ShardMap = in_process) -> RedactionReport:
    """The redaction step: every raw call not redacted yet, and every call redacted from an older version
    of it than the raw zone now holds (its redacted document and audio are replaced; ``store`` acts for
    redaction). ``shards`` runs the per-call work (flows/fan_out.py: on Dask workers)."""
    pending = sorted((store.raw_call_ids() - store.redacted_call_ids()) | store.stale_redacted_call_ids())
    return redact_calls(store, pending, config, progress=progress, shards=shards) if pending else RedactionReport()


def redact_calls(
    store: GovernedStore,
    call_ids: list[str],
    config: RedactionConfig,
    progress: Callable[[int, int], None] | None = None,
    asr: AsrEngine | None = None,
    shards: ShardMap = in_process,
) -> RedactionReport:
    """Redact the given raw calls; already-redacted calls are the caller's business to skip.

    Text first, in shards of calls (:func:`redact_text_shard`, on ``shards``' workers); the leak gate's
    findings are quarantined and the redacted documents written here, through the store. With
    ``config.audio.enabled`` the audio of each redacted call of ``config.audio.splits`` is then masked
    too (after its document is written: the store keeps the two together); ``asr`` is the engine for
    word times and verification in this process, loaded on each worker when not given.

    Caller pseudonyms use the store's pseudonym key, the one erasure looks callers up by; the key never
    leaves this process (workers hand back documents without ``caller_ref``).
    """
    salt = store.keys.pseudonym_key
    report = RedactionReport()
    pending: list[dict[str, Any]] = []
    audio_inputs: dict[str, dict[int, list[Redaction]]] = {}
    ids = sorted(call_ids)
    index = store.raw_entries(ids)
    pieces = chunks(ids, shard_size(len(ids), shards.workers, most=BATCH))
    keys = [content_key("redact-text", [(c, raw_version(index, c)) for c in piece], config.model_dump(mode="json"))
            for piece in pieces]
    done = 0
    # Documents only: the audio facts redaction keeps were measured at ingest (document["_ingest"]).
    inputs = LazyShards(pieces, lambda piece: TextShard(list(store.read_raw_documents(piece)), config))
    for piece, result in zip(pieces, shards(redact_text_shard, inputs, keys), strict=True):
        for call in result.calls:
            call["caller_ref"] = pseudonym(result.caller_ids[call["call_id"]], salt)
        report.turns += result.turns
        for entity_type, count in result.entities.items():
            report.entities[entity_type] = report.entities.get(entity_type, 0) + count
        for call_id, turn, types in result.leaked:
            report.leaks.append((call_id, turn["index"], types))
            store.quarantine(
                "redaction",
                f"{call_id}.turn{turn['index']}",
                f"PII survived redaction in call {call_id} turn {turn['index']}: {', '.join(types)}",
                call_id=call_id,
                payload=turn,
            )
        for call in result.calls:
            if call["split"] in config.audio.splits:
                audio_inputs[call["call_id"]] = group_turn_redactions(result.redactions[call["call_id"]])
        pending.extend(result.calls)
        done += len(piece)
        if progress:
            progress(done, len(ids))
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
        for call_id, turn_index, _types in report.leaks:
            blank_turns.setdefault(call_id, []).append(turn_index)
        report.audio = redact_audio_of_calls(
            store,
            audio_inputs,
            config.audio,
            asr,
            blank_turns=blank_turns,
            timings=config.audio.timings,
            shards=shards,
        )
    return report


@dataclass(frozen=True)
class TextShard:
    """The raw documents of a few calls and how to redact them: everything a worker needs, no store."""

    documents: list[dict[str, Any]]
    config: RedactionConfig


@dataclass
class TextShardResult:
    """A shard's redacted calls (leaking turns taken out, ``caller_ref`` not yet set), the turn redactions
    audio masking needs, the leaking turns for quarantine, and counts for the report."""

    calls: list[dict[str, Any]]
    caller_ids: dict[str, str]
    redactions: dict[str, dict[tuple[int, str], Redaction]]
    leaked: list[tuple[str, dict[str, Any], list[str]]]
    turns: int
    entities: dict[str, int]


def redact_text_shard(shard: TextShard) -> TextShardResult:
    """Redact a shard's calls and run the leak gate over them: pure, so any worker process can do it."""
    documents = shard.documents
    calls, by_call = _redact_texts(documents, _redactor(shard.config), caller_refs={})
    entities: dict[str, int] = {}
    for results in by_call.values():
        for result in results.values():
            for entity in result.entities:
                entities[entity.type] = entities.get(entity.type, 0) + 1
    leaked = _take_out_leaks(calls)
    return TextShardResult(calls, {doc["call_id"]: str(doc["caller_id"]) for doc in documents}, by_call, leaked,
                           sum(len(call["turns"]) + call["quarantined_turns"] for call in calls), entities)


@lru_cache(maxsize=2)
def _cached_redactor(config_json: str) -> Redactor:
    config = RedactionConfig.model_validate_json(config_json)
    return Redactor(config, entities=config.entities)


def _redactor(config: RedactionConfig) -> Redactor:
    """One redactor per process and configuration: loading spaCy and the recognisers takes seconds."""
    return _cached_redactor(config.model_dump_json())


def _redact_texts(documents: list[dict[str, Any]], redactor: Redactor, caller_refs: Mapping[str, str],
                  ) -> tuple[list[dict[str, Any]], dict[str, dict[tuple[int, str], Redaction]]]:
    """The redacted calls of raw documents, and each call's turn redactions by (turn, "text"/"transcript").

    ``caller_refs``: call id -> the caller's pseudonym (a call missing from it gets none yet)."""
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
    return [_redacted_call(doc, by_call[doc["call_id"]], caller_refs.get(doc["call_id"], ""))
            for doc in documents], by_call


def redact_in_memory(documents: list[dict[str, Any]], redactor: Redactor, salt: str) -> list[dict[str, Any]]:
    """Redacted calls of documents that are stored nowhere (calls without training consent, which only
    the monitor sees): the same redaction as the redacted zone's, handed back and never written."""
    refs = {doc["call_id"]: pseudonym(str(doc["caller_id"]), salt) for doc in documents}
    return _redact_texts(documents, redactor, refs)[0]


def _take_out_leaks(redacted_calls: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any], list[str]]]:
    """Run the leak gate over the calls' turns and take the leaking turns out of them: (call, turn, types)
    for each, for the quarantine (done by the caller, through the store)."""
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
    leaked = []
    for redacted in redacted_calls:
        kept = []
        for turn in redacted["turns"]:
            types = leaks.get((redacted["call_id"], turn["index"]))
            if types:
                leaked.append((redacted["call_id"], turn, types))
            else:
                kept.append(turn)
        redacted["quarantined_turns"] = len(redacted["turns"]) - len(kept)
        redacted["turns"] = kept
    return leaked
