"""Build the serving runtime from the project's settings: registry, followed bundles, redactor, keys.

Kept apart from the app (serving/app.py) so that tests and benchmarks build the same runtime the
``voiceloop serve`` command does, and so that the app never reads configuration itself.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from serving.api_keys import api_keys_path, load_api_keys
from serving.follower import BundleFollower
from serving.metrics import ServingMetrics
from serving.shadow import ShadowRecorder
from serving.state import Runtime
from training.bundle import ServedBundle, load_bundle

if TYPE_CHECKING:
    from core.settings import Settings
    from training.registry import Registry

PURPOSE = "evaluation"  # what the server does with bundles; it reads no zone of call data


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

    follower = BundleFollower(locate, load, swapped, lambda _error: metrics.reloads.labels(alias, "failed").inc())
    metrics.bundle.labels(alias).set(float(follower.version or 0))
    return follower


def build_runtime(settings: Settings, shadow: bool | None = None, keys: frozenset[str] | None = None,
                  as_role: str | None = None) -> Runtime:
    """Load the champion (and with ``shadow``, the challenger) bundle, the redactor and the API keys
    (``keys``: already loaded with :func:`serving.api_keys.load_api_keys`).

    The server acts as ``as_role``, else ``$VOICELOOP_ROLE``, else ``serving.role``; a role the policy
    does not define, or one that may not act for evaluation, is refused before anything loads.
    """
    from governance.identity import resolve_role
    from governance.redaction.redactor import Redactor
    from training.registry import CHALLENGER, CHAMPION, Registry

    role = resolve_role(settings, PURPOSE, as_role, settings.serving.role)
    registry = Registry(settings)
    metrics = ServingMetrics()
    if keys is None:
        keys, _source = load_api_keys(api_keys_path(settings.keys_dir, settings.serving.api_keys_file))
    shadow = settings.serving.shadow if shadow is None else shadow
    return Runtime(
        champion=_follow(registry, CHAMPION, settings, metrics, role),
        redactor=Redactor(settings.redaction, entities=settings.redaction.entities),
        keys=keys,
        metrics=metrics,
        max_audio_s=settings.serving.max_audio_s,
        max_upload_bytes=int(settings.serving.max_upload_mb * 1024 * 1024),
        challenger=_follow(registry, CHALLENGER, settings, metrics, role) if shadow else None,
        shadow=ShadowRecorder(settings.root / "serving" / "shadow.jsonl", metrics) if shadow else None,
    )


def start_following(runtime: Runtime, every_s: float) -> None:
    runtime.champion.start(every_s)
    if runtime.challenger is not None:
        runtime.challenger.start(every_s)


def stop_following(runtime: Runtime) -> None:
    runtime.champion.stop()
    if runtime.challenger is not None:
        runtime.challenger.stop()
