"""Open the governed store for an actor: the one way pipeline code gets at call data."""

from __future__ import annotations

import secrets
from pathlib import Path

from governance.audit import Actor, AuditLog
from governance.store import GovernedStore
from voiceloop.config import Settings


def open_store(settings: Settings, role: str, purpose: str, flow_run_id: str | None = None) -> GovernedStore:
    audit = AuditLog(settings.audit_url)
    return GovernedStore(settings.zones_dir, audit, Actor(role=role, purpose=purpose, flow_run_id=flow_run_id))


def pseudonym_salt(settings: Settings) -> str:
    """A per-installation secret, so caller pseudonyms cannot be reversed by hashing guesses."""
    path: Path = settings.keys_dir / "pseudonym.key"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_hex(32))
        path.chmod(0o600)
    return path.read_text().strip()
