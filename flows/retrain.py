"""The retrain flow: pull -> redact -> validate -> datasets -> fine-tune -> gate -> promote.

Orchestration only: each task calls one step module and returns a small, PII-free summary.
Every step is idempotent, so a failed or killed run is simply run again: finished work is
found (seen calls, redacted calls, dataset digests, a finished training run, a registered
bundle) and skipped.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.runtime import flow_run

from governance.ingest import ingest
from governance.redaction.calls import redact_calls
from governance.session import open_store, pseudonym_salt
from governance.store import GovernedStore
from governance.validation import ROW_ID, turn_rows, validate_turns
from training.datasets import DatasetVersion, build_versions, label_names
from training.finetune import ChallengerRun, finetune_intent
from training.promotion import gate_and_promote
from training.registry import Registry
from training.versioning import DvcVersioner
from voiceloop.config import Settings, load_settings
from voiceloop.runtime import prepare

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
    report = redact_calls(store, pending, settings.redaction, pseudonym_salt(settings))
    return {"calls": len(report.calls), "turns": report.turns, "leaking_turns": len(report.leaks),
            "entities": report.entities, "audio_calls": len(report.audio.calls),
            "audio_quarantined": len(report.audio.quarantined), "audio_seconds_masked": report.audio.seconds_masked}


@task(name="validate", cache_policy=NO_CACHE)
def validate(settings: Settings, store: GovernedStore) -> tuple[Any, Summary]:
    reader = store.as_purpose("validation")
    frame = turn_rows(reader.read_redacted())
    report = validate_turns(frame, settings.validation, label_names())
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
    if settings.dvc.enabled:
        dvc = DvcVersioner(settings.zones_dir / "datasets", settings.dvc_remote_url, settings.root / "dvc-cache")
        for version in versions.values():
            dvc.track(version.path)
    return versions


@task(name="finetune-intent", cache_policy=NO_CACHE)
def finetune(settings: Settings, store: GovernedStore, versions: dict[str, DatasetVersion]) -> ChallengerRun:
    reader = store.as_purpose("training")
    for version in versions.values():
        reader.open_dataset(version.name, version.digest, version.call_ids)
    golden = versions["intent-golden"]
    if golden.rows == 0:
        raise RuntimeError("the golden set is empty: build it with `voiceloop simulate-calls --split golden`")
    train_sets = [v for name, v in versions.items() if name != "intent-golden"]
    Registry(settings)  # sets up tracking
    return finetune_intent(train_sets, golden, label_names(), settings.intent, settings.root / "work",
                           tags={"voiceloop.flow_run_id": str(flow_run.get_id() or "")})


@task(name="gate-and-promote", cache_policy=NO_CACHE)
def gate(settings: Settings, store: GovernedStore, challenger: ChallengerRun) -> Summary:
    outcome = gate_and_promote(Registry(settings), challenger, settings.gate, settings.root / "work")
    decision = outcome.decision
    if not outcome.repeated:
        store.audit.append(
            store.actor.for_purpose("evaluation"),
            "gate.decision",
            detail={"bundle_version": outcome.bundle_version, "verdict": decision["verdict"],
                    "criteria": decision["criteria"], "champion_before": outcome.previous_champion,
                    "run_id": challenger.run_id},
        )
        if outcome.promoted:
            store.audit.append(store.actor.for_purpose("evaluation"), "registry.promote",
                               detail={"bundle_version": outcome.bundle_version,
                                       "previous": outcome.previous_champion})
    return {"bundle_version": outcome.bundle_version, "verdict": decision["verdict"], "promoted": outcome.promoted,
            "champion": outcome.champion, "criteria": decision["criteria"], "reasons": decision["reasons"],
            "per_intent_worst": decision["per_intent"][:5], "repeated": outcome.repeated,
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
    summary: Summary = {"flow_run_id": str(flow_run.get_id() or ""), "project_dir": str(settings.root)}

    def timed(name: str, fn: Any, *args: Any) -> Any:
        start = time.perf_counter()
        result = fn(*args)
        timings[name] = round(time.perf_counter() - start, 2)
        return result

    summary["ingest"] = timed("ingest", ingest_calls, settings, store)
    summary["redaction"] = timed("redact", redact, settings, store)
    validated, summary["validation"] = timed("validate", validate, settings, store)
    versions = timed("datasets", build_datasets, settings, store, validated)
    summary["datasets"] = {name: {"digest": v.digest, "rows": v.rows, "calls": len(v.call_ids)}
                           for name, v in versions.items()}
    challenger = timed("finetune", finetune, settings, store, versions)
    summary["training"] = {"run_id": challenger.run_id, "golden_accuracy": challenger.golden_accuracy,
                           "reused": challenger.reused}
    summary["gate"] = timed("gate", gate, settings, store, challenger)
    summary["timings_s"] = timings
    return summary
