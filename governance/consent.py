"""Consent withdrawn after ingest: which calls it covers, which callers may not be ingested, what is left to do.

Consent is withdrawn two ways:

* **per call**: a call store document that held ``consent.training: true`` when ingested says
  ``false`` now. Ingest notices the changed document (whatever its ``started_at``), keeps the raw
  copy in step with it, and records a withdrawal of that call;
* **per caller**: ``voiceloop consent withdraw --caller-id`` covers every call of the caller held
  so far, and ingest treats the caller's future calls as calls without consent until
  ``voiceloop consent grant`` records a re-consent. Both are kept with their dates.

A recorded withdrawal is *pending* until ``flows/erase.py`` has carried it out like an erasure
(dataset versions rebuilt without the calls, DVC objects purged, models trained on them tagged,
a signed certificate). Withdrawn calls are excluded from every dataset built afterwards, pending or
not (:func:`trainable_call_ids`). The ledger lives in the store's state ``consent`` and holds call
ids, dates and the store's caller pseudonyms: no caller id in clear.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from governance.store import GovernedStore

CONSENT_STATE = "consent"
WITHDRAWN_ACTION = "consent.withdrawn"
GRANTED_ACTION = "consent.granted"
Scope = Literal["call", "caller"]


@dataclass
class Withdrawal:
    """One recorded withdrawal: the calls it covers and whether it has been carried out."""

    withdrawal_id: str
    scope: Scope
    at: str  # ISO time it was recorded
    call_ids: list[str]
    caller_ref: str | None = None  # the store's pseudonym of the caller (scope "caller")
    applied_at: str | None = None  # when its datasets and models were dealt with; None: pending


@dataclass
class ConsentLedger:
    """The state ``consent``: withdrawals by id, and each caller's consent history (by pseudonym)."""

    withdrawals: dict[str, Withdrawal] = field(default_factory=dict)
    callers: dict[str, list[dict[str, str]]] = field(default_factory=dict)  # ref -> [{status, at}, ...]

    @classmethod
    def load(cls, store: GovernedStore) -> ConsentLedger:
        state = store.read_state(CONSENT_STATE)
        withdrawals = {w["withdrawal_id"]: Withdrawal(**w) for w in state.get("withdrawals", [])}
        return cls(withdrawals, dict(state.get("callers", {})))

    def save(self, store: GovernedStore) -> None:
        store.write_state(CONSENT_STATE, {"withdrawals": [vars(w) for w in self.withdrawals.values()],
                                          "callers": self.callers})

    def withdrawn_call_ids(self) -> set[str]:
        return {call_id for w in self.withdrawals.values() for call_id in w.call_ids}

    def pending(self) -> list[Withdrawal]:
        return [w for w in self.withdrawals.values() if w.applied_at is None]

    def caller_withdrawn(self, caller_ref: str) -> bool:
        """Whether the caller's latest word is a withdrawal (their new calls are then not ingested)."""
        return is_withdrawn(self.callers.get(caller_ref, []))


def is_withdrawn(history: list[dict[str, Any]]) -> bool:
    """Whether a caller's consent history (oldest first) ends in a withdrawal."""
    return bool(history) and history[-1]["status"] == "withdrawn"


def _now(now: datetime | None) -> str:
    return (now or datetime.now(UTC)).isoformat()


def _new_id(now: datetime | None) -> str:
    return f"cw-{now or datetime.now(UTC):%Y%m%d}-{secrets.token_hex(4)}"


def withdraw_calls(store: GovernedStore, call_ids: list[str], now: datetime | None = None) -> Withdrawal | None:
    """Record that the documents of ``call_ids`` withdrew consent (ingest's finding); None if nothing new."""
    ledger = ConsentLedger.load(store)
    new = sorted(set(call_ids) - ledger.withdrawn_call_ids())
    if not new:
        return None
    withdrawal = Withdrawal(_new_id(now), "call", _now(now), new)
    ledger.withdrawals[withdrawal.withdrawal_id] = withdrawal
    ledger.save(store)
    store.audit.append(store.actor, WITHDRAWN_ACTION, call_ids=new,
                       detail={"withdrawal_id": withdrawal.withdrawal_id, "scope": "call",
                               "found_by": "ingest: the call store document now says consent.training false"})
    return withdrawal


def withdraw_caller(store: GovernedStore, caller_id: str, now: datetime | None = None) -> Withdrawal:
    """Record a caller's withdrawal: every call of theirs held now, and their future calls until a grant.

    ``store`` must act for a purpose that may find a caller's calls (withdrawal or erasure).
    """
    ref = store.caller_ref(caller_id)
    footprint = store.calls_of_caller(ref)
    ledger = ConsentLedger.load(store)
    withdrawal = Withdrawal(_new_id(now), "caller", _now(now), list(footprint.call_ids), caller_ref=ref)
    ledger.withdrawals[withdrawal.withdrawal_id] = withdrawal
    ledger.callers.setdefault(ref, []).append({"status": "withdrawn", "at": withdrawal.at,
                                              "withdrawal_id": withdrawal.withdrawal_id})
    ledger.save(store)
    store.audit.append(store.actor, WITHDRAWN_ACTION, call_ids=withdrawal.call_ids, caller=caller_id,
                       detail={"withdrawal_id": withdrawal.withdrawal_id, "scope": "caller",
                               "calls": len(withdrawal.call_ids)})
    return withdrawal


def grant_caller(store: GovernedStore, caller_id: str, now: datetime | None = None) -> dict[str, str]:
    """Record a re-consent: the caller's calls from now on are ingested again (withdrawn ones stay out)."""
    ref = store.caller_ref(caller_id)
    ledger = ConsentLedger.load(store)
    entry = {"status": "granted", "at": _now(now)}
    ledger.callers.setdefault(ref, []).append(entry)
    ledger.save(store)
    store.audit.append(store.actor, GRANTED_ACTION, caller=caller_id, detail={"at": entry["at"]})
    return entry


def mark_applied(store: GovernedStore, withdrawal_id: str, now: datetime | None = None) -> None:
    ledger = ConsentLedger.load(store)
    ledger.withdrawals[withdrawal_id].applied_at = _now(now)
    ledger.save(store)


def consent_history(store: GovernedStore, caller_id: str) -> list[dict[str, Any]]:
    """A caller's withdrawals and grants, oldest first (for ``voiceloop consent status``)."""
    return list(ConsentLedger.load(store).callers.get(store.caller_ref(caller_id), []))


def trainable_call_ids(store: GovernedStore) -> set[str]:
    """Redacted calls that may go into a dataset: every one whose consent has not been withdrawn."""
    return store.redacted_call_ids() - ConsentLedger.load(store).withdrawn_call_ids()
