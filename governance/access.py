"""The one place that decides whether an actor may touch a zone.

An access is allowed only when the actor's role may act for its purpose AND that purpose may do
the operation on the zone (both from :mod:`governance.policy`). Hard invariants
(:data:`governance.policy.FORBIDDEN`: training never reads raw) are checked first, here, so that
no policy, however it was built, can grant them. A denial's message says what was refused and
which role or purpose would be allowed; it never names a call, a caller or any data, because
denials are logged and shown to whoever was refused.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

from governance.policy import FORBIDDEN, OPERATIONS, ZONES, Operation, Policy, Zone

__all__ = ["ZONES", "AccessDenied", "Operation", "Zone", "check"]


class ActorLike(Protocol):
    @property
    def role(self) -> str: ...

    @property
    def purpose(self) -> str: ...


class AccessDenied(PermissionError):
    """Raised before any data is touched; the message names the rule, never the data."""

    def __init__(self, message: str, *, role: str, purpose: str, zone: str, operation: str) -> None:
        super().__init__(message)
        self.role, self.purpose, self.zone, self.operation = role, purpose, zone, operation


def _names(items: Iterable[str]) -> str:
    return ", ".join(sorted(items)) or "none"


def check(policy: Policy, actor: ActorLike, zone: str, operation: str) -> None:
    """Return when ``actor`` may ``operation`` ``zone`` under ``policy``; raise :class:`AccessDenied` if not."""
    role, purpose = actor.role, actor.purpose

    def deny(why: str) -> AccessDenied:
        return AccessDenied(
            f"role {role!r} with purpose {purpose!r} may not {operation} zone {zone!r}: {why}",
            role=role,
            purpose=purpose,
            zone=zone,
            operation=operation,
        )

    if zone not in ZONES:
        raise deny(f"unknown zone; zones are {', '.join(ZONES)}")
    if operation not in OPERATIONS:
        raise deny(f"unknown operation; operations are {', '.join(OPERATIONS)}")
    if purpose in FORBIDDEN.get((zone, operation), frozenset()):
        raise deny(
            f"{purpose} never may, whatever the policy says (a hard rule in governance/access.py); "
            "work from the redacted zone or a dataset version instead"
        )
    if role not in policy.roles:
        raise deny(
            f"the role is not defined in the access policy ({policy.source}); known roles: "
            f"{_names(list(policy.roles))}. Act as one with --as ROLE or VOICELOOP_ROLE"
        )
    allowed_purposes = policy.allowed(zone, operation)
    # Who could do this instead: (role, purpose) pairs the policy allows, minus the hard rules.
    allowed_purposes -= FORBIDDEN.get((zone, operation), frozenset())
    if purpose not in policy.purposes_of(role):
        who = policy.roles_for(purpose)
        raise deny(
            f"the role may not act for purpose {purpose!r} (it may act for {_names(policy.purposes_of(role))}). "
            f"Roles that may act for {purpose!r}: {_names(who)}; act as one with --as ROLE or VOICELOOP_ROLE, "
            f"or add the purpose to roles.{role}.purposes in {policy.source}"
        )
    if purpose not in allowed_purposes:
        own = allowed_purposes & policy.purposes_of(role)
        hint = (
            f"role {role!r} may use purpose {_names(own)} for this"
            if own
            else f"roles that may: {_names({r for p in allowed_purposes for r in policy.roles_for(p)})}"
        )
        raise deny(
            f"purposes allowed to {operation} zone {zone!r}: {_names(allowed_purposes)} ({hint}); "
            f"or change zones.{zone}.{operation} in {policy.source}"
        )
