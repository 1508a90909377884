"""``/healthz`` and ``/metrics``: for probes and scrapers, no API key, no call content."""

from __future__ import annotations

from fastapi import APIRouter, Response

from serving.schemas import Health
from serving.state import RuntimeDep

router = APIRouter(tags=["operations"])


@router.get("/healthz", response_model=Health, summary="which bundle is serving; no API key needed")
def healthz(runtime: RuntimeDep) -> Health:
    bundle = runtime.champion.current
    challenger = runtime.challenger.current if runtime.challenger else None
    followers = [runtime.champion, *([runtime.challenger] if runtime.challenger else [])]
    return Health(status="ok" if all(f.healthy for f in followers) else "degraded", champion=bundle.version,
                  asr_model=bundle.asr_model, intent_model=bundle.intent is not None, loaded_at=bundle.loaded_at,
                  last_reload_error=runtime.champion.last_error,
                  challenger_error=runtime.challenger.last_error if runtime.challenger else None,
                  shadow_challenger=challenger.version if challenger and runtime.shadow else None)


@router.get("/metrics", summary="Prometheus metrics; no API key needed")
def prometheus(runtime: RuntimeDep) -> Response:
    return Response(runtime.metrics.exposition(), media_type="text/plain; version=0.0.4")
