"""Who is acting: the one resolver every command and the serving runtime use to pick a role.

Order: the ``--as`` flag, then the ``VOICELOOP_ROLE`` environment variable, then the configured
role (``identity.role``, or ``serving.role`` for the server). The role must exist in the access
policy and, when a purpose is named, be allowed to act for it; otherwise this refuses at once,
before any data is touched, naming the roles that may.
"""

from __future__ import annotations

import os

from core.settings import Settings
from governance.policy import PolicyError, load_policy

ROLE_ENV = "VOICELOOP_ROLE"


class RoleRefused(PolicyError):
    """The role may not act for the purpose asked; the message names the roles that may."""


def requested_role(settings: Settings, flag: str | None = None, configured: str | None = None) -> str:
    """The role asked for, unchecked: ``flag``, else ``$VOICELOOP_ROLE``, else ``configured`` (default
    ``identity.role``). Use :func:`resolve_role` to act; this is for recording a refusal.

    A source that is set wins even when empty (``--as ""``, ``VOICELOOP_ROLE=``): an empty role is
    refused like any other undefined one, never taken as "not given". Names are case-sensitive.
    """
    if flag is not None:
        return flag
    env = os.environ.get(ROLE_ENV)
    if env is not None:
        return env
    return configured if configured is not None else settings.identity.role


def resolve_role(settings: Settings, purpose: str | None = None, flag: str | None = None,
                 configured: str | None = None) -> str:
    """The acting role (:func:`requested_role`), checked against the access policy.

    Raises :class:`governance.policy.UnknownRole` for a role the policy does not define and
    :class:`RoleRefused` when it may not act for ``purpose``.
    """
    role = requested_role(settings, flag, configured)
    policy = load_policy(settings.access.policy_file or None)
    policy.require_role(role)
    if purpose is not None and purpose not in policy.purposes_of(role):
        raise RoleRefused(
            f"role {role!r} may not act for purpose {purpose!r}; roles that may: "
            f"{', '.join(policy.roles_for(purpose)) or 'none'} (act as one with --as ROLE or {ROLE_ENV})"
        )
    return role
