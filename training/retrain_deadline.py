"""How long a champion trained on erased or withdrawn calls may keep serving, and what happens after.

An erasure or a consent withdrawal tags every model and bundle trained on the calls
``voiceloop.retrain_required`` (training/lineage.py) and, the first time, when
(``voiceloop.retrain_required_since``). The champion then has ``retention.retrain_deadline_days``
to be replaced by a retrain the gate promotes. ``voiceloop status`` and the audit report show the
deadline; :func:`check_retrain_deadline` (``voiceloop retention check-deadlines``, scheduled by
``voiceloop schedule``) writes ``model.retrain-overdue`` to the audit log once the deadline has
passed and, with ``retention.rollback_when_overdue``, serves the newest bundle not trained on them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from core.settings import Settings
from governance.audit import Actor, AuditLog
from training.registry import CHAMPION, RETRAIN_REQUIRED_SINCE_TAG, RETRAIN_REQUIRED_TAG, Registry

OVERDUE_ACTION = "model.retrain-overdue"


@dataclass(frozen=True)
class StaleChampion:
    """The champion bundle, trained on calls that were erased or withdrawn since."""

    version: str
    requests: list[str]  # the erasure requests / withdrawals that marked it
    since: str  # ISO time of the first mark
    deadline: str  # ISO time it must be replaced by

    def overdue(self, now: datetime) -> bool:
        return now >= datetime.fromisoformat(self.deadline)

    def as_dict(self, now: datetime) -> dict[str, Any]:
        return {**asdict(self), "status": "OVERDUE" if self.overdue(now) else "due"}


def stale_champion(registry: Registry, deadline_days: int) -> StaleChampion | None:
    """The champion if it is marked ``retrain_required`` (None: no champion, or a clean one).

    A mark written before its time was kept starts its clock now (the time is recorded then).
    """
    champion = registry.by_alias(CHAMPION)
    if champion is None:
        return None
    tags = registry.client.get_model_version(registry.bundle_name, champion.version).tags
    if not tags.get(RETRAIN_REQUIRED_TAG):
        return None
    since = tags.get(RETRAIN_REQUIRED_SINCE_TAG)
    if not since:
        since = datetime.now(UTC).isoformat()
        registry.client.set_model_version_tag(registry.bundle_name, champion.version, RETRAIN_REQUIRED_SINCE_TAG, since)
    deadline = datetime.fromisoformat(since) + timedelta(days=deadline_days)
    return StaleChampion(champion.version, tags[RETRAIN_REQUIRED_TAG].split(","), since, deadline.isoformat())


@dataclass(frozen=True)
class DeadlineCheck:
    stale: StaleChampion | None
    overdue: bool
    audited: bool  # this check wrote the model.retrain-overdue entry (an earlier one may have)
    rolled_back_to: str | None = None  # the bundle now serving, with retention.rollback_when_overdue


def check_retrain_deadline(settings: Settings, audit: AuditLog, actor: Actor, now: datetime | None = None
                           ) -> DeadlineCheck:
    """Audit an overdue stale champion once (per bundle version and marks), and roll back when configured."""
    now = now or datetime.now(UTC)
    registry = Registry(settings)
    stale = stale_champion(registry, settings.retention.retrain_deadline_days)
    if stale is None or not stale.overdue(now):
        return DeadlineCheck(stale, False, False)
    already = any(e.detail.get("bundle_version") == stale.version and e.detail.get("requests") == stale.requests
                  for e in audit.entries(action=OVERDUE_ACTION))
    rolled_back_to = None
    if settings.retention.rollback_when_overdue:
        rolled_back_to = _roll_back(registry, stale)
    if not already or rolled_back_to:
        audit.append(actor, OVERDUE_ACTION, detail={"bundle_version": stale.version, "requests": stale.requests,
                                                     "since": stale.since, "deadline": stale.deadline,
                                                     "rolled_back_to": rolled_back_to})
    return DeadlineCheck(stale, True, not already or bool(rolled_back_to), rolled_back_to)


def _roll_back(registry: Registry, stale: StaleChampion) -> str | None:
    """Serve the newest bundle not trained on erased or withdrawn calls (None: there is none)."""
    for row in registry.versions():  # newest first
        if row["version"] == stale.version:
            continue
        tags = registry.client.get_model_version(registry.bundle_name, row["version"]).tags
        if not tags.get(RETRAIN_REQUIRED_TAG):
            registry.move_champion(row["version"], action="deadline.rollback", by="retrain deadline check",
                                   reason=f"champion v{stale.version} trained on erased or withdrawn calls "
                                          f"({', '.join(stale.requests)}) past its deadline {stale.deadline[:10]}",
                                   evidence={"rolled_back": stale.version})
            return str(row["version"])
    return None
