"""A real MLflow tracking server for tests, so the project is tested as a team runs it: over HTTP, not on SQLite.

``mlflow server`` runs as a child process on 127.0.0.1 (a free port), its runs and registry in PostgreSQL
(a database of its own on the session's server, tests/pg_server.py) and its artifacts proxied to S3
(``--artifacts-destination``; a bucket on the session's moto server, tests/s3_server.py). The server's own
environment points boto3 at that endpoint (``AWS_ENDPOINT_URL``, ``MLFLOW_S3_ENDPOINT_URL``, fake keys), so
clients need no S3 credentials: they talk to the server only. The fixture ``mlflow_server`` (session) starts
it on first use and stops it, with every process it started, after the session.

:class:`MlflowServerProcess` is the same thing outside pytest (``benchmarks/infra_topology.py``).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from tests.pg_server import PgServer

START_TIMEOUT_S = 240.0  # creating MLflow's schema in PostgreSQL takes a while on a loaded machine
STOP_TIMEOUT_S = 30.0
FAKE_KEYS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def server_environment(s3_endpoint: str, base: dict[str, str] | None = None) -> dict[str, str]:
    """``base`` (this process's environment) with S3 pointed at ``s3_endpoint``, fake keys, no profile."""
    env = dict(os.environ if base is None else base)
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "MLFLOW_TRACKING_URI"):
        env.pop(name, None)
    return {**env, **FAKE_KEYS, "AWS_ENDPOINT_URL": s3_endpoint, "MLFLOW_S3_ENDPOINT_URL": s3_endpoint}


@dataclass
class MlflowServerProcess:
    """One ``mlflow server`` (PostgreSQL backend, artifacts proxied to S3) run from ``folder`` (its cwd and log)."""

    backend_uri: str  # SQLAlchemy URL (postgresql+psycopg://...)
    artifacts_destination: str  # s3://bucket/prefix
    s3_endpoint: str
    folder: Path
    port: int = 0
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log(self) -> Path:
        return self.folder / "mlflow-server.log"

    def start(self, timeout_s: float = START_TIMEOUT_S) -> None:
        """Start the server and wait until ``/health`` answers; raises with the log's tail when it does not."""
        self.folder.mkdir(parents=True, exist_ok=True)
        self.port = self.port or free_port()
        command = [str(Path(sys.executable).with_name("mlflow")), "server",
                   "--backend-store-uri", self.backend_uri,
                   "--artifacts-destination", self.artifacts_destination,
                   "--host", "127.0.0.1", "--port", str(self.port), "--workers", "1"]
        with self.log.open("wb") as log:  # the child keeps its own descriptor
            # a session of its own: stop() ends the server and the uvicorn worker it forks, and nothing else
            self.process = subprocess.Popen(command, cwd=self.folder, env=server_environment(self.s3_endpoint),
                                            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                            start_new_session=True)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"mlflow server exited with {self.process.returncode}:\n{self._tail()}")
            if self.healthy():
                return
            time.sleep(0.5)
        self.stop()
        raise RuntimeError(f"mlflow server did not answer on {self.url} within {timeout_s:.0f}s:\n{self._tail()}")

    def healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/health", timeout=5) as response:
                return bool(response.status == 200)
        except (urllib.error.URLError, OSError):
            return False

    def stop(self) -> None:
        """SIGTERM to the server's process group, SIGKILL after a grace period; idempotent."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        _signal_group(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            _signal_group(process.pid, signal.SIGKILL)
            process.wait(timeout=STOP_TIMEOUT_S)
        _signal_group(process.pid, signal.SIGKILL)  # a worker left behind by its parent

    def _tail(self) -> str:
        return self.log.read_text(errors="replace")[-4000:] if self.log.exists() else "(no log)"


def _signal_group(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, sig)  # the group the server leads (start_new_session): only processes it started


@dataclass(frozen=True)
class MlflowServer:
    """What a test needs of the running server."""

    url: str  # the tracking URI: tracking.tracking_uri
    database: str  # its PostgreSQL database (SQLAlchemy URL)
    bucket: str  # its artifacts bucket (objects under ``prefix``)
    prefix: str
    log: Path


@pytest.fixture(scope="session")
def mlflow_server(pg_server: PgServer, s3_server: str,
                  tmp_path_factory: pytest.TempPathFactory) -> Iterator[MlflowServer]:
    """One ``mlflow server`` for the session: a new PostgreSQL database, artifacts in a new versioned bucket."""
    import boto3

    bucket = f"voiceloop-mlflow-{uuid.uuid4().hex[:8]}"
    client = boto3.client("s3", endpoint_url=s3_server, region_name=FAKE_KEYS["AWS_DEFAULT_REGION"],
                          aws_access_key_id="testing", aws_secret_access_key="testing")
    client.create_bucket(Bucket=bucket)
    client.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    database = pg_server.create_database(f"mlflow_{uuid.uuid4().hex[:8]}")
    server = MlflowServerProcess(database, f"s3://{bucket}/artifacts", s3_server,
                                 tmp_path_factory.mktemp("mlflow-server"))
    server.start()
    try:
        yield MlflowServer(server.url, database, bucket, "artifacts", server.log)
    finally:
        server.stop()
