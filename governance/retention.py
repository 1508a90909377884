"""Retention: raw calls (audio and unredacted transcripts) live ``retention.raw_days`` days, no longer.

A raw call expires when its ``started_at`` is older than the window; its quarantined items (which
may hold raw PII: failed originals, leaking turns) go with it, as do quarantined items of calls that
never reached the raw zone, by the time they were quarantined. Redacted derivatives are kept when
``retention.keep_redacted`` (the default): reproducibility starts at the redacted zone, so
``dvc repro`` / ``voiceloop build-datasets`` gives the same dataset digests after retention as
before. Dataset versions are never touched by retention (only erasure deletes them). Per-call monitoring
records (numbers about a call, kept for calls without training consent too) live
``retention.monitoring_days``: then they go, and their ids leave the days' and alerts' call lists.

Erasure must still find a caller's rows after their raw call (and, without ``keep_redacted``, their
redacted call) is gone: dataset rows carry no caller pseudonym. So before deleting raw calls whose
rows live on (in the redacted zone or a dataset version), retention keeps their ``call id -> caller
pseudonym`` pairs from the raw index in the store state ``retained-callers``; erasure reads and
prunes it.

Everything is decided from metadata (the raw index, zone listings, quarantine reasons): nothing is
decrypted. Deletes go through the store, so on object storage (``store.url``) an expired object goes with
every version a versioned bucket kept of it (docs/scale.md). A dry run plans exactly what ``apply`` would
delete, checks the same rights (a role that may not delete is refused in the dry run too) and deletes
nothing; both are audited.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from governance import access
from governance.store import Deletion, GovernedStore

PURPOSE = "retention"
RETAINED_CALLERS = "retained-callers"
DRY_RUN_ACTION, APPLY_ACTION = "retention.dry-run", "retention.apply"


@dataclass
class RetentionReport:
    now: str
    cutoff: str  # raw calls that started before this expire
    raw_days: int
    keep_redacted: bool
    dry_run: bool
    raw: list[str] = field(default_factory=list)  # call ids whose raw data goes (went)
    redacted: list[str] = field(default_factory=list)
    quarantine: list[str] = field(default_factory=list)  # quarantine item keys
    deleted: dict[str, dict[str, Any]] = field(default_factory=dict)  # zone -> files, bytes (apply only)
    monitoring_days: int | None = None
    monitoring: list[str] = field(default_factory=list)  # calls whose monitoring record goes (went)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _started(value: str) -> datetime:
    parsed = datetime.fromisoformat(value)
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed


def plan_retention(store: GovernedStore, now: datetime, raw_days: int, keep_redacted: bool,
                   monitoring_days: int | None = None) -> RetentionReport:
    """What retention would delete at ``now``: decided from metadata only."""
    cutoff = now - timedelta(days=raw_days)
    report = RetentionReport(now.isoformat(), cutoff.isoformat(), raw_days, keep_redacted, dry_run=True,
                             monitoring_days=monitoring_days)
    if monitoring_days is not None:
        oldest = now - timedelta(days=monitoring_days)
        report.monitoring = sorted(c for c, started in store.monitored_call_starts().items()
                                   if _started(started) < oldest)
    index = store.raw_index()
    report.raw = sorted(cid for cid, entry in index.items() if _started(entry.started_at) < cutoff)
    if not keep_redacted:
        # a redacted call without its raw call outlived an earlier retention run: it has expired too
        orphans = store.redacted_call_ids() - set(index)
        report.redacted = sorted((store.redacted_call_ids() & set(report.raw)) | orphans)
    expired, raw_ids = set(report.raw), set(index)
    for reason in store.quarantined():
        call_id = reason.get("call_id")
        quarantined = reason.get("quarantined_at")
        if call_id in expired or (call_id not in raw_ids and quarantined and _started(quarantined) < cutoff):
            report.quarantine.append(f"{reason['stage']}/{reason['item']}")
    report.quarantine.sort()
    return report


def apply_retention(store: GovernedStore, now: datetime, raw_days: int, keep_redacted: bool,
                    dry_run: bool, monitoring_days: int | None = None) -> RetentionReport:
    """Delete (or with ``dry_run`` only plan) what is past the raw window (and, with ``monitoring_days``, the
    monitoring window), acting for purpose ``retention``."""
    store = store.as_purpose(PURPOSE)
    report = plan_retention(store, now, raw_days, keep_redacted, monitoring_days)
    zones = ["raw", "quarantine"] + ([] if keep_redacted else ["redacted"]) + (
        ["monitoring"] if monitoring_days is not None else [])
    if dry_run:
        for zone in zones:  # the same refusal apply would meet, before it would delete anything
            try:
                access.check(store.policy, store.actor, zone, "delete")
            except access.AccessDenied as denied:
                store.audit.append(store.actor, f"{zone}.delete", zone=zone, outcome="denied",
                                   detail={"reason": str(denied), "step": "retention dry run"})
                raise
    else:
        report.dry_run = False
        _remember_callers(store, report.raw)
        deletions: list[Deletion] = [store.delete_raw(report.raw),
                                     store.delete_quarantined(items=report.quarantine)]
        if not keep_redacted:
            deletions.append(store.delete_redacted(report.redacted))
        if monitoring_days is not None:
            deletions.append(store.delete_monitoring(report.monitoring))
        report.deleted = {d.zone: {"call_ids": len(d.call_ids), "files": d.files, "bytes": d.bytes,
                                   "missing": d.missing} for d in deletions}
    store.audit.append(
        store.actor, DRY_RUN_ACTION if dry_run else APPLY_ACTION,
        call_ids=sorted(set(report.raw) | set(report.redacted) | set(report.monitoring)),
        detail={"cutoff": report.cutoff, "raw_days": raw_days, "keep_redacted": keep_redacted,
                "raw": len(report.raw), "redacted": len(report.redacted), "quarantine": report.quarantine,
                "monitoring_days": monitoring_days, "monitoring": len(report.monitoring),
                "deleted": report.deleted},
    )
    return report


def _remember_callers(store: GovernedStore, expired: list[str]) -> None:
    """Keep the caller pseudonym of expired raw calls whose rows live on, for erasure (see module doc)."""
    index = store.raw_index()
    live = store.redacted_call_ids() | {c for info in store.list_datasets() for c in info.call_ids}
    calls = dict(store.read_state(RETAINED_CALLERS).get("calls", {}))
    calls.update({c: index[c].caller_ref for c in expired if c in live and c in index})
    store.write_state(RETAINED_CALLERS, {"calls": dict(sorted(calls.items()))})


def retained_calls_of(store: GovernedStore, caller_ref: str) -> list[str]:
    """Calls of a caller whose raw data retention deleted but whose rows may live on."""
    calls = store.read_state(RETAINED_CALLERS).get("calls", {})
    return sorted(c for c, ref in calls.items() if ref == caller_ref)


def forget_retained(store: GovernedStore, call_ids: list[str]) -> None:
    """Drop erased calls from the retained index: nothing of them is left to find."""
    calls = store.read_state(RETAINED_CALLERS).get("calls", {})
    if set(call_ids) & set(calls):
        store.write_state(RETAINED_CALLERS, {"calls": {c: r for c, r in calls.items() if c not in set(call_ids)}})
