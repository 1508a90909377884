"""The scale topology of issue 20 as separate processes on 127.0.0.1, so one retrain can be timed and watched
through real services (``make infra``; not part of the suite).

Started in order, each timed: a moto S3 server (``moto_server``), PostgreSQL (tests/pg_server.py), ``mlflow
server`` (runs and registry in PostgreSQL, artifacts proxied to S3: tests/mlflow_server.py), a ``dask scheduler``
and two ``dask worker --nthreads 1``. Then ``voiceloop retrain --json`` runs once (ASR on unless ``--no-asr``)
with the governed store, the DVC remote and MLflow's artifacts in three versioned buckets and the redaction
shards on the workers (``compute.dask_address``). One JSON line per figure: each service's start seconds, the
retrain's wall seconds, exit code and verdict, its stage seconds, object and version counts per bucket, MLflow's
rows per table, the tasks each worker ran, and, last, the teardown: every process started here is stopped (also
on failure or Ctrl-C) and the line names any left running.

    make corpus && make infra                                         # the demo corpus, full settings
    PYTHONPATH=. .venv/bin/python benchmarks/infra_topology.py --tiny --calls DIR --golden DIR   # a quick check
    PYTHONPATH=. .venv/bin/python benchmarks/infra_topology.py --up-only   # services up and down, no retrain
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from benchmarks.common import emit, scratch  # noqa: E402
from tests.mlflow_server import FAKE_KEYS, MlflowServerProcess, free_port, server_environment  # noqa: E402

BIN = Path(sys.executable).parent
BUCKETS = {"store": "voiceloop-store", "dvc": "voiceloop-dvc", "mlflow": "voiceloop-mlflow"}
# The nanny sets MALLOC_TRIM_THRESHOLD_ from its config, whatever the environment says: null leaves glibc's adaptive
# malloc, as voiceloop's own local clusters do (docs/scale.md, "glibc's malloc as it is").
DASK_WORKER_CONFIG = """distributed:
  nanny:
    pre-spawn-environ:
      MALLOC_TRIM_THRESHOLD_: null
"""
WORKERS = 2
# the suite's tiny settings (tests/conftest.py TINY_INTENT, TINY_ASR), and a gate that promotes the first challenger
TINY: dict[str, Any] = {
    "intent": {"epochs": 2, "batch_size": 32, "max_length": 24, "banking77_limit": 800, "lora": {"top_layers": 1},
               "members": 1, "seed": 0},
    "asr": {"epochs": 1, "digits_fsdd": 6, "digits_synthetic": 6, "lora": {"encoder_layers": 1, "merge_scale": 1.0}},
    "gate": {"floor": 0.0, "margin": 0.01, "n_bootstrap": 1000, "slice_alpha": 0.0, "latency_budget_ms": 60_000,
             "clean_speech_max_extra_errors": 1000, "latency_utterances": 8,
             "report_only": ["asr_wer", "asr_wer_slices", "digit_accuracy"]},
}


@dataclass
class Process:
    """A child in a process group of its own: stopping it ends it and whatever it forked, nothing else."""

    name: str
    popen: subprocess.Popen[bytes]

    def alive(self) -> bool:
        try:
            os.killpg(self.popen.pid, 0)
        except ProcessLookupError:
            return False
        return True

    def stop(self, timeout_s: float = 30.0) -> None:
        for sig in (signal.SIGTERM, signal.SIGKILL):
            if not self.alive():
                break
            os.killpg(self.popen.pid, sig)
            deadline = time.monotonic() + timeout_s
            while self.alive() and time.monotonic() < deadline:
                self.popen.poll()  # reap the leader, or the group stays "alive" as a zombie
                time.sleep(0.2)
        self.popen.poll()


def spawn(name: str, command: list[str], log: Path, env: dict[str, str] | None = None) -> Process:
    with log.open("wb") as out:
        popen = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                 env=env, cwd=REPO, start_new_session=True)
    return Process(name, popen)


def wait_until(what: str, ready: Callable[[], bool], process: Process | None, log: Path, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process is not None and process.popen.poll() is not None:
            raise RuntimeError(f"{what} exited with {process.popen.returncode}: {log.read_text()[-3000:]}")
        if ready():
            return
        time.sleep(0.3)
    raise RuntimeError(f"{what} not ready within {timeout_s:.0f}s: {log.read_text()[-3000:]}")


def answers_http(url: str) -> bool:
    try:
        urllib.request.urlopen(url, timeout=3).close()
    except urllib.error.HTTPError:
        return True  # it answered
    except (urllib.error.URLError, OSError):
        return False
    return True


@contextmanager
def timed_start(service: str) -> Iterator[None]:
    started = time.perf_counter()
    yield
    emit(figure="service_start_s", service=service, seconds=round(time.perf_counter() - started, 2))


class Topology:
    """Every service, started by :meth:`up` into ``folder``; :meth:`down` stops them all, newest first."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.processes: list[Process] = []
        self.stack = ExitStack()
        self.s3_endpoint = self.scheduler = ""
        self.mlflow: MlflowServerProcess | None = None
        self.pg: Any = None

    def up(self, worker_env: dict[str, str]) -> None:
        port = free_port()
        self.s3_endpoint = f"http://127.0.0.1:{port}"
        with timed_start("moto"):
            moto = self._spawn("moto", [str(BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(port)])
            wait_until("moto", lambda: answers_http(self.s3_endpoint), moto, self._log("moto"), 60)
            client = self.s3_client()
            for bucket in BUCKETS.values():
                client.create_bucket(Bucket=bucket)
                client.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
        with timed_start("postgres"):
            from tests.pg_server import PgServer, _find_bin_dir

            bin_dir = _find_bin_dir()
            if bin_dir is None:
                raise SystemExit("PostgreSQL is not installed: run `make setup`")
            self.pg = PgServer(bin_dir, Path(tempfile.mkdtemp(prefix="voiceloop-infra-pg-")))
            self.pg.start()
            self.stack.callback(self._stop_pg)
            database = self.pg.create_database("mlflow")
        with timed_start("mlflow"):
            self.mlflow = MlflowServerProcess(database, f"s3://{BUCKETS['mlflow']}/artifacts", self.s3_endpoint,
                                              self.folder / "mlflow")
            self.stack.callback(self.mlflow.stop)
            self.mlflow.start()
        with timed_start(f"dask (scheduler + {WORKERS} workers)"):
            port = free_port()
            self.scheduler = f"tcp://127.0.0.1:{port}"
            scheduler = self._spawn("dask-scheduler", [str(BIN / "dask"), "scheduler", "--host", "127.0.0.1",
                                                       "--port", str(port), "--no-dashboard"])
            wait_until("dask scheduler", lambda: answers_tcp(port), scheduler, self._log("dask-scheduler"), 120)
            config = self.folder / "dask-config"  # what docs/scale.md tells operators to give their workers
            config.mkdir(exist_ok=True)
            (config / "voiceloop.yaml").write_text(DASK_WORKER_CONFIG)
            for index in range(WORKERS):
                self._spawn(f"dask-worker-{index}", [str(BIN / "dask"), "worker", self.scheduler, "--nthreads", "1",
                                                     "--host", "127.0.0.1", "--no-dashboard",
                                                     "--name", f"worker-{index}"],
                            {**worker_env, "DASK_CONFIG": str(config)})
            from distributed import Client

            with Client(self.scheduler, timeout=60) as client:
                client.wait_for_workers(WORKERS, timeout=300)
                trims = client.run(lambda: os.environ.get("MALLOC_TRIM_THRESHOLD_"))
                if any(value is not None for value in trims.values()):
                    raise SystemExit(f"the Dask workers still have MALLOC_TRIM_THRESHOLD_ set: {trims}")

    def s3_client(self) -> Any:
        import boto3

        return boto3.client("s3", endpoint_url=self.s3_endpoint, region_name=FAKE_KEYS["AWS_DEFAULT_REGION"],
                            aws_access_key_id=FAKE_KEYS["AWS_ACCESS_KEY_ID"],
                            aws_secret_access_key=FAKE_KEYS["AWS_SECRET_ACCESS_KEY"])

    def _spawn(self, name: str, command: list[str], env: dict[str, str] | None = None) -> Process:
        process = spawn(name, command, self._log(name), env)
        self.processes.append(process)
        self.stack.callback(process.stop)
        return process

    def _log(self, name: str) -> Path:
        return self.folder / f"{name}.log"

    def _stop_pg(self) -> None:
        if (self.pg.data / "postmaster.pid").exists():
            self.pg.stop()
        shutil.rmtree(self.pg.root, ignore_errors=True)

    def down(self) -> dict[str, Any]:
        started = time.perf_counter()
        self.stack.close()
        left = [p.name for p in self.processes if p.alive()]
        if self.mlflow is not None and self.mlflow.process is not None:
            left.append("mlflow")
        if self.pg is not None and self.pg.root.exists():
            left.append("postgres")
        return {"seconds": round(time.perf_counter() - started, 2), "left_running": left}


def answers_tcp(port: int) -> bool:
    import socket

    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def write_params(topology: Topology, state: Path, args: argparse.Namespace) -> Path:
    import yaml

    data: dict[str, Any] = yaml.safe_load((REPO / "params.yaml").read_text())
    sections: dict[str, Any] = {
        "sources": {"call_store": str(args.calls.resolve()), "golden_store": str(args.golden.resolve())},
        "store": {"url": f"s3://{BUCKETS['store']}/voiceloop"},
        "dvc": {"remote_url": f"s3://{BUCKETS['dvc']}/datasets"},
        "tracking": {"tracking_uri": topology.mlflow.url if topology.mlflow else ""},
        "compute": {"dask_address": topology.scheduler, "fan_out": True},
        "asr": {"enabled": args.asr},
    }
    for name, values in (TINY if args.tiny else {}).items():
        sections[name] = {**sections.get(name, {}), **values}
    for name, values in sections.items():
        data[name] = {**data.get(name, {}), **values}
    data["project_dir"] = str(state)
    path = state.parent / "params.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def retrain(params: Path, env: dict[str, str], log: Path) -> dict[str, Any]:
    started = time.perf_counter()
    with log.open("wb") as err:
        done = subprocess.run([str(BIN / "voiceloop"), "retrain", "--json", "--params", str(params)], cwd=REPO,
                              env=env, stdout=subprocess.PIPE, stderr=err, stdin=subprocess.DEVNULL)
    wall = round(time.perf_counter() - started, 2)
    try:  # stdout is the summary and nothing else (a library printing there breaks ``--json``)
        summary: dict[str, Any] = json.loads(done.stdout) if done.returncode == 0 else {}
    except json.JSONDecodeError:
        summary = {}
    gate = summary.get("gate") or {}
    emit(figure="retrain", wall_s=wall, exit_code=done.returncode, json_stdout=bool(summary),
         verdict=gate.get("verdict"), promoted=gate.get("promoted"),
         calls=(summary.get("redaction") or {}).get("calls"),
         log=None if summary else str(log))  # kept with --keep
    for stage, seconds in summary.get("timings_s", {}).items():
        emit(figure="stage_s", stage=stage, seconds=seconds, cpu_s=summary.get("cpu_s", {}).get(stage))
    return summary


def report_storage(topology: Topology) -> None:
    """Objects, versions, delete markers and bytes per bucket; MLflow's rows per table; each worker's tasks."""
    client = topology.s3_client()
    for role, bucket in BUCKETS.items():
        objects = versions = markers = size = 0
        for page in client.get_paginator("list_object_versions").paginate(Bucket=bucket):
            for version in page.get("Versions", []):
                versions += 1
                objects += int(bool(version.get("IsLatest")))
                size += int(version.get("Size", 0))
            markers += len(page.get("DeleteMarkers", []))
        emit(figure="bucket", bucket=role, objects=objects, versions=versions, delete_markers=markers, bytes=size)
    import psycopg

    url = topology.pg.url("mlflow").replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(url) as conn:
        tables = [r[0] for r in conn.execute("SELECT table_name FROM information_schema.tables "
                                             "WHERE table_schema = 'public' AND table_type = 'BASE TABLE'")]
        rows = {t: conn.execute(f'SELECT count(*) FROM "{t}"').fetchone()[0] for t in sorted(tables)}  # type: ignore[index]
    emit(figure="mlflow_rows", tables={t: n for t, n in rows.items() if n})
    from distributed import Client

    with Client(topology.scheduler, timeout=60) as dask:
        executed = dask.run(lambda dask_worker: dask_worker.state.executed_count)
    for address, count in sorted(executed.items()):
        emit(figure="dask_worker_tasks", worker=address, tasks=count)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=Path, default=REPO / "data" / "calls")
    parser.add_argument("--golden", type=Path, default=REPO / "data" / "golden")
    parser.add_argument("--asr", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--tiny", action="store_true", help="the suite's tiny training settings (a quick check)")
    parser.add_argument("--up-only", action="store_true", help="start every service, then stop them: no retrain")
    parser.add_argument("--keep", action="store_true", help="keep the scratch folder (logs, the project)")
    args = parser.parse_args()
    if not args.up_only and not (args.calls / "audio").is_dir():
        raise SystemExit(f"no corpus at {args.calls}: run `make corpus` (or pass --calls/--golden)")
    from core.runtime import prepare, thread_pools

    with scratch("voiceloop-infra-", keep=args.keep) as folder:
        state = folder / "project" / "state"
        prepare(state)  # offline settings and tool homes, in this process: the workers and the retrain inherit them
        # workers get call data from the run, never the store: no S3 settings, one thread per pool
        workers = {**os.environ, **thread_pools(1), "PREFECT_LOGGING_LEVEL": "WARNING", "PYTHONPATH": str(REPO)}
        topology, ok = Topology(folder), True
        try:
            topology.up(workers)
            if not args.up_only:
                params = write_params(topology, state, args)
                ok = bool(retrain(params, server_environment(topology.s3_endpoint), folder / "retrain.log"))
                report_storage(topology)
        finally:
            teardown = topology.down()
            emit(figure="teardown", **teardown)
    return 0 if ok and not teardown["left_running"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
