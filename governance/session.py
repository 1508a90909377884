"""Open the governed store for an actor: the one way pipeline code gets at call data.

Opening checks who is acting (the role must exist in the access policy; the OS user is
recorded with every entry by :class:`Actor`) and records the policy in force in the audit log
when it changed since the last store was opened. The zones are where ``store.url`` says (empty: the
local folder ``<project_dir>/zones``; else any fsspec URL, with ``store.storage_options`` and the AWS
environment for S3, and a local work area at ``settings.zones_dir``: docs/scale.md).
"""

from __future__ import annotations

from pathlib import Path

from core.settings import Settings
from governance.audit import Actor, open_audit
from governance.crypto import Keyring
from governance.policy import audit_policy, load_policy, require_purpose
from governance.store import GovernedStore
from governance.zone_fs import ZoneFS, open_zone_fs


def open_store(settings: Settings, role: str, purpose: str, flow_run_id: str | None = None) -> GovernedStore:
    """A store acting as ``role`` for ``purpose``; unknown roles or purposes fail here, clearly.

    Raises :class:`governance.policy.PolicyError` (or its ``UnknownRole`` / ``UnknownPurpose``)
    before anything is touched, and :class:`governance.zone_fs.StoreLocationError` when ``store.url`` cannot
    be used (no bucket, no filesystem for the URL).
    """
    policy = load_policy(settings.access.policy_file or None)
    policy.require_role(role)
    require_purpose(purpose)
    audit = open_audit(settings)
    actor = Actor(role=role, purpose=purpose, flow_run_id=flow_run_id)
    audit_policy(audit, actor, policy)
    return GovernedStore(store_location(settings), audit, actor, policy=policy, keyring=Keyring(settings.keys_dir))


def store_location(settings: Settings) -> Path | ZoneFS:
    """The configured zones: the local folder (``store.url`` empty: as always), else the filesystem of the URL."""
    if not settings.store.url:
        return settings.zones_dir
    return open_zone_fs(settings.store.url, settings.zones_dir, settings.store.storage_options)

