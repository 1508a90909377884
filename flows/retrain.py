"""The retrain flow: pull -> redact -> validate -> datasets -> fine-tune -> gate -> promote.

The intent model and (with ``asr.enabled``) the Whisper ASR model are fine-tuned side by side
and gated together: the bundle they form is promoted only when every criterion passes.

Orchestration only: each task calls one step module and returns a small, PII-free summary.
Every step is idempotent, so a failed or killed run is simply run again: finished work is
found (seen calls, redacted calls, dataset digests, a finished training run, a registered
bundle) and skipped.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.runtime import flow_run

from core.corpus import intent_names
from core.runtime import cpu_seconds, prepare
from core.settings import Settings, load_settings
from governance.ingest import ingest
from governance.redaction.calls import redact_calls
from governance.session import open_store
from governance.store import GovernedStore
from governance.validation import ROW_ID, turn_rows, validate_turns
from training.asr.data import build_configured
from training.asr.finetune import AsrChallengerRun, GoldenAudio, finetune_asr, finished_asr_run
from training.datasets import (
    ASR_DATASETS,
    ASR_DIGITS,
    ASR_GOLDEN,
    ASR_TRAIN,
    INTENT_GOLDEN,
    DatasetVersion,
    build_versions,
)
from training.finetune import ChallengerRun, finetune_intent
from training.lanes import torch_threads
from training.promotion import AsrCandidate, ChampionAsr, champion_asr, existing_bundle, gate_and_promote
from training.registry import Registry
from training.versioning import DvcVersioner

Summary = dict[str, Any]


@task(name="ingest", cache_policy=NO_CACHE)
def ingest_calls(settings: Settings, store: GovernedStore) -> Summary:
    store = store.as_purpose("ingest")
    out: Summary = {}
    for split, url in (("train", settings.sources.call_store), ("golden", settings.sources.golden_store)):
        report = ingest(store, url, split)
        out[split] = {
            "listed": report.listed,
            "already_seen": report.already_seen,
            "ingested": len(report.ingested),
            "no_consent": len(report.no_consent),
            "quarantined": len(report.quarantined),
            "erased": len(report.erased),
            "watermark": report.watermark,
        }
        for name, reason in report.quarantined:
            get_run_logger().warning("quarantined %s: %s", name, reason)
    return out


@task(name="redact", cache_policy=NO_CACHE)
def redact(settings: Settings, store: GovernedStore) -> Summary:
    store = store.as_purpose("redaction")
    pending = sorted(store.raw_call_ids() - store.redacted_call_ids())
    if not pending:
        return {"calls": 0, "turns": 0, "leaking_turns": 0, "entities": {}}
    report = redact_calls(store, pending, settings.redaction)
    return {"calls": len(report.calls), "turns": report.turns, "leaking_turns": len(report.leaks),
            "entities": report.entities, "audio_calls": len(report.audio.calls),
            "audio_quarantined": len(report.audio.quarantined), "audio_seconds_masked": report.audio.seconds_masked}


@task(name="validate", cache_policy=NO_CACHE)
def validate(settings: Settings, store: GovernedStore) -> tuple[Any, Summary]:
    reader = store.as_purpose("validation")
    frame = turn_rows(reader.read_redacted())
    report = validate_turns(frame, settings.validation, list(intent_names()))
    already = set(reader.read_state("validation-quarantined").get("items", []))
    for row_id, failed in report.failures.items():
        row = frame[frame[ROW_ID] == row_id].iloc[0]
        item = f"{row['call_id']}.turn{row['turn']}"
        if item not in already:
            reader.quarantine("validation", item, "failed " + ", ".join(failed), call_id=row["call_id"],
                              payload=row.drop(ROW_ID).to_dict())
            already.add(item)
    reader.write_state("validation-quarantined", {"items": sorted(already)})
    return report.passed, {"rows": report.rows, "passed": len(report.passed), "failed": len(report.failures),
                           "expectations": report.expectations}


@task(name="datasets", cache_policy=NO_CACHE)
def build_datasets(settings: Settings, store: GovernedStore, validated: Any) -> dict[str, DatasetVersion]:
    versions = build_versions(store.as_purpose("training"), validated, settings.intent.include_banking77_train,
                              settings.intent.banking77_limit)
    report = build_configured(store.as_purpose("training"), validated, settings)
    for skipped in report.skipped:  # bad audio: named by call and turn, left out, never fatal
        get_run_logger().warning("ASR data: skipped %s", skipped)
    versions.update(report.versions)
    if settings.dvc.enabled:
        dvc = DvcVersioner(settings.zones_dir / "datasets", settings.dvc_remote_url, settings.root / "dvc-cache")
        for version in versions.values():
            dvc.track(version.path)
    return versions


@task(name="finetune-intent", cache_policy=NO_CACHE)
def finetune(settings: Settings, store: GovernedStore, versions: dict[str, DatasetVersion],
             threads: int | None = None) -> ChallengerRun:
    """``threads``: train in a process of its own on that many cores (beside the ASR fine-tuning)."""
    reader = store.as_purpose("training")
    intent_sets = {name: v for name, v in versions.items() if name not in ASR_DATASETS}
    for version in intent_sets.values():
        reader.open_dataset(version.name, version.digest, version.call_ids)
    golden = versions[INTENT_GOLDEN]
    if golden.rows == 0:
        raise RuntimeError("the golden set is empty: build it with `voiceloop simulate-calls --split golden`")
    train_sets = [v for name, v in intent_sets.items() if name != INTENT_GOLDEN]
    Registry(settings)  # sets up tracking
    return finetune_intent(train_sets, golden, list(intent_names()), settings.intent, settings.root / "work",
                           tags={"voiceloop.flow_run_id": str(flow_run.get_id() or "")}, threads=threads)


@task(name="load-asr-golden", cache_policy=NO_CACHE)
def asr_golden(store: GovernedStore, versions: dict[str, DatasetVersion]) -> GoldenAudio:
    """The redacted golden turns, the digit set and the clean recordings, decoded once for both ASR models."""
    golden = versions[ASR_GOLDEN]
    if golden.rows == 0:
        raise RuntimeError("the ASR golden set is empty: golden calls need redacted audio "
                           "(redaction.audio.splits must include 'golden')")
    store.as_purpose("evaluation").open_dataset(golden.name, golden.digest, golden.call_ids)
    return GoldenAudio.load(golden)


@task(name="score-champion-asr", cache_policy=NO_CACHE)
def score_champion_asr(settings: Settings, versions: dict[str, DatasetVersion], golden: GoldenAudio,
                       intent: ChallengerRun, cores: int | None) -> ChampionAsr | None:
    """The serving ASR's golden transcripts: needs no challenger, so it runs beside the ASR fine-tuning.

    None when both challenger runs are finished and gated already (a re-run): the gate replays its record.
    """
    registry = Registry(settings)
    asr_sets = [versions[n] for n in (ASR_TRAIN, ASR_DIGITS) if n in versions]
    asr_run = finished_asr_run(asr_sets, versions[ASR_GOLDEN], settings.asr)
    if asr_run and existing_bundle(registry, intent.run_id, asr_run):
        return None
    return champion_asr(registry, golden, settings.asr.window_s, settings.asr.batch_transcribe,
                        settings.root / "work", cores)


@task(name="finetune-asr", cache_policy=NO_CACHE)
def finetune_speech(settings: Settings, store: GovernedStore, versions: dict[str, DatasetVersion],
                    golden_audio: GoldenAudio, threads: int | None = None) -> AsrCandidate:
    """Fine-tune Whisper with LoRA on redacted customer turns + the digit corpus, export it, score it."""
    reader = store.as_purpose("training")
    for name in sorted(ASR_DATASETS & versions.keys()):
        reader.open_dataset(versions[name].name, versions[name].digest, versions[name].call_ids)
    Registry(settings)  # sets up tracking
    with torch_threads(threads):
        run: AsrChallengerRun = finetune_asr(
            [versions[n] for n in (ASR_TRAIN, ASR_DIGITS) if n in versions],
            versions[ASR_GOLDEN], settings.asr, settings.root / "work" / "asr",
            settings.root / "cache" / "asr", golden_audio=golden_audio,
            tags={"voiceloop.flow_run_id": str(flow_run.get_id() or "")},
        )
    return AsrCandidate(run, golden_audio, settings.asr.window_s, settings.asr.batch_transcribe)


@task(name="gate-and-promote", cache_policy=NO_CACHE)
def gate(settings: Settings, store: GovernedStore, challenger: ChallengerRun, asr: AsrCandidate | None,
         asr_champion: ChampionAsr | None = None, intent_golden: DatasetVersion | None = None) -> Summary:
    intent_labels = None
    if asr is not None and intent_golden is not None and intent_golden.rows:  # for intent on ASR transcripts
        store.as_purpose("evaluation").open_dataset(intent_golden.name, intent_golden.digest, intent_golden.call_ids)
        data = intent_golden.load()
        intent_labels = {(c, int(t)): y for c, t, y in zip(data["call_id"], data["turn"], data["intent"], strict=True)}
    outcome = gate_and_promote(Registry(settings), challenger, settings.gate, settings.root / "work", asr,
                               asr_champion, settings.redaction, intent_labels)
    decision = outcome.decision
    if not outcome.repeated:
        store.audit.append(
            store.actor.for_purpose("evaluation"),
            "gate.decision",
            detail={"bundle_version": outcome.bundle_version, "verdict": decision["verdict"],
                    "criteria": decision["criteria"], "champion_before": outcome.previous_champion,
                    "run_id": challenger.run_id, "report": decision.get("report")},
        )
        if outcome.promoted:
            store.audit.append(store.actor.for_purpose("evaluation"), "registry.promote",
                               detail={"bundle_version": outcome.bundle_version,
                                       "previous": outcome.previous_champion})
    return {"bundle_version": outcome.bundle_version, "verdict": decision["verdict"], "promoted": outcome.promoted,
            "champion": outcome.champion, "criteria": decision["criteria"], "reasons": decision["reasons"],
            "per_intent_worst": decision["per_intent"][:5], "repeated": outcome.repeated,
            "asr_slices": [{k: c[k] for k in ("name", "passed", "challenger", "champion", "interval")}
                           for c in decision.get("asr_slices", [])],
            "slices": {status: [t["name"] for t in decision.get("slice_tests", []) if t["status"] == status]
                       for status in ("worse", "untested")},
            "report": decision.get("report"),
            "e2e_intent_accuracy": decision.get("statistics", {}).get("e2e_intent_accuracy"),
            "challenger_run_id": challenger.run_id, "training_reused": challenger.reused}


# log_prints stays off: Prefect's print hook defeats dill's stdout capture (datasets fingerprints
# functions with dis.dis), which filled the run log with bytecode listings.
@flow(name="voiceloop-retrain", log_prints=False)
def retrain(params_file: str | None = None, role: str = "pipeline") -> Summary:
    """Pull new calls, redact, validate, build datasets, fine-tune, gate and promote."""
    settings = load_settings(Path(params_file) if params_file else None)
    prepare(settings.root, settings.threads or None)
    store = open_store(settings, role, "ingest", flow_run_id=str(flow_run.get_id() or ""))
    timings: dict[str, float] = {}
    cpu: dict[str, float] = {}  # core-seconds per stage (the lanes' tasks share one figure: train_lanes)
    summary: Summary = {"flow_run_id": str(flow_run.get_id() or ""), "project_dir": str(settings.root)}

    def since(start: float) -> float:
        return round(time.perf_counter() - start, 2)

    def timed(name: str, fn: Any, *args: Any) -> Any:
        start, cpu_start = time.perf_counter(), cpu_seconds()
        result = fn(*args)
        timings[name], cpu[name] = since(start), round(cpu_seconds() - cpu_start, 1)
        return result

    summary["ingest"] = timed("ingest", ingest_calls, settings, store)
    summary["redaction"] = timed("redact", redact, settings, store)
    validated, summary["validation"] = timed("validate", validate, settings, store)
    versions = timed("datasets", build_datasets, settings, store, validated)
    summary["datasets"] = {name: {"digest": v.digest, "rows": v.rows, "calls": len(v.call_ids)}
                           for name, v in versions.items()}
    cores = settings.threads or os.cpu_count() or 1
    golden_audio = timed("load_asr_golden", asr_golden, store, versions) if settings.asr.enabled else None
    asr: AsrCandidate | None = None
    asr_champion: ChampionAsr | None = None
    lanes = golden_audio is not None and cores >= 2
    if lanes:
        # Two lanes (training/lanes.py): the intent model in a process of its own on one core, then the
        # champion ASR's golden transcripts on that core; the ASR fine-tuning on the other cores.
        started, cpu_started = time.perf_counter(), cpu_seconds()
        intent_lane = finetune.submit(settings, store, versions, threads=1)
        champion_lane = score_champion_asr.submit(settings, versions, golden_audio, intent_lane, 1, return_state=False)
        intent_lane.add_done_callback(lambda _: timings.__setitem__("finetune", since(started)))
        champion_lane.add_done_callback(lambda _: timings.__setitem__("score_champion_asr", since(started)))
        asr = timed("finetune_asr", finetune_speech, settings, store, versions, golden_audio, cores - 1)
        challenger, asr_champion = intent_lane.result(), champion_lane.result()
        timings["train_lanes"], cpu["train_lanes"] = since(started), round(cpu_seconds() - cpu_started, 1)
        del cpu["finetune_asr"]  # it counted the other lane's threads too: only the lanes' total is meaningful
    else:  # one core (or no ASR): one after the other; the gate transcribes with the champion itself
        challenger = timed("finetune", finetune, settings, store, versions)
        if golden_audio is not None:
            asr = timed("finetune_asr", finetune_speech, settings, store, versions, golden_audio)
    summary["training"] = {"run_id": challenger.run_id, "golden_accuracy": challenger.golden_accuracy,
                           "reused": challenger.reused}
    if asr is not None:
        headline = asr.run.headline()
        summary["asr"] = {"run_id": asr.run.run_id, "golden_wer": headline["wer"],
                          "digit_accuracy": headline["digit_accuracy"],
                          "clean_speech_errors": headline["clean_speech_errors"], "reused": asr.run.reused}
    summary["gate"] = timed("gate", gate, settings, store, challenger, asr, asr_champion, versions.get(INTENT_GOLDEN))
    if asr is not None:  # False: a pair gated before, whose record was replayed
        summary["asr"]["champion_transcribed"] = asr_champion is not None or not (lanes or summary["gate"]["repeated"])
        summary["asr"]["challenger_transcribed"] = asr.run.transcribed  # False: reused and gated before
    summary["timings_s"], summary["cpu_s"] = timings, cpu
    return summary
