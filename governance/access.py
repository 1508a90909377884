"""Purpose-bound access to the store's zones.

The default policy below is the foundation's: it binds each zone to the purposes that may
read or write it, so that training can never read raw PII. The governance issue turns it
into a role x zone x purpose policy file; :func:`check` stays the one place that decides.
"""

from __future__ import annotations

from typing import Literal

Zone = Literal["raw", "redacted", "datasets", "quarantine"]
Operation = Literal["read", "write", "delete"]
ZONES: tuple[Zone, ...] = ("raw", "redacted", "datasets", "quarantine")

#: zone -> operation -> purposes allowed
DEFAULT_POLICY: dict[str, dict[str, set[str]]] = {
    "raw": {"read": {"redaction", "qa-review", "erasure"}, "write": {"ingest"}, "delete": {"erasure", "retention"}},
    "redacted": {
        "read": {"validation", "training", "evaluation", "qa-review", "erasure"},
        "write": {"redaction"},
        "delete": {"erasure"},
    },
    "datasets": {"read": {"training", "evaluation", "erasure"}, "write": {"training"}, "delete": {"erasure"}},
    "quarantine": {
        "read": {"qa-review", "erasure"},
        "write": {"ingest", "redaction", "validation"},
        "delete": {"erasure"},
    },
}


class AccessDenied(PermissionError):
    """Raised before any data is touched; the message names the rule, never the data."""


def check(role: str, purpose: str, zone: str, operation: Operation) -> None:
    if zone not in DEFAULT_POLICY:
        raise AccessDenied(f"unknown zone {zone!r}; zones are {', '.join(ZONES)}")
    allowed = DEFAULT_POLICY[zone][operation]
    if purpose not in allowed:
        raise AccessDenied(
            f"role {role!r} with purpose {purpose!r} may not {operation} zone {zone!r} "
            f"(allowed purposes: {', '.join(sorted(allowed))})"
        )
