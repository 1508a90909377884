"""What one monitor run did, as a typed object: ``voiceloop monitor`` renders it, ``--json`` prints it.

Counts, days, figures of the newest day and the new alerts (ids, rules, slices, owners): no call
content and no call ids.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from governance.ingest import IngestReport
from monitoring.alerting import AlertRun
from monitoring.calibration import Calibration
from monitoring.collect import CollectReport
from monitoring.figures import ALL, DailyFigure
from monitoring.watch import Window


class CollectSummary(BaseModel):
    listed: int = 0
    ingested: int = 0
    no_consent: int = 0
    quarantined: int = 0
    fields_quarantined: int = 0
    monitored: int = 0  # calls given a monitoring record by this run
    unconsented: int = 0  # ... of which without training consent (records only)
    bot_logged_turns: int = 0
    champion_turns: int = 0
    champion: str | None = None
    undecodable: int = 0

    @classmethod
    def of(cls, report: CollectReport) -> CollectSummary:
        ingest = report.ingest or IngestReport(source="", split="train")
        return cls(listed=ingest.listed, ingested=len(ingest.ingested), no_consent=len(ingest.no_consent),
                   quarantined=len(ingest.quarantined), fields_quarantined=len(ingest.fields_quarantined),
                   monitored=len(report.consented) + len(report.unconsented), unconsented=len(report.unconsented),
                   bot_logged_turns=report.bot_logged_turns, champion_turns=report.champion_turns,
                   champion=report.champion, undecodable=len(report.undecodable))


class CalibrationSummary(BaseModel):
    bundle: str
    golden: str
    turns: int
    intent_ece_raw: float | None = None
    intent_ece_calibrated: float | None = None
    wer_mae: float | None = None
    wer_baseline_mae: float | None = None

    @classmethod
    def of(cls, calibration: Calibration) -> CalibrationSummary:
        def number(value: float | None) -> float | None:
            return None if value is None or value != value else round(float(value), 4)

        intent, wer = calibration.intent, calibration.wer
        return cls(bundle=calibration.bundle, golden=calibration.golden, turns=calibration.turns,
                   intent_ece_raw=number(intent.ece_raw) if intent else None,
                   intent_ece_calibrated=number(intent.ece_calibrated) if intent else None,
                   wer_mae=number(wer.mae) if wer else None, wer_baseline_mae=number(wer.baseline_mae) if wer else None)


class MonitorSummary(BaseModel):
    flow_run_id: str
    collect: CollectSummary
    calibration: CalibrationSummary | None = None
    calls: int = 0  # calls with a monitoring record, all days
    days: list[str] = Field(default_factory=list)
    reference: list[str] = Field(default_factory=list)  # first and last reference day
    newest_day: dict[str, Any] = Field(default_factory=dict)  # metric -> the `all` figure of the newest day
    alerts: list[dict[str, Any]] = Field(default_factory=list)  # new this run
    alerts_continuing: int = 0
    change_tests: int = 0
    notes: list[str] = Field(default_factory=list)
    delivered_to: str | None = None
    delivery_error: str | None = None
    export: str = ""
    timings_s: dict[str, float] = Field(default_factory=dict)

    @classmethod
    def of(cls, flow_run_id: str, collected: CollectReport, calibration: Calibration | None,
           figures: list[DailyFigure], window: Window | None, calls: int, alerts: AlertRun, export: str,
           timings: dict[str, float]) -> MonitorSummary:
        days = sorted({f.day.isoformat() for f in figures})
        newest = {f.metric: {"value": f.value, "n": f.n, "low": f.low, "high": f.high, "provisional": f.provisional,
                             "flags": list(f.flags)}
                  for f in figures if days and f.day.isoformat() == days[-1] and f.slice == ALL}
        span = window.reference_span if window else None
        return cls(flow_run_id=flow_run_id, collect=CollectSummary.of(collected),
                   calibration=CalibrationSummary.of(calibration) if calibration else None, calls=calls, days=days,
                   reference=[d.isoformat() for d in span] if span else [], newest_day=newest,
                   alerts=alerts.raised, alerts_continuing=alerts.continuing, change_tests=alerts.tests,
                   notes=alerts.notes, delivered_to=alerts.delivered_to, delivery_error=alerts.delivery_error,
                   export=export, timings_s=timings)

    def to_json(self) -> dict[str, Any]:
        return self.model_dump(mode="json")
