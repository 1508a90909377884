"""Build the serving runtime from the project's settings: registry, followed bundles, redactor, keys.

Kept apart from the app (serving/app.py) so that tests and benchmarks build the same runtime the
``voiceloop serve`` command does, and so that the app never reads configuration itself.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import TYPE_CHECKING

from serving.admission import Admission
from serving.api_keys import ApiKey, api_keys_path, load_api_keys
from serving.follower import BundleFollower
from serving.metrics import ServingMetrics
from serving.request_audit import RequestAuditor
from serving.sessions import SessionStore
from serving.shadow import ShadowRecorder
from serving.state import Runtime
from training.bundle import ServedBundle, load_bundle

if TYPE_CHECKING:
    from core.settings import Settings
    from training.registry import Registry

PURPOSE = "evaluation"  # what the server does with bundles and requests; it reads no zone of call data
RAW_PURPOSE = "transcription"  # what a key's role needs for raw transcripts (else they are redacted)


@dataclass
class SessionRuntime(Runtime):
    """The runtime with the call sessions behind the handoff packet (serving/sessions.py): what
    :func:`build_runtime` builds, so that ``serving.sessions`` reaches the app and the sweep runs."""

    sessions: SessionStore = field(default_factory=SessionStore)


def _follow(registry: Registry, alias: str, settings: Settings, metrics: ServingMetrics,
            role: str) -> BundleFollower[ServedBundle]:
    """A follower of ``alias``: loads what it points at, swaps on a move, counts and audits each swap."""
    from governance.audit import Actor, open_audit

    work_dir = settings.root / "serving" / "bundles"

    def locate() -> str | None:
        bundle = registry.by_alias(alias)
        return bundle.version if bundle else None

    def load(version: str | None) -> ServedBundle:
        return load_bundle(registry, registry.bundle(version) if version else None, work_dir, settings.asr.window_s,
                           settings.threads or None)

    def swapped(before: str | None, after: str | None) -> None:
        metrics.reloads.labels(alias, "ok").inc()
        metrics.bundle.labels(alias).set(float(after or 0))
        open_audit(settings).append(Actor(role=role, purpose=PURPOSE), "serving.bundle-swap",
                                    detail={"alias": alias, "before": before, "after": after})

    def failed(stage: str, _error: Exception) -> None:
        metrics.follower_errors.labels(alias, stage).inc()
        if stage == "load":
            metrics.reloads.labels(alias, "failed").inc()

    follower = BundleFollower(locate, load, swapped, failed)
    metrics.bundle.labels(alias).set(float(follower.version or 0))
    metrics.follower_healthy.labels(alias).set_function(lambda: float(follower.healthy))
    return follower


def resolve_keys(settings: Settings, keys: tuple[ApiKey, ...], server_role: str) -> tuple[ApiKey, ...]:
    """Each key with its role checked against the access policy (a bare key takes the server's role).

    A role the policy does not define, or one that holds neither ``evaluation`` nor ``transcription``,
    is refused at start (ValueError naming the key, never its secret).
    """
    from governance.policy import load_policy

    policy = load_policy(settings.access.policy_file or None)
    resolved = []
    for key in keys:
        role = key.role or server_role
        if role not in policy.roles:
            raise ValueError(f"API key {key.name!r}: role {role!r} is not in the access policy; roles: "
                             f"{', '.join(sorted(policy.roles))}")
        if not {PURPOSE, RAW_PURPOSE} & policy.purposes_of(role):
            raise ValueError(f"API key {key.name!r}: role {role!r} may act neither for {PURPOSE} nor for "
                             f"{RAW_PURPOSE}; give the key a role that may (e.g. serving, or voice-bot)")
        resolved.append(replace(key, role=role))
    return tuple(resolved)


def _request_auditor(settings: Settings, metrics: ServingMetrics) -> RequestAuditor:
    """Requests into the audit trail as ``serving.requests`` entries, one per key, purpose and endpoint."""
    from governance.audit import Actor, open_audit

    def write(group: tuple[str, str, str, str], count: int, since: datetime, until: datetime) -> None:
        name, role, purpose, endpoint = group
        open_audit(settings).append(Actor(role=role, purpose=purpose, user=f"api-key:{name}"), "serving.requests",
                                    detail={"key": name, "endpoint": endpoint, "count": count,
                                            "from": since.isoformat(), "to": until.isoformat()})

    return RequestAuditor(write, on_failure=lambda _error: metrics.request_audit_failures.inc())


def build_runtime(settings: Settings, shadow: bool | None = None, keys: tuple[ApiKey, ...] | None = None,
                  as_role: str | None = None) -> SessionRuntime:
    """Load the champion (and with ``shadow``, the challenger) bundle, the redactor and the API keys
    (``keys``: already loaded with :func:`serving.api_keys.load_api_keys`).

    The server acts as ``as_role``, else ``$VOICELOOP_ROLE``, else ``serving.role``; a role the policy
    does not define, or one that may not act for evaluation, is refused before anything loads, and so
    is a key whose role is not fit to serve (:func:`resolve_keys`).
    """
    from governance.identity import resolve_role
    from governance.policy import load_policy
    from governance.redaction.redactor import Redactor
    from training.registry import CHALLENGER, CHAMPION, Registry

    role = resolve_role(settings, PURPOSE, as_role, settings.serving.role)
    if keys is None:
        keys, _source = load_api_keys(api_keys_path(settings.keys_dir, settings.serving.api_keys_file))
    keys = resolve_keys(settings, keys, role)
    policy = load_policy(settings.access.policy_file or None)
    registry = Registry(settings)
    metrics = ServingMetrics()
    shadow = settings.serving.shadow if shadow is None else shadow
    return SessionRuntime(
        champion=_follow(registry, CHAMPION, settings, metrics, role),
        redactor=Redactor(settings.redaction, entities=settings.redaction.entities),
        keys=keys,
        metrics=metrics,
        max_audio_s=settings.serving.max_audio_s,
        max_upload_bytes=int(settings.serving.max_upload_mb * 1024 * 1024),
        challenger=_follow(registry, CHALLENGER, settings, metrics, role) if shadow else None,
        shadow=ShadowRecorder(settings.root / "serving" / "shadow.jsonl", metrics) if shadow else None,
        raw_roles=frozenset(r for r in {k.role for k in keys} if RAW_PURPOSE in policy.purposes_of(r)),
        requests=_request_auditor(settings, metrics),
        sessions=SessionStore(settings.serving.sessions, metrics),
        admission=Admission(settings.serving.admission, metrics),
    )


def start_following(runtime: Runtime, every_s: float) -> None:
    """Start the alias followers, the request audit's batching thread and the call sessions' sweep."""
    runtime.champion.start(every_s)
    if isinstance(runtime, SessionRuntime):
        runtime.sessions.start()
    if runtime.challenger is not None:
        runtime.challenger.start(every_s)
    if runtime.requests is not None:
        runtime.requests.start()


def stop_following(runtime: Runtime) -> None:
    """Stop them; the requests counted since the last batch are written to the audit trail now."""
    runtime.champion.stop()
    if isinstance(runtime, SessionRuntime):
        runtime.sessions.stop()
    if runtime.challenger is not None:
        runtime.challenger.stop()
    if runtime.requests is not None:
        runtime.requests.stop()
