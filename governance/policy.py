"""The access policy: which roles may act for which purposes, and what each purpose may do to each zone.

The rules live in a YAML file (the shipped ``governance/policy.yaml``, or ``access.policy_file``)
so that compliance can read and change them without reading code. Loading is strict, because a
typo in a policy is a security bug: unknown keys, unknown purposes and rules that break a hard
invariant (training reading raw call data) all fail with the file and the key at fault.

Policy changes are evidence: :func:`audit_policy` compares the loaded file with the last one
recorded in the audit log and appends ``policy.loaded`` / ``policy.changed`` with both digests,
what changed and the full rules now in force, so the log alone says which policy applied when.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError, create_model

from core.yaml_text import parse_yaml

if TYPE_CHECKING:
    from governance.audit import Actor, AuditEntry, AuditLog

SHIPPED_POLICY = Path(__file__).with_name("policy.yaml")

#: The store's zones: the one list (folders, policy file sections, erasure, access checks follow it).
Zone = Literal["raw", "redacted", "datasets", "quarantine", "monitoring", "labels"]
ZONES: tuple[str, ...] = get_args(Zone)
#: The zone whose versions are whole datasets, not per-call documents.
DATASETS_ZONE: Zone = "datasets"
#: The zones of per-call documents: what a caller's footprint spans, deleted call by call.
CALL_ZONES: tuple[str, ...] = tuple(zone for zone in ZONES if zone != DATASETS_ZONE)
Operation = Literal["read", "write", "delete"]
OPERATIONS: tuple[str, ...] = get_args(Operation)
#: Why data is touched. The code asks for these by name, so the set is closed here; the policy
#: file decides who may act for each one and what each one may do.
Purpose = Literal[
    "ingest",
    "redaction",
    "validation",
    "training",
    "evaluation",
    "qa-review",
    "audit",
    "erasure",
    "withdrawal",  # consent withdrawn: the calls leave every dataset (and, when consent.on_withdrawal says, the zones)
    "retention",
    "key-rotation",
    "promotion",  # moving the serving bundle's aliases by hand (promote --bundle, rollback): no zone access
    "transcription",  # raw (unredacted) transcripts from the serving runtime's /v1/transcribe: no zone access
    "monitoring",  # service-quality monitoring of every call (consent to training or not): numbers, never text
    "labelling",  # the weekly QA review: sample calls, show reviewers redacted calls, keep what they label
]
PURPOSES: tuple[str, ...] = get_args(Purpose)

#: (zone, operation) -> purposes that no policy may ever be granted. Checked when a policy is
#: loaded and again by :func:`governance.access.check` on every access, so neither a hostile
#: policy file nor a hand-built :class:`Policy` can let a model see raw call data.
FORBIDDEN: dict[tuple[str, str], frozenset[str]] = {("raw", "read"): frozenset({"training"})}

RoleName = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9-]{0,63}$")]


class PolicyError(ValueError):
    """The policy file is missing, unreadable or breaks a rule; the message names the file and key."""


class UnknownRole(PolicyError):
    """A role the policy does not define; the message lists the roles it does."""


class UnknownPurpose(PolicyError):
    """A purpose the code does not know; the message lists the purposes it does."""


# -- file schema ------------------------------------------------------------------------------
class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _RoleRule(_Strict):
    description: str = ""
    purposes: list[Purpose]


class _ZoneRule(_Strict):
    read: list[Purpose] = []
    write: list[Purpose] = []
    delete: list[Purpose] = []


#: What the monitor's alerts are about; each has an owner (``owners`` in the policy).
Component = Literal["asr", "intent", "redaction", "serving", "service"]
COMPONENTS: tuple[str, ...] = get_args(Component)


class Owner(_Strict):
    """Who answers for a component (on a slice, or ``all``): a team, and the on-call receiver alerts go to.

    ``receiver``: a webhook URL Alertmanager posts to (empty: alerts are kept and listed, not sent);
    ``escalation``: where a critical alert goes when nobody acknowledged it in time.
    """

    component: Component
    slice: str = "all"
    team: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")]
    receiver: str = ""
    escalation: str = ""


#: Zones added after policy files were first written: a file without their section grants nothing on them.
_LATER_ZONES = ("monitoring", "labels")
#: One section per zone, made from ZONES so that a new zone is added in one place.
_Zones = create_model("_Zones", __base__=_Strict, **{  # type: ignore[call-overload]
    zone: (_ZoneRule, _ZoneRule() if zone in _LATER_ZONES else ...) for zone in ZONES})


class _PolicyFile(_Strict):
    version: Literal[1]
    roles: dict[RoleName, _RoleRule] = Field(min_length=1)
    zones: _Zones  # type: ignore[valid-type]  # a model built from ZONES above
    owners: list[Owner] = []


# -- the loaded policy --------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class Policy:
    """A validated policy: role -> purposes, and (zone, operation) -> purposes allowed."""

    source: str
    digest: str  # sha256 of the file's bytes: any edit, comments included, is a new policy
    roles: Mapping[str, frozenset[str]]
    grants: Mapping[tuple[str, str], frozenset[str]]
    owners: tuple[Owner, ...] = ()

    def owner_of(self, component: str, slice_name: str = "all") -> Owner | None:
        """The owner of ``component`` on ``slice_name``: the slice's own, else the component's (slice ``all``)."""
        mine = [o for o in self.owners if o.component == component]
        return next((o for o in mine if o.slice == slice_name), None) or next(
            (o for o in mine if o.slice == "all"), None)

    def purposes_of(self, role: str) -> frozenset[str]:
        return self.roles.get(role, frozenset())

    def allowed(self, zone: str, operation: str) -> frozenset[str]:
        return self.grants.get((zone, operation), frozenset())

    def roles_for(self, purpose: str) -> list[str]:
        return sorted(role for role, purposes in self.roles.items() if purpose in purposes)

    def require_role(self, role: str) -> None:
        if role not in self.roles:
            raise UnknownRole(
                f"unknown role {role!r}: the access policy ({self.source}) defines {', '.join(sorted(self.roles))}; "
                "act as one of them with --as ROLE, VOICELOOP_ROLE or identity.role in params.yaml"
            )

    def rules(self) -> dict[str, Any]:
        """The rules as plain sorted JSON: what the audit log records and diffs."""
        return {
            "roles": {role: sorted(purposes) for role, purposes in sorted(self.roles.items())},
            "zones": {
                zone: {operation: sorted(self.allowed(zone, operation)) for operation in OPERATIONS}
                for zone in ZONES
            },
        }

    @property
    def rules_digest(self) -> str:
        return hashlib.sha256(json.dumps(self.rules(), sort_keys=True).encode()).hexdigest()


def require_purpose(purpose: str) -> None:
    if purpose not in PURPOSES:
        raise UnknownPurpose(f"unknown purpose {purpose!r}; purposes are {', '.join(PURPOSES)}")


def _where(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def parse_policy(text: str, source: str) -> Policy:
    """Validate policy YAML; every problem is reported as ``source: key: what is wrong``."""
    data = parse_yaml(text, source, PolicyError)
    try:
        parsed = _PolicyFile.model_validate(data)
    except ValidationError as error:
        problems = "; ".join(f"{_where(e['loc'])}: {e['msg']}" for e in error.errors())
        raise PolicyError(f"{source}: invalid access policy: {problems}") from None
    grants: dict[tuple[str, str], frozenset[str]] = {}
    for zone in ZONES:
        rule: _ZoneRule = getattr(parsed.zones, zone)
        for operation in OPERATIONS:
            purposes = frozenset(getattr(rule, operation))
            banned = purposes & FORBIDDEN.get((zone, operation), frozenset())
            if banned:
                raise PolicyError(
                    f"{source}: zones.{zone}.{operation}: grants {', '.join(sorted(banned))}, but "
                    f"{' and '.join(sorted(banned))} may never {operation} the {zone} zone (a hard rule of "
                    "governance/access.py that no policy can override); remove it"
                )
            grants[(zone, operation)] = purposes
    roles = {name: frozenset(rule.purposes) for name, rule in parsed.roles.items()}
    return Policy(source=source, digest=hashlib.sha256(text.encode()).hexdigest(), roles=roles, grants=grants,
                  owners=tuple(parsed.owners))


def load_policy(path: str | Path | None = None) -> Policy:
    """Load ``path`` (``access.policy_file``), or the shipped policy when it is empty or None."""
    file = Path(path).expanduser() if path else SHIPPED_POLICY
    try:
        text = file.read_text()
    except FileNotFoundError:
        raise PolicyError(
            f"{file}: access policy file not found; fix access.policy_file in params.yaml "
            "(or VOICELOOP__ACCESS__POLICY_FILE), or leave it empty for the shipped policy"
        ) from None
    except (OSError, UnicodeDecodeError) as error:
        raise PolicyError(f"{file}: access policy file cannot be read ({type(error).__name__})") from None
    return parse_policy(text, str(file))


# -- policy changes are audited ------------------------------------------------------------------
def diff_rules(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """Short, human-readable changes between two :meth:`Policy.rules` dicts."""
    changes: list[str] = []
    old_roles, new_roles = old.get("roles", {}), new.get("roles", {})
    for role in sorted(set(old_roles) | set(new_roles)):
        if role not in old_roles:
            changes.append(f"role {role} added: {', '.join(new_roles[role]) or 'no purposes'}")
        elif role not in new_roles:
            changes.append(f"role {role} removed")
        else:
            changes += _set_change(f"roles.{role}", old_roles[role], new_roles[role])
    old_zones, new_zones = old.get("zones", {}), new.get("zones", {})
    for zone in ZONES:
        for operation in OPERATIONS:
            before = old_zones.get(zone, {}).get(operation, [])
            after = new_zones.get(zone, {}).get(operation, [])
            changes += _set_change(f"zones.{zone}.{operation}", before, after)
    return changes


def _set_change(key: str, before: list[str], after: list[str]) -> list[str]:
    added, removed = sorted(set(after) - set(before)), sorted(set(before) - set(after))
    parts = [f"+{p}" for p in added] + [f"-{p}" for p in removed]
    return [f"{key}: {' '.join(parts)}"] if parts else []


def last_policy_entry(audit: AuditLog) -> AuditEntry | None:
    last: AuditEntry | None = None
    for action in ("policy.loaded", "policy.changed"):
        for entry in audit.entries(action=action):
            if last is None or entry.id > last.id:
                last = entry
    return last


def audit_policy(audit: AuditLog, actor: Actor, policy: Policy) -> AuditEntry | None:
    """Record the policy in force when it differs from the last one the audit log knows.

    Returns the new entry (``policy.loaded`` the first time, ``policy.changed`` after an edit),
    or None when the policy is the one already recorded.
    """
    last = last_policy_entry(audit)
    previous = dict(last.detail) if last is not None else {}
    if previous.get("digest") == policy.digest:
        return None
    rules = policy.rules()
    detail: dict[str, Any] = {"file": policy.source, "digest": policy.digest, "rules_digest": policy.rules_digest}
    if last is None:
        return audit.append(actor, "policy.loaded", detail={**detail, "rules": rules})
    old_rules = previous.get("rules")
    changes = diff_rules(old_rules, rules) if isinstance(old_rules, dict) else ["previous rules not recorded"]
    detail.update(
        previous_digest=previous.get("digest"),
        previous_file=previous.get("file"),
        changes=changes or ["no rule changed (comments or formatting only)"],
        rules=rules,
    )
    return audit.append(actor, "policy.changed", detail=detail)
