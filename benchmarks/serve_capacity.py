"""What one serving process on one core answers, and how it behaves past that: the figures behind docs/serving.md,
"Capacity" (issue 20: serving at 10x, with graceful overload).

Starts `voiceloop serve --cores S` (the server alone on core S, one CTranslate2 thread) on a project
whose registry has a champion bundle, runs this process (the load generator) on core G, and sends
`/v1/process` requests of a 5-second utterance (the first 5 s of the shipped real recording
vosk_digits.wav) open loop, at Poisson arrivals (benchmarks/serve_openloop.py), to 127.0.0.1 only,
with a 10 s client timeout. One JSON line per figure:

1. ``serve_capacity``: the highest rate with p95 under 500 ms, at most 1% shed and every request
   answered. Rates double from ``--start-rps`` until one fails, then ``--search-steps`` bisections;
   each probe lasts ``--probe-s``.
2. ``serve_overload`` phases of ``--phase-s`` each, back to back: 0.5x and 1x capacity (p95 < 500 ms
   expected, nothing shed), 2x (the excess shed with 503 + Retry-After within 50 ms, the accepted
   requests' p95 < 1 s), then 0.5x again (recovered: p95 < 500 ms, nothing shed).
3. ``serve_memory``: the server's RSS over ``--soak-s`` seconds at 0.8x capacity, after ``--warmup-s``
   at that rate; growth under 50 MB expected.

Each line says the bar and whether it was met, and the load average: figures from a machine
running anything else are not the server's. The server runs with the admission settings given
here (``--max-inflight`` ... : ``VOICELOOP__SERVING__ADMISSION__*``), the recommendation for one
process per core.

    .venv/bin/python benchmarks/serve_capacity.py --project-dir P                    # the full run, ~25 min
    .venv/bin/python benchmarks/serve_capacity.py --project-dir P --probe-s 8 --search-steps 1 \\
        --phase-s 10 --warmup-s 5 --soak-s 20                                         # a check of the script
    .venv/bin/python benchmarks/serve_capacity.py --project-dir P --capacity-rps C --soak-s 0
                                                        # the overload phases alone, at a measured capacity
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from common import emit  # benchmarks/common.py
from serve_load import KEY, _free_port, five_second_utterance, start_server
from serve_openloop import Outcome, open_loop, summary

from serving.workers import pin

P95_BUDGET_MS, OVERLOAD_P95_MS, SHED_WITHIN_MS, RSS_GROWTH_MB = 500.0, 1000.0, 50.0, 50.0
MAX_SHED_SHARE = 0.01  # a rate is within capacity if at most this share is shed (the door sheds a burst's edge)


class Load:
    """The running server and how to send it a phase of traffic."""

    def __init__(self, url: str, audio: bytes, timeout_s: float) -> None:
        self.url, self.audio, self.timeout_s = url, audio, timeout_s
        self.phases = 0

    def run(self, rate_rps: float, seconds: float) -> list[Outcome]:
        self.phases += 1
        count = max(1, round(rate_rps * seconds))
        return asyncio.run(open_loop(self.url, KEY, "/v1/process", self.audio, rate_rps, count, seconds,
                                     self.timeout_s, seed=self.phases))


def within_capacity(figures: dict[str, Any]) -> bool:
    return (figures["no_answer"] == 0 and not figures["other"] and figures["p95_ms"] is not None
            and figures["p95_ms"] < P95_BUDGET_MS and figures["shed_share"] <= MAX_SHED_SHARE)


def search_capacity(load: Load, start_rps: float, steps: int, probe_s: float, max_rps: float) -> float:
    """The highest rate found within capacity (0.0 if no rate tried was)."""

    def probe(rate: float) -> bool:
        figures = summary(load.run(rate, probe_s), rate)
        within = within_capacity(figures)
        emit(figure="serve_capacity_probe", within=within, **figures, loadavg=_loadavg())
        return within

    good, bad, rate = 0.0, None, start_rps
    while rate <= max_rps:  # double until a rate fails
        if not probe(rate):
            bad = rate
            break
        good, rate = rate, rate * 2
    for _ in range(steps if bad is not None else 0):  # then bisect between the last good and the first bad
        assert bad is not None
        rate = (good + bad) / 2
        if probe(rate):
            good = rate
        else:
            bad = rate
    return good


def overload_phases(load: Load, capacity_rps: float, seconds: float) -> None:
    bars: list[tuple[str, float, Callable[[dict[str, Any]], bool], str]] = [
        ("0.5x", 0.5, within_capacity, "p95 < 500 ms, <= 1% shed, all answered"),
        ("1x", 1.0, within_capacity, "p95 < 500 ms, <= 1% shed, all answered"),
        ("2x", 2.0, _sheds_gracefully, "excess shed: 503 + Retry-After, shed p95 < 50 ms; accepted p95 < 1 s"),
        ("0.5x after 2x", 0.5, within_capacity, "recovered: p95 < 500 ms, <= 1% shed, all answered"),
    ]
    for name, factor, met, bar in bars:
        figures = summary(load.run(capacity_rps * factor, seconds), capacity_rps * factor)
        emit(figure="serve_overload", phase=name, bar=bar, met=met(figures), **figures, loadavg=_loadavg())


def _sheds_gracefully(figures: dict[str, Any]) -> bool:
    return (figures["shed"] > 0 and figures["shed_with_retry_after"] == figures["shed"]
            and figures["shed_p95_ms"] < SHED_WITHIN_MS and figures["no_answer"] == 0
            and figures["p95_ms"] is not None and figures["p95_ms"] < OVERLOAD_P95_MS)


def memory_soak(load: Load, pid: int, rate_rps: float, warmup_s: float, soak_s: float) -> None:
    """The server's RSS before and after ``soak_s`` seconds of traffic (after a warm-up at the same rate)."""
    load.run(rate_rps, warmup_s)
    before, started = _rss_mb(pid), time.monotonic()
    figures = summary(load.run(rate_rps, soak_s), rate_rps)
    after = _rss_mb(pid)
    emit(figure="serve_memory", rate_rps=round(rate_rps, 3), warmup_s=warmup_s, soak_s=soak_s,
         wall_s=round(time.monotonic() - started, 1), requests=figures["sent"], ok=figures["ok"],
         rss_before_mb=before, rss_after_mb=after, growth_mb=round(after - before, 1),
         bar=f"growth < {RSS_GROWTH_MB:g} MB", met=after - before < RSS_GROWTH_MB, loadavg=_loadavg())


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    raise RuntimeError(f"no VmRSS for process {pid}")


def _allowed_cores(pid: int) -> str:
    return next(line.split(":", 1)[1].strip() for line in Path(f"/proc/{pid}/status").read_text().splitlines()
                if line.startswith("Cpus_allowed_list:"))


def _loadavg() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--project-dir", type=Path, required=True, help="a project with a champion bundle")
    cores = sorted(os.sched_getaffinity(0))
    parser.add_argument("--server-core", type=int, default=cores[0], help="the core the server runs on alone")
    parser.add_argument("--client-core", type=int, default=cores[-1], help="the core of this load generator")
    parser.add_argument("--capacity-rps", type=float, help="skip the search: run the overload phases and the soak "
                        "at this capacity (one a full run measured)")
    parser.add_argument("--start-rps", type=float, default=1.0, help="the first rate the capacity search tries")
    parser.add_argument("--max-rps", type=float, default=64.0, help="the search stops doubling here")
    parser.add_argument("--search-steps", type=int, default=4, help="bisections after the first failing rate")
    parser.add_argument("--probe-s", type=float, default=30.0, help="seconds of traffic per capacity probe")
    parser.add_argument("--phase-s", type=float, default=60.0, help="seconds of each overload phase")
    parser.add_argument("--warmup-s", type=float, default=60.0, help="traffic before the memory soak")
    parser.add_argument("--soak-s", type=float, default=600.0, help="seconds of the memory soak (10 minutes)")
    parser.add_argument("--timeout-s", type=float, default=10.0, help="the client timeout of every request")
    parser.add_argument("--max-inflight", type=int, default=1, help="serving.admission.max_inflight")
    parser.add_argument("--max-queue", type=int, default=16, help="serving.admission.max_queue")
    parser.add_argument("--queue-timeout-s", type=float, default=0.5, help="serving.admission.queue_timeout_s")
    args = parser.parse_args()
    if args.server_core == args.client_core:
        parser.error("the server and the load generator need a core each (--server-core, --client-core)")
    admission = {"max_inflight": args.max_inflight, "max_queue": args.max_queue,
                 "queue_timeout_s": args.queue_timeout_s}
    port = _free_port()
    server = start_server(args.project_dir, port, args=("--cores", str(args.server_core)),
                          env={f"VOICELOOP__SERVING__ADMISSION__{k.upper()}": str(v) for k, v in admission.items()})
    pin([args.client_core])  # after the server started: it pins itself, from this process's cores
    try:
        load = Load(f"http://127.0.0.1:{port}", five_second_utterance(), args.timeout_s)
        load.run(2.0, 3.0)  # warm-up: the first requests load what is loaded lazily
        emit(figure="serve_capacity_setup", server_cores=_allowed_cores(server.pid),
             client_cores=_allowed_cores(os.getpid()), admission=admission, cpus=os.cpu_count(), loadavg=_loadavg())
        capacity = args.capacity_rps or search_capacity(load, args.start_rps, args.search_steps, args.probe_s,
                                                        args.max_rps)
        emit(figure="serve_capacity", per_core_rps=round(capacity, 3), bar=f"p95 < {P95_BUDGET_MS:g} ms",
             given=args.capacity_rps is not None, loadavg=_loadavg())
        if not capacity:
            raise SystemExit(f"not even {args.start_rps} request/s had p95 < {P95_BUDGET_MS:g} ms: no capacity to "
                             "run the overload phases at (a loaded machine?)")
        overload_phases(load, capacity, args.phase_s)
        if args.soak_s > 0:
            memory_soak(load, server.pid, 0.8 * capacity, args.warmup_s, args.soak_s)
    finally:
        server.terminate()
        server.wait(timeout=60)


if __name__ == "__main__":
    main()
