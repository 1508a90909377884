"""Moving the champion by hand: a manual promotion that overrides the gate, and a rollback.

The gate moves the ``champion`` alias on evidence (training/promotion.py). A person may move it
too, but only with a reason, and only to a bundle that may serve: one trained on calls that were
erased since (``voiceloop.retrain_required``) is refused, whichever way it is asked for. Who may
do this is the access policy's business (purpose ``promotion``; the ``admin`` role in the shipped
policy) and the command's (voiceloop/cli_registry.py), which also writes the audit entry.

A rollback makes ``previous`` the champion again, and the bundle it replaces becomes
``previous``: rolling back twice undoes the first rollback, as the aliases always say which
bundle the champion replaced.
"""

from __future__ import annotations

from typing import Any

from training.registry import CHAMPION, PREVIOUS, RETRAIN_REQUIRED_TAG, AliasMove, Registry, UnknownVersion


class RolloutRefused(ValueError):
    """The move was not made; the message says why and what to do instead."""


def _reason(reason: str | None) -> str:
    text = (reason or "").strip()
    if not text:
        raise RolloutRefused("a reason is required (--reason \"...\"): it is kept with the move and in the audit log")
    return text


def _servable(registry: Registry, version: str, what: str) -> tuple[str, dict[str, str]]:
    """The bundle version as the registry numbers it ("01" is 1) and its tags; refused when it does not
    exist or was trained on erased calls."""
    try:
        version = registry.version(version)
    except UnknownVersion as unknown:
        raise RolloutRefused(str(unknown)) from None
    tags = dict(registry.client.get_model_version(registry.bundle_name, version).tags or {})
    if tags.get(RETRAIN_REQUIRED_TAG):
        raise RolloutRefused(
            f"{what} bundle v{version} was trained on calls erased since (erasure {tags[RETRAIN_REQUIRED_TAG]}); "
            "it may not serve again: retrain (voiceloop retrain) and let the gate judge the new bundle"
        )
    return version, tags


def promote_by_hand(registry: Registry, version: str, reason: str | None, by: str) -> AliasMove:
    """Make bundle ``version`` the champion regardless of its gate verdict, with ``reason`` on record.

    Promoting the champion is refused, not a quiet no-op: the caller asked for a change that would
    not happen, and a refusal says so in the exit code and the audit log (``previous`` is kept).
    """
    reason = _reason(reason)
    version, tags = _servable(registry, version, "the")
    champion = registry.by_alias(CHAMPION)
    if champion is not None and champion.version == version:
        raise RolloutRefused(f"bundle v{version} is the champion already: nothing to promote "
                             "(`voiceloop history` shows how it got there)")
    verdict = tags.get("gate.verdict")
    evidence: dict[str, Any] = {"gate_verdict": verdict, "override": verdict != "promote"}
    if tags.get("gate.reasons"):
        evidence["gate_reasons"] = tags["gate.reasons"]
    return registry.move_champion(version, action="manual.promote", by=by, reason=reason, evidence=evidence)


def rollback(registry: Registry, reason: str | None, by: str) -> AliasMove:
    """Make the ``previous`` bundle the champion again; the one it replaces becomes ``previous``."""
    reason = _reason(reason)
    previous = registry.by_alias(PREVIOUS)
    if previous is None:
        raise RolloutRefused("nothing to roll back to: no bundle has the 'previous' alias "
                             "(the champion is the first one ever promoted)")
    champion = registry.by_alias(CHAMPION)
    if champion is not None and champion.version == previous.version:  # left so by an old "promote --bundle 01"
        raise RolloutRefused(f"nothing to roll back to: the 'previous' alias names the champion itself "
                             f"(v{champion.version}); promote the bundle you want by its number "
                             "(voiceloop history lists them)")
    _servable(registry, previous.version, "the previous")
    evidence = {"rolled_back": champion.version if champion else None}
    return registry.move_champion(previous.version, action="rollback", by=by, reason=reason, evidence=evidence)
