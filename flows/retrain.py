"""The retrain flow: pull -> withdrawals -> redact -> validate -> datasets -> fine-tune -> gate -> promote.

The intent model and (with ``asr.enabled``) the Whisper ASR model are fine-tuned side by side
and gated together: the bundle they form is promoted only when every criterion passes.

Wiring only: each task calls one step function, which owns its bookkeeping and audit entries, and
returns its part of the typed, PII-free :class:`flows.summary.RetrainSummary`.
Every step is idempotent, so a failed or killed run is simply run again: finished work is
found (seen calls, redacted calls, dataset digests, a finished training run, a registered
bundle) and skipped.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.runtime import flow_run

from core import progress
from core.compute import ShardMap, in_process
from core.corpus import intent_names
from core.device import ct2_device, resolve_device
from core.runtime import cpu_seconds, prepare
from core.settings import Settings, load_settings
from flows.erase import carry_out_pending_withdrawals
from flows.fan_out import fan_out
from flows.summary import (
    AsrSummary,
    DatasetSummary,
    GateSummary,
    IngestSummary,
    RedactionSummary,
    RetrainSummary,
    TrainingSummary,
    ValidationSummary,
    WaitingSummary,
    WithdrawalSummary,
)
from governance.audit import shared_folder_warning
from governance.ingest import ingest_sources
from governance.redaction.calls import redact_pending
from governance.session import open_store
from governance.store import GovernedStore
from governance.validation import validate_redacted
from training.asr.finetune import AsrChallengerRun, GoldenAudio, finetune_asr, finished_asr_run
from training.build import BuiltDatasets, build_datasets, version_datasets
from training.datasets import (
    ASR_DATASETS,
    ASR_DIGITS,
    ASR_GOLDEN,
    ASR_TRAIN,
    INTENT_GOLDEN,
    INTENT_PRODUCTION_GOLDEN,
    DatasetVersion,
    callers_of,
)
from training.finetune import ChallengerRun, finetune_intent, intent_set_names
from training.lanes import torch_threads
from training.promotion import AsrCandidate, ChampionAsr, champion_asr, existing_bundle, gate_step
from training.registry import Registry
from training.warm_start import Component, WarmPlan, WarmStart, plan_warm_start


@task(name="ingest", cache_policy=NO_CACHE)
def ingest_calls(settings: Settings, store: GovernedStore) -> dict[str, IngestSummary]:
    with store.ingest_lock():  # one ingest per store at a time: the monitor's (flows/monitor.py) takes it too
        reports = ingest_sources(store.as_purpose("ingest"), settings.sources, progress.counter("ingest", "files"))
    for report in reports.values():
        for name, reason in report.quarantined:
            get_run_logger().warning("quarantined %s: %s", name, reason)
    return {split: IngestSummary.of(report) for split, report in reports.items()}


@task(name="withdrawals", cache_policy=NO_CACHE)
def withdrawals(settings: Settings, store: GovernedStore) -> list[WithdrawalSummary]:
    """Consent withdrawn since the calls were ingested: out of every dataset and model lineage before anything
    is built again (flows/erase.py)."""
    outcomes = carry_out_pending_withdrawals(settings, store.as_purpose("withdrawal"))
    return [WithdrawalSummary.of(outcome) for outcome in outcomes]


@task(name="redact", cache_policy=NO_CACHE)
def redact(settings: Settings, store: GovernedStore) -> RedactionSummary:
    """Text and audio redaction in shards of calls, on Dask workers (``compute``; flows/fan_out.py)."""
    with fan_out(settings.compute, settings.threads or None) as shards:
        report = redact_pending(store.as_purpose("redaction"), settings.redaction,
                                progress.counter("redact", "calls"), shards=shards)
    return RedactionSummary.of(report)


@task(name="validate", cache_policy=NO_CACHE)
def validate(settings: Settings, store: GovernedStore) -> tuple[Any, ValidationSummary]:
    report = validate_redacted(store.as_purpose("validation"), settings.validation)
    return report.passed, ValidationSummary.of(report)


@task(name="datasets", cache_policy=NO_CACHE)
def datasets(settings: Settings, store: GovernedStore, validated: Any) -> BuiltDatasets:
    trainer = store.as_purpose("training")
    built = build_datasets(trainer, validated, settings)
    for skipped in built.skipped:  # bad audio: named by call and turn, left out, never fatal
        get_run_logger().warning("ASR data: skipped %s", skipped)
    version_datasets(trainer, settings, built.versions)
    return built


def _asr_train_names(versions: dict[str, DatasetVersion]) -> list[str]:
    return [n for n in (ASR_TRAIN, ASR_DIGITS) if n in versions]


@task(name="warm-start", cache_policy=NO_CACHE)
def warm_starts(settings: Settings, store: GovernedStore, versions: dict[str, DatasetVersion],
                ) -> dict[Component, WarmPlan]:
    """Whether each model tops up the champion's (training/warm_start.py), and on which rows; said in the log."""
    reader, registry = store.as_purpose("training"), Registry(settings)
    work = settings.root / "work"
    sets: dict[Component, tuple[list[str], Any]] = {"intent": (intent_set_names(versions)[0], settings.intent)}
    if settings.asr.enabled:
        sets["asr"] = (_asr_train_names(versions), settings.asr)
    plans = {component: plan_warm_start(registry, reader, settings.warm_start, component, config,
                                        [versions[n] for n in names], work)
             for component, (names, config) in sets.items()}
    for component, plan in plans.items():
        get_run_logger().info("%s model %s", component, plan.reason)
    return plans


@task(name="finetune-intent", cache_policy=NO_CACHE)
def finetune(settings: Settings, store: GovernedStore, versions: dict[str, DatasetVersion],
             threads: int | None = None, warm: WarmStart | None = None) -> ChallengerRun:
    """``threads``: train in a process of its own on that many cores (beside the ASR fine-tuning)."""
    reader = store.as_purpose("training")
    train_names, golden_name = intent_set_names(versions)
    train_sets, golden = [versions[n].opened(reader) for n in train_names], versions[golden_name].opened(reader)
    Registry(settings)  # sets up tracking
    return finetune_intent(train_sets, golden, list(intent_names()), settings.intent, settings.root / "work",
                           tags={"voiceloop.flow_run_id": str(flow_run.get_id() or "")}, threads=threads,
                           report_as="finetune", callers=callers_of(reader, train_sets),
                           device=resolve_device(settings.compute.device), warm=warm)


@task(name="load-asr-golden", cache_policy=NO_CACHE)
def asr_golden(store: GovernedStore, versions: dict[str, DatasetVersion]) -> GoldenAudio:
    """The redacted golden turns, the digit set and the clean recordings, decoded once for both ASR models."""
    golden = versions.get(ASR_GOLDEN)
    if golden is None:
        raise RuntimeError("the ASR golden set is empty: golden calls need a human transcript per customer turn "
                           "(labels[].transcript) and redacted audio (redaction.audio.splits must include 'golden')")
    return GoldenAudio.load(golden.opened(store.as_purpose("evaluation")))


@task(name="score-champion-asr", cache_policy=NO_CACHE)
def score_champion_asr(settings: Settings, store: GovernedStore, versions: dict[str, DatasetVersion],
                       golden: GoldenAudio, intent: ChallengerRun, cores: int | None,
                       warm: WarmStart | None = None, shards: ShardMap = in_process) -> ChampionAsr | None:
    """The serving ASR's golden transcripts: needs no challenger, so it runs beside the ASR fine-tuning.

    None when both challenger runs are finished and gated already (a re-run): the gate replays its record.
    """
    registry = Registry(settings)
    asr_sets = [versions[n] for n in _asr_train_names(versions)]
    asr_run = finished_asr_run(asr_sets, versions[ASR_GOLDEN], settings.asr, warm)
    if asr_run and existing_bundle(registry, intent.run_id, asr_run):
        return None
    return champion_asr(registry, store.as_purpose("training"), golden, settings.asr.window_s,
                        settings.asr.batch_transcribe, settings.root / "work", cores,
                        device=ct2_device(settings.compute.device).device, shards=shards)


@task(name="finetune-asr", cache_policy=NO_CACHE)
def finetune_speech(settings: Settings, store: GovernedStore, versions: dict[str, DatasetVersion],
                    golden_audio: GoldenAudio, threads: int | None = None,
                    warm: WarmStart | None = None, shards: ShardMap = in_process) -> AsrCandidate:
    """Fine-tune Whisper with LoRA on redacted customer turns + the digit corpus, export it, and transcribe the
    golden set with it (on ``shards``' workers when they are a cluster elsewhere: core/asr_shards.py)."""
    reader = store.as_purpose("training")
    opened = {name: versions[name].opened(reader) for name in sorted(ASR_DATASETS & versions.keys())}
    Registry(settings)  # sets up tracking
    with torch_threads(threads):
        run: AsrChallengerRun = finetune_asr(
            [opened[n] for n in _asr_train_names(opened)],
            opened[ASR_GOLDEN], settings.asr, settings.root / "work" / "asr",
            settings.root / "cache" / "asr", golden_audio=golden_audio,
            tags={"voiceloop.flow_run_id": str(flow_run.get_id() or "")},
            progress=lambda stage, done, total: progress.advanced("finetune_asr", done, total, stage),
            device=resolve_device(settings.compute.device),
            transcribe_device=ct2_device(settings.compute.device).device, warm=warm, shards=shards,
        )
    return AsrCandidate(run, golden_audio, settings.asr.window_s, settings.asr.batch_transcribe)


@task(name="gate-and-promote", cache_policy=NO_CACHE)
def gate(settings: Settings, store: GovernedStore, challenger: ChallengerRun, asr: AsrCandidate | None,
         asr_champion: ChampionAsr | None = None, intent_golden: DatasetVersion | None = None,
         production: DatasetVersion | None = None) -> GateSummary:
    outcome = gate_step(settings, store, challenger, asr, asr_champion, intent_golden, production)
    return GateSummary.of(outcome, challenger)


# log_prints stays off: Prefect's print hook defeats dill's stdout capture (datasets fingerprints
# functions with dis.dis), which filled the run log with bytecode listings.
@flow(name="voiceloop-retrain", log_prints=False)
def retrain(params_file: str | None = None, role: str = "pipeline") -> RetrainSummary:
    """Pull new calls, redact, validate, build datasets, fine-tune, gate and promote."""
    settings = load_settings(Path(params_file) if params_file else None)
    prepare(settings.root, settings.threads or None)
    store = open_store(settings, role, "ingest", flow_run_id=str(flow_run.get_id() or ""))
    timed = progress.Stopwatch()  # core-seconds per stage too (the lanes' tasks share one figure: train_lanes)
    timings, cpu = timed.wall, timed.cpu
    summary = RetrainSummary(flow_run_id=str(flow_run.get_id() or ""), project_dir=str(settings.root),
                             audit_warning=shared_folder_warning(settings))

    def since(start: float) -> float:
        return round(time.perf_counter() - start, 2)

    def lane_done(name: str, started: float, then: str | None = None) -> Callable[[Any], None]:
        def done(_: Any) -> None:
            timings[name] = since(started)
            progress.finished(name)
            if then:
                progress.started(then)

        return done

    summary.ingest = timed("ingest", ingest_calls, settings, store)
    summary.withdrawals = timed("withdrawals", withdrawals, settings, store)
    summary.redaction = timed("redact", redact, settings, store)
    validated, summary.validation = timed("validate", validate, settings, store)
    built = timed("datasets", datasets, settings, store, validated)
    versions = built.versions
    summary.datasets = {name: DatasetSummary.of(v) for name, v in versions.items()}
    summary.waiting_for_labels = WaitingSummary(calls=built.waiting.calls, turns=built.waiting.turns)
    cores = settings.threads or os.cpu_count() or 1
    plans = timed("warm_start", warm_starts, settings, store, versions)
    summary.warm_start = {component: plan.reason for component, plan in plans.items()}
    warm_intent, warm_asr = (plans[c].start if c in plans else None for c in ("intent", "asr"))
    golden_audio = timed("load_asr_golden", asr_golden, store, versions) if settings.asr.enabled else None
    # The golden sets' transcriptions go to the run's Dask workers when they are a cluster elsewhere
    # (compute.dask_address; core/asr_shards.py), open until the gate has read them; on this machine's cores
    # they stay in this process (the champion's on its lane's core beside the ASR fine-tuning).
    with fan_out(settings.compute, settings.threads or None) as shards:
        asr: AsrCandidate | None = None
        asr_champion: ChampionAsr | None = None
        lanes = golden_audio is not None and cores >= 2
        if lanes:
            # Two lanes (training/lanes.py): the intent model in a process of its own on one core, then the
            # champion ASR's golden transcripts on that core; the ASR fine-tuning on the other cores.
            started, cpu_started = time.perf_counter(), cpu_seconds()
            progress.started("finetune")
            intent_lane = finetune.submit(settings, store, versions, threads=1, warm=warm_intent)
            champion_lane = score_champion_asr.submit(settings, store, versions, golden_audio, intent_lane, 1,
                                                     warm_asr, shards, return_state=False)
            intent_lane.add_done_callback(lane_done("finetune", started, then="score_champion_asr"))
            champion_lane.add_done_callback(lane_done("score_champion_asr", started))
            asr = timed("finetune_asr", finetune_speech, settings, store, versions, golden_audio, cores - 1, warm_asr,
                        shards)
            challenger, asr_champion = intent_lane.result(), champion_lane.result()
            timings["train_lanes"], cpu["train_lanes"] = since(started), round(cpu_seconds() - cpu_started, 1)
            del cpu["finetune_asr"]  # it counted the other lane's threads too: only the lanes' total is meaningful
        else:  # one core (or no ASR): one after the other; the gate transcribes with the champion itself
            challenger = timed("finetune", finetune, settings, store, versions, None, warm_intent)
            if golden_audio is not None:
                asr = timed("finetune_asr", finetune_speech, settings, store, versions, golden_audio, None, warm_asr,
                            shards)
        summary.training = TrainingSummary.of(challenger)
        summary.gate = gate_summary = timed("gate", gate, settings, store, challenger, asr, asr_champion,
                                            versions.get(INTENT_GOLDEN), versions.get(INTENT_PRODUCTION_GOLDEN))
        if asr is not None:
            summary.asr = AsrSummary.of(asr)
            summary.asr.champion_transcribed = asr_champion is not None or not (lanes or gate_summary.repeated)
            summary.asr.challenger_transcribed = asr.run.transcribed
            summary.asr.champion_transcripts_kept = asr_champion.cached if asr_champion is not None else None
    summary.timings_s, summary.cpu_s = timings, cpu
    return summary
