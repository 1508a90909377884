"""The gate's intent groups: ten slices of related BANKING77 intents, where per-intent tests cannot see anything.

Why and how they are cut: training/intent_groups.yaml. An intent the file does not list falls into
:data:`OTHER`.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

import yaml

GROUPS_FILE = Path(__file__).with_name("intent_groups.yaml")
OTHER = "other"


@cache
def intent_groups() -> dict[str, str]:
    """Intent -> group, as shipped; refuses a file that puts one intent in two groups."""
    groups: dict[str, list[str]] = yaml.safe_load(GROUPS_FILE.read_text(encoding="utf-8"))
    out: dict[str, str] = {}
    for group, intents in groups.items():
        for intent in intents:
            if intent in out:
                raise ValueError(f"{GROUPS_FILE.name}: {intent!r} is in both {out[intent]!r} and {group!r}")
            out[intent] = group
    return out


def group_of(intent: str) -> str:
    """The intent's group, or ``other`` for an intent the groups do not list."""
    return intent_groups().get(intent, OTHER)
