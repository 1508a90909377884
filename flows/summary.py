"""What one retrain did, as a typed object: the flow returns it, ``voiceloop retrain`` renders it as a
table and ``--json`` prints :meth:`RetrainSummary.to_json` (the shape scripts and tests read).

Each part is made from its step's own report, and holds counts, digests, ids and verdicts: no call
content.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from flows.erase import ErasureOutcome
from governance.ingest import IngestReport
from governance.redaction.calls import RedactionReport
from governance.validation import ValidationReport
from training.datasets import DatasetVersion
from training.finetune import ChallengerRun
from training.promotion import AsrCandidate, PromotionOutcome


class IngestSummary(BaseModel):
    listed: int
    already_seen: int
    ingested: int
    no_consent: int
    quarantined: int
    erased: int
    watermark: str | None
    withdrawn: int = 0  # held calls whose document withdrew consent since
    documents_read: int = 0  # documents read this run: new or changed ones only (governance/change_signals.py)

    @classmethod
    def of(cls, report: IngestReport) -> IngestSummary:
        return cls(listed=report.listed, already_seen=report.already_seen, ingested=len(report.ingested),
                   no_consent=len(report.no_consent), quarantined=len(report.quarantined),
                   erased=len(report.erased), watermark=report.watermark, withdrawn=len(report.withdrawn),
                   documents_read=report.documents_read)


class WithdrawalSummary(BaseModel):
    """A consent withdrawal the run carried out (its certificate is ``<project>/erasure-certificates/<id>.json``)."""

    withdrawal_id: str
    calls: int
    datasets_rebuilt: int

    @classmethod
    def of(cls, outcome: ErasureOutcome) -> WithdrawalSummary:
        return cls(withdrawal_id=outcome.request.request_id, calls=len(outcome.certificate["call_ids"]),
                   datasets_rebuilt=len(outcome.certificate["datasets"]))


class RedactionSummary(BaseModel):
    calls: int
    turns: int
    leaking_turns: int
    entities: dict[str, int]
    audio_calls: int
    audio_quarantined: int
    audio_seconds_masked: float

    @classmethod
    def of(cls, report: RedactionReport) -> RedactionSummary:
        return cls(calls=len(report.calls), turns=report.turns, leaking_turns=len(report.leaks),
                   entities=report.entities, audio_calls=len(report.audio.calls),
                   audio_quarantined=len(report.audio.quarantined),
                   audio_seconds_masked=report.audio.seconds_masked)


class ValidationSummary(BaseModel):
    rows: int
    passed: int
    failed: int
    expectations: int

    @classmethod
    def of(cls, report: ValidationReport) -> ValidationSummary:
        return cls(rows=report.rows, passed=len(report.passed), failed=len(report.failures),
                   expectations=report.expectations)


class DatasetSummary(BaseModel):
    digest: str
    rows: int
    calls: int

    @classmethod
    def of(cls, version: DatasetVersion) -> DatasetSummary:
        return cls(digest=version.digest, rows=version.rows, calls=len(version.call_ids))


class WaitingSummary(BaseModel):
    """Validated customer turns without an intent label (and their calls): in no dataset until labelled."""

    calls: int = 0
    turns: int = 0


class TrainingSummary(BaseModel):
    run_id: str
    golden_accuracy: float
    reused: bool

    @classmethod
    def of(cls, run: ChallengerRun) -> TrainingSummary:
        return cls(run_id=run.run_id, golden_accuracy=run.golden_accuracy, reused=run.reused)


class AsrSummary(BaseModel):
    run_id: str
    golden_wer: float
    digit_accuracy: float | None
    clean_speech_errors: int | None
    reused: bool
    champion_transcribed: bool | None = None  # False: a pair gated before, whose record was replayed
    challenger_transcribed: bool | None = None  # False: reused and gated before
    # True: the champion's golden transcripts were read from the store (kept since its own gate), not made again
    champion_transcripts_kept: bool | None = None

    @classmethod
    def of(cls, candidate: AsrCandidate) -> AsrSummary:
        headline = candidate.run.headline()
        return cls(run_id=candidate.run.run_id, golden_wer=headline["wer"], digit_accuracy=headline["digit_accuracy"],
                   clean_speech_errors=headline["clean_speech_errors"], reused=candidate.run.reused)


class GateSummary(BaseModel):
    bundle_version: str
    verdict: str
    promoted: bool
    champion: str | None
    criteria: Any
    reasons: list[str]
    per_intent_worst: list[Any]
    repeated: bool
    asr_slices: list[dict[str, Any]]
    slices: dict[str, list[str]]
    report: str | None
    e2e_intent_accuracy: Any
    challenger_run_id: str
    training_reused: bool

    @classmethod
    def of(cls, outcome: PromotionOutcome, challenger: ChallengerRun) -> GateSummary:
        decision = outcome.decision
        return cls(
            bundle_version=outcome.bundle_version, verdict=decision["verdict"], promoted=outcome.promoted,
            champion=outcome.champion, criteria=decision["criteria"], reasons=decision["reasons"],
            per_intent_worst=decision["per_intent"][:5], repeated=outcome.repeated,
            asr_slices=[{k: c[k] for k in ("name", "passed", "challenger", "champion", "interval")}
                        for c in decision.get("asr_slices", [])],
            slices={status: [t["name"] for t in decision.get("slice_tests", []) if t["status"] == status]
                    for status in ("worse", "untested")},
            report=decision.get("report"),
            e2e_intent_accuracy=decision.get("statistics", {}).get("e2e_intent_accuracy"),
            challenger_run_id=challenger.run_id, training_reused=challenger.reused,
        )


class RetrainSummary(BaseModel):
    flow_run_id: str
    project_dir: str
    ingest: dict[str, IngestSummary] = Field(default_factory=dict)  # per split: train, golden
    withdrawals: list[WithdrawalSummary] = Field(default_factory=list)
    redaction: RedactionSummary | None = None
    validation: ValidationSummary | None = None
    datasets: dict[str, DatasetSummary] = Field(default_factory=dict)
    waiting_for_labels: WaitingSummary = Field(default_factory=WaitingSummary)
    # per model (intent, asr): where its training started, the champion's adapters and on which rows, or why it
    # trained from the base model (training/warm_start.py)
    warm_start: dict[str, str] = Field(default_factory=dict)
    training: TrainingSummary | None = None
    asr: AsrSummary | None = None  # None: asr.enabled is off
    gate: GateSummary | None = None
    timings_s: dict[str, float] = Field(default_factory=dict)  # wall seconds per stage
    cpu_s: dict[str, float] = Field(default_factory=dict)  # core-seconds per stage (the lanes: one figure)
    # governance.audit.shared_folder_warning: set while the audit key and head share the project folder (a
    # demo layout), so the run's reader is told where the history could be rewritten; None otherwise
    audit_warning: str | None = None

    def to_json(self) -> dict[str, Any]:
        """The ``--json`` form: every part as plain JSON; no ``asr`` key when ASR retraining is off."""
        return self.model_dump(mode="json", exclude={"asr"} if self.asr is None else None)
