"""Open the governed store for an actor: the one way pipeline code gets at call data.

Opening checks who is acting (the role must exist in the access policy; the OS user is
recorded with every entry by :class:`Actor`) and records the policy in force in the audit log
when it changed since the last store was opened.
"""

from __future__ import annotations

from core.settings import Settings
from governance.audit import Actor, open_audit
from governance.crypto import Keyring
from governance.policy import audit_policy, load_policy, require_purpose
from governance.store import GovernedStore


def open_store(settings: Settings, role: str, purpose: str, flow_run_id: str | None = None) -> GovernedStore:
    """A store acting as ``role`` for ``purpose``; unknown roles or purposes fail here, clearly.

    Raises :class:`governance.policy.PolicyError` (or its ``UnknownRole`` / ``UnknownPurpose``)
    before anything is touched.
    """
    policy = load_policy(settings.access.policy_file or None)
    policy.require_role(role)
    require_purpose(purpose)
    audit = open_audit(settings)
    actor = Actor(role=role, purpose=purpose, flow_run_id=flow_run_id)
    audit_policy(audit, actor, policy)
    return GovernedStore(settings.zones_dir, audit, actor, policy=policy, keyring=Keyring(settings.keys_dir))

