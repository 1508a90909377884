"""The governance jobs that must run without anyone remembering: retention, and the deadline check.

Wiring only, as the retrain flow: each is a Prefect flow (so ``voiceloop schedule`` deploys it on
its own cron, flows/schedule.py) over step functions that do their own checks and audit entries,
and the same step functions back ``voiceloop retention apply`` and ``voiceloop retention
check-deadlines``.

* :func:`retention_job`: deletes raw call data past ``retention.raw_days``
  (governance/retention.py).
* :func:`deadline_check_job`: puts on record (audit) each erasure request past its deadline and a
  champion trained on erased or withdrawn calls past ``retention.retrain_deadline_days``, once
  each; with ``retention.rollback_when_overdue`` it serves the newest clean bundle
  (training/retrain_deadline.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from prefect import flow

from core.runtime import prepare
from core.settings import Settings, load_settings
from governance.audit import Actor, open_audit
from governance.erasure import audit_overdue_requests
from governance.retention import RetentionReport, apply_retention
from governance.session import open_store
from training.retrain_deadline import DeadlineCheck, check_retrain_deadline


@dataclass(frozen=True)
class DeadlinesReport:
    overdue_requests: list[dict[str, Any]]  # newly put on record by this check
    retrain: DeadlineCheck

    def to_json(self, now: datetime) -> dict[str, Any]:
        stale = self.retrain.stale
        return {"overdue_requests": self.overdue_requests,
                "champion": stale.as_dict(now) if stale else None,
                "champion_audited": self.retrain.audited, "rolled_back_to": self.retrain.rolled_back_to}


def run_retention(settings: Settings, role: str, dry_run: bool = False, now: datetime | None = None
                  ) -> RetentionReport:
    store = open_store(settings, role, "retention")
    return apply_retention(store, now or datetime.now(UTC), settings.retention.raw_days,
                           settings.retention.keep_redacted, dry_run, settings.retention.monitoring_days)


def check_deadlines(settings: Settings, role: str, now: datetime | None = None) -> DeadlinesReport:
    """Overdue erasure requests and an overdue stale champion, each audited once (acting for retention)."""
    now = now or datetime.now(UTC)
    open_store(settings, role, "retention")  # refuses unknown roles and roles without the purpose, audited
    audit = open_audit(settings)
    actor = Actor(role=role, purpose="retention")
    overdue = audit_overdue_requests(audit, actor, now)
    retrain = check_retrain_deadline(settings, audit, actor, now)
    return DeadlinesReport([r.as_dict(now) for r in overdue], retrain)


def _settings(params_file: str | None) -> Settings:
    settings = load_settings(Path(params_file) if params_file else None)
    prepare(settings.root, settings.threads or None)
    return settings


@flow(name="voiceloop-retention", log_prints=False)
def retention_job(params_file: str | None = None, role: str = "compliance-officer") -> dict[str, Any]:
    """Delete raw call data past its retention window (and redacted, unless retention.keep_redacted)."""
    return run_retention(_settings(params_file), role).as_dict()


@flow(name="voiceloop-deadline-check", log_prints=False)
def deadline_check_job(params_file: str | None = None, role: str = "compliance-officer") -> dict[str, Any]:
    """Put overdue erasure requests and an overdue stale champion on record; roll back when configured."""
    return check_deadlines(_settings(params_file), role).to_json(datetime.now(UTC))
