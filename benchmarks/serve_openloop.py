"""An open-loop load generator for `voiceloop serve`: requests leave on a Poisson schedule, answered or not.

A closed loop (N clients, each waiting for its answer before the next request) slows down with
the server and never shows overload: it sends less the slower the server gets. Real callers do
not wait for each other, so here each request is sent at its scheduled time, and its latency
counts from that time (a request the generator could not send on time is not excused). Bounded:
at most ``count`` requests, none scheduled after ``max_s`` seconds, each with a client timeout,
to 127.0.0.1 only. Used by benchmarks/serve_capacity.py.
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx
import numpy as np


@dataclass(frozen=True)
class Outcome:
    """One request: when it was due (seconds from the start), how long its answer took from then, and what it was."""

    due_s: float
    seconds: float
    status: int  # 0: no answer (client timeout, connection error)
    reason: str | None = None  # a shed request's reason (the 503's JSON)
    retry_after: str | None = None
    bundle: str | None = None


async def _send(client: httpx.AsyncClient, path: str, body: bytes, due: float, start: float) -> Outcome:
    loop = asyncio.get_running_loop()
    try:
        response = await client.post(path, content=body)
    except httpx.HTTPError:
        return Outcome(due, loop.time() - start - due, 0)
    seconds = loop.time() - start - due
    if response.status_code == 503:
        said = response.json() if response.headers.get("content-type", "").startswith("application/json") else {}
        return Outcome(due, seconds, 503, said.get("reason"), response.headers.get("retry-after"))
    bundle = response.json().get("bundle") if response.status_code == 200 else None
    return Outcome(due, seconds, response.status_code, bundle=bundle)


async def open_loop(url: str, key: str, path: str, body: bytes, rate_rps: float, count: int, max_s: float,
                    timeout_s: float = 10.0, seed: int = 0) -> list[Outcome]:
    """Send ``body`` to ``path`` at Poisson arrivals of ``rate_rps``: ``count`` requests, none due after ``max_s``."""
    if urlsplit(url).hostname != "127.0.0.1":
        raise ValueError(f"{url}: the load generator sends to 127.0.0.1 only")
    arrivals = random.Random(seed)
    loop = asyncio.get_running_loop()
    limits = httpx.Limits(max_connections=count, max_keepalive_connections=count)
    async with httpx.AsyncClient(base_url=url, headers={"X-API-Key": key}, timeout=timeout_s,
                                 limits=limits) as client:
        start, due, sent = loop.time(), 0.0, []
        for _ in range(count):
            due += arrivals.expovariate(rate_rps)
            if due > max_s:
                break
            await asyncio.sleep(max(0.0, start + due - loop.time()))
            sent.append(asyncio.create_task(_send(client, path, body, due, start)))
        return list(await asyncio.gather(*sent))


def _ms(seconds: list[float], q: float) -> float | None:
    return round(float(np.percentile(seconds, q)) * 1000, 1) if seconds else None


def summary(outcomes: list[Outcome], rate_rps: float) -> dict[str, Any]:
    """What a phase did: counts by outcome, the answered requests' p50/p95, the shed ones' p95 and Retry-After."""
    ok = [o.seconds for o in outcomes if o.status == 200]
    shed = [o for o in outcomes if o.status == 503]
    span = max((o.due_s for o in outcomes), default=0.0)
    return {"rate_rps": round(rate_rps, 3), "sent": len(outcomes), "ok": len(ok), "shed": len(shed),
            "no_answer": sum(o.status == 0 for o in outcomes),
            "other": dict(Counter(str(o.status) for o in outcomes if o.status not in (0, 200, 503))),
            "shed_share": round(len(shed) / len(outcomes), 4) if outcomes else None,
            "ok_rps": round(len(ok) / span, 3) if span else None,
            "p50_ms": _ms(ok, 50), "p95_ms": _ms(ok, 95), "max_ms": _ms(ok, 100),
            "shed_p95_ms": _ms([o.seconds for o in shed], 95),
            "shed_reasons": dict(Counter(str(o.reason) for o in shed)),
            "shed_p95_ms_by_reason": {reason: _ms([o.seconds for o in shed if str(o.reason) == reason], 95)
                                      for reason in sorted({str(o.reason) for o in shed})},
            "shed_with_retry_after": sum(o.retry_after is not None for o in shed)}
