"""Gate the challenger against the champion and move the bundle aliases on the verdict.

Every challenger is registered (its evidence stays inspectable); only a passing one becomes
``champion``. The decision is logged as a run artifact and returned for the audit trail.
A bundle is keyed by its challenger runs (intent, and ASR when there is one): running this twice
for the same runs returns the recorded outcome, while a new ASR run beside a reused intent run
(an ASR setting changed) is a new bundle, gated anew.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import mlflow
import numpy as np

from core.compute import ShardMap, in_process
from core.device import Ct2Device, ct2_device
from core.settings import GateConfig, RedactionConfig, Settings
from governance.store import GovernedStore
from training.asr.finetune import MODEL_ARTIFACT as ASR_ARTIFACT
from training.asr.finetune import AsrChallengerRun, AsrEvaluation, GoldenAudio
from training.asr.metrics import digits_correct, error_arrays, snr_bin, utterance_errors
from training.datasets import DatasetVersion
from training.finetune import MODEL_ARTIFACT, ChallengerRun
from training.gate import AsrEvidence, GateEvidence, IntentPairs, decide
from training.intent.predict import IntentModel
from training.registry import CHAMPION, Registry
from training.report import confusion_changes, decision_html, model_card

DECISION_ARTIFACT = "gate/decision.json"  # the intent run's latest decision
ASR_RUN_TAG = "asr_run_id"  # on a bundle version: the ASR challenger run it was gated with


def decision_artifact(asr_run_id: str | None) -> str:
    """Where the decision for one bundle key is kept in the intent run (the latest also in DECISION_ARTIFACT)."""
    return f"gate/decision-asr-{asr_run_id}.json" if asr_run_id else DECISION_ARTIFACT


@dataclass
class PromotionOutcome:
    bundle_version: str
    promoted: bool
    decision: dict[str, Any]
    champion: str | None
    previous_champion: str | None
    repeated: bool = False


def existing_bundle(registry: Registry, run_id: str, asr_run_id: str | None) -> str | None:
    """The bundle version already registered for these challenger runs, if any."""
    versions = registry.client.search_model_versions(f"name='{registry.bundle_name}' and run_id='{run_id}'")
    same = [v for v in versions if v.tags.get(ASR_RUN_TAG) == asr_run_id]
    return str(same[0].version) if same else None


def kept_with_version(store: GovernedStore, version: DatasetVersion | None, key: str,
                      compute: Callable[[], dict[str, Any]]) -> tuple[dict[str, Any], bool]:
    """``compute()``, kept in the store beside dataset ``version`` (the input it was computed on) under ``key``
    and read back from there next time; (value, whether it was read back). Without a version (an input
    that is no stored dataset version) it is computed each time.

    A registered model never changes, so what it says on a given dataset version never does either:
    the gate's champion transcripts and predictions are kept this way, by model and input. They are
    derived from the version's calls, so they live in the governed store with the version (audited,
    and removed with it when an erasure rebuilds it), never in an MLflow run.
    """
    if version is None:
        return compute(), False
    record = store.read_evaluation(version.name, version.digest, key)
    if record is not None:
        return record, True
    value = compute()
    store.write_evaluation(version.name, version.digest, key, value)
    return value, False


#: Where voiceloop before issue 16 cached the champion's golden outputs: in its model's MLflow run, outside
#: the store. :func:`drop_legacy_gate_caches` removes them.
LEGACY_GATE_CACHES = ("gate/champion-transcripts", "gate/champion-predictions")


def drop_legacy_gate_caches(registry: Registry) -> list[str]:
    """Delete the champion golden outputs older versions kept in component runs; the runs they were in.

    Erasure calls it: those files were derived from the golden calls and are not store data, so they
    cannot be rebuilt without a caller; the gate now keeps them beside the golden version instead.
    """
    from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

    runs = {v.run_id for name in (registry.intent_name, registry.asr_name)
            for v in registry.client.search_model_versions(f"name='{name}'") if v.run_id}
    cleaned = []
    for run_id in sorted(runs):
        repository = get_artifact_repository(registry.client.get_run(run_id).info.artifact_uri)
        present = {entry.path for entry in repository.list_artifacts("gate")}
        for folder in set(LEGACY_GATE_CACHES) & present:
            repository.delete_artifacts(folder)
        if set(LEGACY_GATE_CACHES) & present:
            cleaned.append(run_id)
    return cleaned


def evaluation_key(kind: str, reference: str, *inputs: str) -> str:
    """A store-safe name for a model's outputs: ``champion-asr-voiceloop-asr-v3-<inputs>``, hashed when long."""
    key = "-".join([kind, re.sub(r"[^A-Za-z0-9_.-]+", "-v", reference), *inputs])
    return key if len(key) <= 128 else f"{kind}-{hashlib.sha256(key.encode()).hexdigest()[:40]}"


@lru_cache(maxsize=1)
def _intent_model(folder: str) -> IntentModel:
    """A downloaded champion intent model, loaded once: the gate predicts with it on the golden texts and on
    the ASR transcripts (end to end). A registered model never changes, and the folder names its version."""
    return IntentModel.load(Path(folder))


@dataclass
class ChampionIntent:
    version: str  # the champion bundle's version
    predictions: list[str]
    cached: bool = False  # read from the champion intent model's run instead of predicted


def champion_predictions(registry: Registry, store: GovernedStore, source: DatasetVersion | None, texts: list[str],
                         work_dir: Path) -> ChampionIntent | None:
    """The champion bundle's intent predictions on ``texts`` (None: no champion), kept beside ``source``, the
    dataset version the texts come from (read and written through ``store``), per model and texts."""
    champion = registry.by_alias(CHAMPION)
    if champion is None or champion.intent_model is None:
        return None
    reference = champion.intent_model

    def predict() -> dict[str, Any]:
        folder = registry.download_component(reference, work_dir / f"champion-{champion.version}")
        return {"model": reference, "predictions": _intent_model(str(folder)).predict(texts)}

    value, cached = kept_with_version(store, source, champion_intent_key(reference, texts), predict)
    return ChampionIntent(champion.version, list(value["predictions"]), cached)


def champion_intent_key(reference: str, texts: list[str]) -> str:
    """Where intent model ``reference``'s predictions on ``texts`` are kept (beside the texts' version)."""
    return evaluation_key("champion-intent", reference, hashlib.sha256(json.dumps(texts).encode()).hexdigest()[:24])


def champion_asr_key(reference: str, golden: GoldenAudio, window_s: float, placement: Ct2Device) -> str:
    """Where ASR model ``reference``'s transcripts of ``golden`` are kept (beside the golden version)."""
    return evaluation_key("champion-asr", reference, golden.key, f"w{window_s:g}", *_placement_key(placement))


def keep_golden_outputs(store: GovernedStore, components: Mapping[str, str], challenger: ChallengerRun,
                        asr: AsrCandidate | None) -> list[str]:
    """Keep a gated bundle's golden outputs, made while it was the challenger, under its models' names: when it
    becomes the champion (by the gate, or later by hand: ``voiceloop promote``), the next retrain's gate reads
    them (:func:`champion_predictions`, :func:`champion_asr`) instead of predicting and transcribing the golden
    sets with it again. Returns the keys written."""
    kept: list[str] = []
    if challenger.golden is not None and "intent" in components:
        key = champion_intent_key(components["intent"], challenger.golden_texts)
        store.write_evaluation(challenger.golden.name, challenger.golden.digest, key,
                               {"model": components["intent"], "predictions": list(challenger.golden_predictions)})
        kept.append(key)
    if asr is not None and asr.run.transcribed and asr.golden.version is not None and "asr" in components:
        key = champion_asr_key(components["asr"], asr.golden, asr.window_s, ct2_device(asr.run.device))
        store.write_evaluation(asr.golden.version.name, asr.golden.version.digest, key,
                               {"model": components["asr"], "golden": asr.golden.key, "window_s": asr.window_s,
                                "texts": asr.run.evaluation.texts()})
        kept.append(key)
    return kept


@dataclass
class AsrCandidate:
    """What the gate needs of an ASR challenger: its run and the golden audio it was scored on."""

    run: AsrChallengerRun
    golden: GoldenAudio
    window_s: float
    batch_size: int = 8


@dataclass
class ChampionAsr:
    """The serving ASR's transcripts of the golden audio: what an ASR challenger is compared with."""

    label: str  # "champion ASR voiceloop-asr/3", or the base model while no bundle has an ASR
    evaluation: AsrEvaluation
    cached: bool = False  # read from the champion's run instead of transcribed
    device: str = "cpu"  # CTranslate2's device for the transcripts: the challenger's must be the same


def champion_asr(registry: Registry, store: GovernedStore, golden: GoldenAudio, window_s: float, batch_size: int,
                 work_dir: Path, cores: int | None = None, device: str = "cpu",
                 shards: ShardMap = in_process) -> ChampionAsr:
    """Transcribe the golden audio with the champion bundle's ASR (else the base model), on ``cores`` workers,
    on ``shards`` (the run's Dask workers, when they are a cluster elsewhere) or on CTranslate2's ``device``
    (core/device.py); kept beside the golden version in ``store`` by model, evaluation set, window and device,
    and read back next time.

    It needs no challenger, so the flow runs it beside the ASR fine-tuning.
    """
    from training.asr.export import exported_window

    placement = ct2_device(device)
    champion = registry.by_alias(CHAMPION)
    reference = champion.components.get("asr") if champion else None
    if not reference:
        evaluation = golden.transcribe(None, window_s, batch_size, cores=cores, device=placement.device,
                                       shards=shards)
        return ChampionAsr("the base model (no champion ASR yet)", evaluation, device=placement.device)
    label = f"champion ASR {reference}"
    model_dir = registry.download_component(reference, work_dir / f"champion-asr-{reference.replace('/', '-')}")
    window_s = exported_window(model_dir) or window_s
    def transcribe() -> dict[str, Any]:
        evaluation = golden.transcribe(model_dir, window_s, batch_size, cores=cores, device=placement.device,
                                       shards=shards)
        return {"model": reference, "golden": golden.key, "window_s": window_s, "texts": evaluation.texts()}

    value, cached = kept_with_version(store, golden.version, champion_asr_key(reference, golden, window_s, placement),
                                      transcribe)
    return ChampionAsr(label, AsrEvaluation.of(golden, value["texts"]), cached=cached, device=placement.device)


def _placement_key(placement: Ct2Device) -> list[str]:
    """How kept transcripts name where they were made: nothing for the CPU's int8 (the names kept before
    devices existed), else device and compute type (float16 on a GPU writes other texts)."""
    return [] if placement == ct2_device("cpu") else [f"{placement.device}-{placement.compute_type}"]


def asr_evidence(candidate: AsrCandidate, champion: ChampionAsr) -> AsrEvidence:
    """Pair the challenger's and the champion's golden transcripts, utterance by utterance (made on one device)."""
    if candidate.run.device != champion.device:
        raise ValueError(f"the challenger's golden transcripts were made on {candidate.run.device} and the "
                         f"champion's on {champion.device}: transcribe both on the same device")
    golden, baseline = candidate.golden, champion.evaluation
    challenger = candidate.run.evaluation
    challenger_errors, ref_words = error_arrays(utterance_errors(golden.references, challenger.hypotheses))
    champion_errors, _ = error_arrays(utterance_errors(golden.references, baseline.hypotheses))
    slices = [{"voice": str(r.get("voice")), "channel": str(r.get("channel")), "snr": snr_bin(r.get("snr_db"))}
              for r in golden.rows]
    return AsrEvidence(
        ref_words=ref_words,
        challenger_errors=challenger_errors,
        champion_errors=champion_errors,
        slices=slices,
        challenger_digits_correct=digits_correct(golden.digit_references, challenger.digit_hypotheses),
        champion_digits_correct=digits_correct(golden.digit_references, baseline.digit_hypotheses),
        champion_label=champion.label,
        challenger_clean_errors=error_arrays(utterance_errors(golden.clean_references, challenger.clean_hypotheses))[0],
        champion_clean_errors=error_arrays(utterance_errors(golden.clean_references, baseline.clean_hypotheses))[0],
    )


def _apply(registry: Registry, version: str, decision: dict[str, Any], run_id: str, asr_run_id: str | None) -> None:
    uri = f"runs:/{run_id}/{decision_artifact(asr_run_id)}"
    if decision["promote"]:
        registry.promote(version, decision, uri)
    else:
        registry.mark_rejected(version, decision, uri)


def end_to_end_pairs(registry: Registry, store: GovernedStore, challenger: ChallengerRun, asr: AsrCandidate,
                     champion: ChampionAsr, intent_labels: Mapping[tuple[str, int], str], redaction: RedactionConfig,
                     work_dir: Path) -> IntentPairs | None:
    """Each bundle's intent model on its own ASR's transcripts of the labelled golden turns, redacted as served."""
    from governance.redaction.redactor import Redactor

    rows = asr.golden.rows
    picked = [i for i, row in enumerate(rows) if (row.get("call_id"), row.get("turn")) in intent_labels]
    if not picked:
        return None
    redactor = Redactor(redaction, entities=redaction.entities)

    def heard(hypotheses: list[str]) -> list[str]:
        return [r.redacted for r in redactor.redact_many([hypotheses[i] for i in picked])]

    labels = [intent_labels[(rows[i]["call_id"], rows[i]["turn"])] for i in picked]
    challenger_says = IntentModel.load(challenger.model_dir).predict(heard(asr.run.evaluation.hypotheses))
    champion_says = champion_predictions(registry, store, asr.golden.version, heard(champion.evaluation.hypotheses),
                                         work_dir)
    return IntentPairs(labels, challenger_says, champion_says.predictions if champion_says else None)


def serving_latency(challenger: ChallengerRun, asr: AsrCandidate, redaction: RedactionConfig,
                    utterances: int) -> np.ndarray:
    """Seconds of the challenger bundle's serving path on ``utterances`` golden turns spread over their lengths."""
    from governance.redaction.redactor import Redactor
    from training.bundle import bundle_from_folders, process_seconds

    audios = sorted(asr.golden.audios, key=len)
    picked = [audios[i] for i in np.linspace(0, len(audios) - 1, min(utterances, len(audios))).round().astype(int)]
    bundle = bundle_from_folders("challenger", asr.run.model_dir, challenger.model_dir, asr.window_s,
                                 device=asr.run.device)
    redactor = Redactor(redaction, entities=redaction.entities)
    process_seconds(bundle, redactor.redact, picked[:2])  # warm-up: first calls load lazily
    return np.asarray(process_seconds(bundle, redactor.redact, picked))


def _log_model_card(registry: Registry, version: str, components: dict[str, str], decision: dict[str, Any],
                    run_ids: list[str | None]) -> None:
    """The promoted bundle's model card, in its registered folder (``bundle/model_card-v<N>.md``)."""
    datasets: dict[str, str] = {}
    for run_id in filter(None, run_ids):
        params = registry.client.get_run(run_id).data.params
        datasets.update({k.removeprefix("dataset."): v for k, v in params.items() if k.startswith("dataset.")})
    registry.client.log_text(str(run_ids[0]), model_card(version, components, decision, datasets),
                             f"bundle/model_card-v{version}.md")


def gate_evidence(
    registry: Registry, store: GovernedStore, challenger: ChallengerRun, gate_config: GateConfig, work_dir: Path,
    asr: AsrCandidate | None = None, asr_champion: ChampionAsr | None = None,
    redaction: RedactionConfig | None = None, intent_labels: Mapping[tuple[str, int], str] | None = None,
    production: DatasetVersion | None = None,
) -> GateEvidence:
    """What the gate judges: the challengers' and the serving champion's outputs on the golden sets, paired
    (arguments as :func:`gate_and_promote`'s; the decision itself is :func:`training.gate.decide`'s)."""
    baseline = champion_predictions(registry, store, challenger.golden, challenger.golden_texts, work_dir)
    if asr and asr_champion is None:
        asr_champion = champion_asr(registry, store, asr.golden, asr.window_s, asr.batch_size, work_dir,
                                    device=asr.run.device, shards=asr.run.shards)
    return GateEvidence(
        labels=challenger.golden_labels,
        challenger_predictions=challenger.golden_predictions,
        champion_predictions=baseline.predictions if baseline else None,
        champion_version=baseline.version if baseline else None,
        asr=asr_evidence(asr, asr_champion) if asr and asr_champion else None,
        end_to_end=end_to_end_pairs(registry, store, challenger, asr, asr_champion, intent_labels, redaction,
                                    work_dir)
        if asr and asr_champion and intent_labels and redaction is not None else None,
        latency_s=serving_latency(challenger, asr, redaction, gate_config.latency_utterances)
        if asr and redaction is not None and gate_config.latency_utterances and asr.golden.audios else None,
        production=production_pairs(registry, store, challenger, production, work_dir),
    )


def production_pairs(registry: Registry, store: GovernedStore, challenger: ChallengerRun,
                     production: DatasetVersion | None, work_dir: Path) -> IntentPairs | None:
    """Both bundles' intents on the production golden set's reviewed turns (None without the set or a champion).

    The texts are what the platform's ASR heard (as the bot read them); the labels what reviewers understood.
    """
    if production is None or not production.rows:
        return None
    data = production.opened(store.as_purpose("evaluation")).load()
    texts, labels = [str(t) for t in data["text"]], [str(y) for y in data["intent"]]
    baseline = champion_predictions(registry, store, production, texts, work_dir)
    if baseline is None:
        return None
    challenger_model = IntentModel.load(challenger.model_dir)
    return IntentPairs(labels, challenger_model.predict(texts), baseline.predictions,
                       [f"channel={c}" for c in data["channel"]])


def golden_intent_labels(store: GovernedStore, intent_golden: DatasetVersion) -> dict[tuple[str, int], str]:
    """(call id, turn) -> intent of the labelled golden turns, read through ``store`` for evaluation."""
    data = intent_golden.opened(store.as_purpose("evaluation")).load()
    return {(c, int(t)): y for c, t, y in zip(data["call_id"], data["turn"], data["intent"], strict=True)}


def gate_and_promote(
    registry: Registry, store: GovernedStore, challenger: ChallengerRun, gate_config: GateConfig, work_dir: Path,
    asr: AsrCandidate | None = None, asr_champion: ChampionAsr | None = None,
    redaction: RedactionConfig | None = None, intent_labels: Mapping[tuple[str, int], str] | None = None,
    production: DatasetVersion | None = None,
) -> PromotionOutcome:
    """Gate the intent challenger (and the ASR challenger, when given) and move the bundle aliases.

    ``store`` (a purpose that reads and writes dataset versions, e.g. training) keeps the champion's
    outputs on the golden sets (:func:`kept_with_version`).
    ``asr_champion``: the serving ASR's golden transcripts when already made (:func:`champion_asr`).
    ``redaction``: with an ASR challenger, the serving path is timed with this redactor (the
    ``serving_latency`` criterion; see training/gate.py). ``intent_labels`` ((call id, turn) ->
    intent of the golden turns) lets the gate read intents from each bundle's own ASR transcripts
    (``e2e_intent_accuracy``). ``production``: the production golden set (``production_intent_accuracy``).
    """
    asr_run_id = asr.run.run_id if asr else None
    existing = existing_bundle(registry, challenger.run_id, asr_run_id)
    if existing is not None:
        recorded = mlflow.artifacts.load_dict(
            f"{registry.client.get_run(challenger.run_id).info.artifact_uri}/{decision_artifact(asr_run_id)}"
        )
        tags = registry.client.get_model_version(registry.bundle_name, existing).tags
        if "gate.verdict" not in tags:  # killed between registering and moving the alias: finish it
            _apply(registry, existing, recorded, challenger.run_id, asr_run_id)
        champion = registry.by_alias(CHAMPION)
        return PromotionOutcome(existing, recorded["verdict"] == "promote", recorded,
                                champion.version if champion else None, recorded.get("champion_version"), True)

    evidence = gate_evidence(registry, store, challenger, gate_config, work_dir, asr, asr_champion, redaction,
                             intent_labels, production)
    decision = decide(evidence, gate_config).to_dict()
    report = decision_artifact(asr_run_id).removesuffix(".json") + ".html"
    decision["report"] = f"runs:/{challenger.run_id}/{report}"
    confusions = confusion_changes(evidence.labels, evidence.champion_predictions,
                                   evidence.challenger_predictions) if evidence.champion_predictions else []
    intent_version = registry.register_component(registry.intent_name, challenger.run_id, MODEL_ARTIFACT)
    with mlflow.start_run(run_id=challenger.run_id):
        mlflow.log_dict(decision, DECISION_ARTIFACT)
        if asr_run_id:
            mlflow.log_dict(decision, decision_artifact(asr_run_id))
        mlflow.log_text(decision_html(decision, confusions, f"voiceloop gate, intent run {challenger.run_id[:8]}"),
                        report)
        mlflow.set_tag("gate.verdict", decision["verdict"])
    components = {"intent": f"{registry.intent_name}/{intent_version}"}
    evidence_summary: dict[str, Any] = {"golden_accuracy": challenger.golden_accuracy, "verdict": decision["verdict"]}
    if asr:
        asr_version = registry.register_component(registry.asr_name, asr.run.run_id, ASR_ARTIFACT)
        components["asr"] = f"{registry.asr_name}/{asr_version}"
        evidence_summary["golden_wer"] = asr.run.headline()["wer"]
    bundle = registry.register_bundle(challenger.run_id, components, evidence_summary,
                                      {ASR_RUN_TAG: asr_run_id} if asr_run_id else None)
    _apply(registry, bundle.version, decision, challenger.run_id, asr_run_id)
    keep_golden_outputs(store, components, challenger, asr)
    if decision["promote"]:
        _log_model_card(registry, bundle.version, components, decision, [challenger.run_id, asr_run_id])
    champion = registry.by_alias(CHAMPION)
    return PromotionOutcome(bundle.version, bool(decision["promote"]), decision,
                            champion.version if champion else None, evidence.champion_version)


def gate_step(settings: Settings, store: GovernedStore, challenger: ChallengerRun, asr: AsrCandidate | None,
              asr_champion: ChampionAsr | None = None, intent_golden: DatasetVersion | None = None,
              production: DatasetVersion | None = None) -> PromotionOutcome:
    """The gate step of a retrain: decide, move the aliases, and audit the decision and any promotion.

    ``intent_golden`` (the labelled golden turns, read through ``store`` for evaluation) lets the gate
    read intents from each bundle's own ASR transcripts. A replayed decision (a pair gated before) is
    not audited again.
    """
    evaluator = store.as_purpose("evaluation")
    intent_labels = None
    if asr is not None and intent_golden is not None and intent_golden.rows:
        intent_labels = golden_intent_labels(evaluator, intent_golden)
    outcome = gate_and_promote(Registry(settings), store.as_purpose("training"), challenger, settings.gate,
                               settings.root / "work", asr, asr_champion, settings.redaction, intent_labels, production)
    if not outcome.repeated:
        decision = outcome.decision
        evaluator.audit.append(evaluator.actor, "gate.decision",
                               detail={"bundle_version": outcome.bundle_version, "verdict": decision["verdict"],
                                       "criteria": decision["criteria"], "champion_before": outcome.previous_champion,
                                       "run_id": challenger.run_id, "report": decision.get("report")})
        if outcome.promoted:
            evaluator.audit.append(evaluator.actor, "registry.promote",
                                   detail={"bundle_version": outcome.bundle_version,
                                           "previous": outcome.previous_champion})
    return outcome
