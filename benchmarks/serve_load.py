"""Latency and throughput of `voiceloop serve`, measured by a load generator in another process.

Starts `voiceloop serve` (a subprocess) on a project whose registry has a champion bundle, waits
for /healthz, and drives it over HTTP from this process:

- one client, ``/v1/understand`` (a BANKING77-style sentence): p50 and p95;
- one client, ``/v1/process`` of a 5-second utterance (the first 5 s of the shipped real recording
  data/sample/speech_fixtures/vosk_digits.wav): p50 and p95 (end of speech to response);
- four concurrent clients, ``/v1/process`` of the same utterance: throughput and p95.

Every request must succeed (the script fails otherwise): the server's admission control is set wide open
(``NO_SHEDDING``); benchmarks/serve_capacity.py measures capacity and overload. One JSON line per figure.

``--audit-cost RUNS`` measures instead what auditing every request costs (serving/request_audit.py):
RUNS pairs of one-client ``/v1/process`` runs, each on a fresh server of this script (the runtime
``voiceloop serve`` builds, with or without its request auditor), the order alternating within
pairs; the figure is the median of the runs' p50 and p95 with and without, and their ratio.

    .venv/bin/python benchmarks/serve_load.py --project-dir .voiceloop      # after `make demo`
    .venv/bin/python benchmarks/serve_load.py --project-dir .voiceloop --audit-cost 5
"""

from __future__ import annotations

import argparse
import io
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import wave
from pathlib import Path

import httpx
import numpy as np
from common import emit  # benchmarks/common.py

REPO = Path(__file__).resolve().parents[1]
RECORDING = REPO / "data" / "sample" / "speech_fixtures" / "vosk_digits.wav"
KEY = "benchmark-key"
# these figures are latency and throughput with nothing shed: four slots (the four clients run at once,
# as before admission control) and a queue deadline no request meets (serve_capacity.py measures overload)
NO_SHEDDING = {"VOICELOOP__SERVING__ADMISSION__MAX_INFLIGHT": "4",
               "VOICELOOP__SERVING__ADMISSION__QUEUE_TIMEOUT_S": "600"}


def five_second_utterance() -> bytes:
    with wave.open(str(RECORDING)) as source:
        rate, width, channels = source.getframerate(), source.getsampwidth(), source.getnchannels()
        frames = source.readframes(5 * rate)
    out = io.BytesIO()
    with wave.open(out, "wb") as target:
        target.setnchannels(channels), target.setsampwidth(width), target.setframerate(rate)
        target.writeframes(frames)
    return out.getvalue()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def serve_here(port: int, audit: bool) -> None:
    """The runtime `voiceloop serve` builds, served by this process (``audit`` False: no request auditor)."""
    import uvicorn

    from core.settings import load_settings
    from serving.app import create_app, server_config
    from serving.runtime import build_runtime, start_following, stop_following

    settings = load_settings(None)
    runtime = build_runtime(settings)
    if not audit:
        runtime.requests = None
    start_following(runtime, settings.serving.reload_poll_s)
    try:
        uvicorn.Server(server_config(create_app(runtime), "127.0.0.1", port)).run()
    finally:
        stop_following(runtime)


def start_server(project_dir: Path, port: int, audit: bool | None = None, args: tuple[str, ...] = (),
                 env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    """`voiceloop serve` (``audit`` None; ``args`` added to its command line), or this script's server with or
    without the request auditor; ``env``: more environment (settings overrides), else admission wide open."""
    env = {**os.environ, "VOICELOOP_PROJECT_DIR": str(project_dir.resolve()), "VOICELOOP_API_KEYS": KEY,
           **(NO_SHEDDING if env is None else env)}
    command = [sys.executable, "-m", "voiceloop.cli", "serve", "--port", str(port), *args] if audit is None else [
        sys.executable, __file__, "--project-dir", str(project_dir), "--serve-port", str(port),
        *([] if audit else ["--no-request-audit"])]
    # Its log (uvicorn logs a line per request) goes to a file: a pipe nobody drains fills up after a
    # few thousand requests, and the server then blocks on its next log line and answers nothing.
    log = Path(tempfile.gettempdir()) / f"voiceloop-serve-{port}.log"
    with log.open("wb") as sink:
        server = subprocess.Popen(command, env=env, cwd=REPO, stdout=subprocess.DEVNULL, stderr=sink)
    print(f"the server's log: {log}", file=sys.stderr)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"voiceloop serve exited: {log.read_text(errors='replace')[-2000:]}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200:
                return server
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    server.kill()
    raise SystemExit("voiceloop serve did not answer /healthz within 300 s")


def timed_requests(client: httpx.Client, n: int, send: object) -> list[float]:
    seconds = []
    for _ in range(n):
        started = time.perf_counter()
        response = send(client)  # type: ignore[operator]
        elapsed = time.perf_counter() - started
        if response.status_code != 200:
            raise SystemExit(f"request failed: {response.status_code} {response.text[:300]}")
        seconds.append(elapsed)
    return seconds


def percentiles(seconds: list[float]) -> dict[str, float]:
    return {"p50_ms": round(float(np.percentile(seconds, 50)) * 1000, 1),
            "p95_ms": round(float(np.percentile(seconds, 95)) * 1000, 1), "requests": len(seconds)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--project-dir", type=Path, required=True, help="a project with a champion bundle")
    parser.add_argument("--understand", type=int, default=200, help="requests for the /v1/understand figure")
    parser.add_argument("--process", type=int, default=40, help="requests for the one-client /v1/process figure")
    parser.add_argument("--per-client", type=int, default=20, help="/v1/process requests per client of four")
    parser.add_argument("--audit-cost", type=int, default=0, metavar="RUNS",
                        help="instead: RUNS interleaved pairs of runs with and without the request audit")
    parser.add_argument("--serve-port", type=int, help=argparse.SUPPRESS)  # the server of --audit-cost
    parser.add_argument("--no-request-audit", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_port:
        serve_here(args.serve_port, audit=not args.no_request_audit)
        return
    audio = five_second_utterance()
    if args.audit_cost:
        audit_cost(args.project_dir, audio, args.audit_cost, args.process)
        return
    port = _free_port()
    server = start_server(args.project_dir, port)
    url = f"http://127.0.0.1:{port}"

    def understand(client: httpx.Client) -> httpx.Response:
        return client.post("/v1/understand", json={"text": "I still have not received my new card"})

    def process(client: httpx.Client) -> httpx.Response:
        return client.post("/v1/process", content=audio)

    try:
        with httpx.Client(base_url=url, headers={"X-API-Key": KEY}, timeout=120) as client:
            health = client.get("/healthz").json()
            timed_requests(client, 5, understand), timed_requests(client, 3, process)  # warm-up
            emit(figure="serve_understand_one_client", bundle=health["champion"], asr=health["asr_model"],
                 **percentiles(timed_requests(client, args.understand, understand)))
            emit(figure="serve_process_5s_one_client", bundle=health["champion"],
                 **percentiles(timed_requests(client, args.process, process)))
        results: list[list[float]] = [[] for _ in range(4)]

        def run(slot: int) -> None:
            with httpx.Client(base_url=url, headers={"X-API-Key": KEY}, timeout=120) as client:
                results[slot] = timed_requests(client, args.per_client, process)

        started = time.perf_counter()
        clients = [threading.Thread(target=run, args=(slot,)) for slot in range(4)]
        for thread in clients:
            thread.start()
        for thread in clients:
            thread.join()
        wall = time.perf_counter() - started
        every = [s for client_seconds in results for s in client_seconds]
        if len(every) != 4 * args.per_client:
            raise SystemExit("a client did not finish its requests")
        emit(figure="serve_process_5s_four_clients", throughput_rps=round(len(every) / wall, 2),
             **percentiles(every), cpus=os.cpu_count(), loadavg=[round(x, 2) for x in os.getloadavg()])
    finally:
        server.terminate()
        server.wait(timeout=60)


def one_client_process(project_dir: Path, audio: bytes, requests: int, audit: bool) -> dict[str, float]:
    """p50 and p95 of one client's ``/v1/process`` requests on a fresh server (after 3 warm-up requests)."""
    port = _free_port()
    server = start_server(project_dir, port, audit)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", headers={"X-API-Key": KEY}, timeout=120) as client:
            def send(c: httpx.Client) -> httpx.Response:
                return c.post("/v1/process", content=audio)

            timed_requests(client, 3, send)
            return percentiles(timed_requests(client, requests, send))
    finally:
        server.terminate()
        server.wait(timeout=60)


def audit_cost(project_dir: Path, audio: bytes, runs: int, requests: int) -> None:
    by_mode: dict[bool, list[dict[str, float]]] = {True: [], False: []}
    for run in range(runs):
        for audit in ((True, False) if run % 2 == 0 else (False, True)):  # interleaved, order alternating
            by_mode[audit].append(one_client_process(project_dir, audio, requests, audit))
    median = {audit: {q: float(np.median([r[q] for r in rows])) for q in ("p50_ms", "p95_ms")}
              for audit, rows in by_mode.items()}
    emit(figure="serve_process_request_audit_cost", runs=runs, requests_per_run=requests,
         with_audit=median[True], without_audit=median[False],
         p50_ratio=round(median[True]["p50_ms"] / median[False]["p50_ms"], 3),
         p95_ratio=round(median[True]["p95_ms"] / median[False]["p95_ms"], 3),
         runs_p50_ms={"with": [r["p50_ms"] for r in by_mode[True]], "without": [r["p50_ms"] for r in by_mode[False]]})


if __name__ == "__main__":
    main()
