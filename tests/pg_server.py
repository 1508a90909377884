"""A throwaway PostgreSQL server for tests: initdb in a temp dir, started on a free port.

Tests that need PostgreSQL import the fixtures from here (``from tests.pg_server import pg_url,
fresh_pg_url``). The server is real (no mocks) and private to the test session: trust auth on
127.0.0.1 only, its unix socket inside the temp dir, ``fsync=off`` because the data is thrown
away. As root, initdb/pg_ctl run as the ``postgres`` user (PostgreSQL refuses to run as root).
The tests are skipped, with the reason, only when no PostgreSQL can be found or installed.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

_SEARCH = ("/usr/lib/postgresql/*/bin", "/usr/local/pgsql/bin", "/opt/homebrew/bin", "/usr/local/bin", "/usr/bin")


def _find_bin_dir() -> Path | None:
    found = shutil.which("pg_ctl")
    if found and shutil.which("initdb"):
        return Path(found).parent
    for pattern in _SEARCH:
        for folder in sorted(glob.glob(pattern), reverse=True):  # newest major version first
            if (Path(folder) / "pg_ctl").exists() and (Path(folder) / "initdb").exists():
                return Path(folder)
    return None


def _install() -> str | None:
    """Install PostgreSQL with apt when running as root; returns why not, or None on success."""
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        return "PostgreSQL is not installed and this user cannot install it (needs root and apt-get)"
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for command in (["apt-get", "update", "-q"], ["apt-get", "install", "-y", "-q", "postgresql"]):
        result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
        if result.returncode != 0:
            return f"`{' '.join(command)}` failed: {result.stderr.strip()[-300:]}"
    return None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class PgServer:
    """One initdb'd cluster; ``url(db)`` gives a SQLAlchemy URL for psycopg 3."""

    def __init__(self, bin_dir: Path, root: Path) -> None:
        self.bin_dir, self.root = bin_dir, root
        self.data, self.log = root / "data", root / "server.log"
        self.port = _free_port()
        self.as_root = os.geteuid() == 0

    def _run(self, *args: str) -> None:
        command = [str(self.bin_dir / args[0]), *args[1:]]
        if self.as_root:
            command = ["runuser", "-u", "postgres", "--", *command]
        result = subprocess.run(command, capture_output=True, text=True, timeout=120)
        if result.returncode != 0:
            log = self.log.read_text()[-2000:] if self.log.exists() else ""
            raise RuntimeError(f"{' '.join(command)} failed:\n{result.stdout}\n{result.stderr}\n{log}")

    def start(self) -> None:
        if self.as_root:
            shutil.chown(self.root, "postgres", "postgres")
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "-A", "trust", "--no-sync", "-E", "UTF8")
        options = f"-h 127.0.0.1 -p {self.port} -k {self.root} -c fsync=off -c full_page_writes=off"
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-o", options, "-w", "-t", "60", "start")

    def stop(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        import psycopg

        with psycopg.connect(f"host=127.0.0.1 port={self.port} user=postgres dbname=postgres",
                             autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    """Start a private PostgreSQL server for the session; stop it and delete its files after."""
    bin_dir = _find_bin_dir()
    if bin_dir is None:
        reason = _install()
        bin_dir = _find_bin_dir()
        if bin_dir is None:
            pytest.skip(f"no PostgreSQL server available: {reason or 'installed, but pg_ctl was not found'}")
    root = Path(tempfile.mkdtemp(prefix="voiceloop-pg-"))
    server = PgServer(bin_dir, root)
    try:
        server.start()
        yield server
    finally:
        if (server.data / "postmaster.pid").exists():
            server.stop()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def pg_url(pg_server: PgServer) -> str:
    """One database shared by the session (tests that need isolation use ``fresh_pg_url``)."""
    return pg_server.create_database("voiceloop_test")


@pytest.fixture()
def fresh_pg_url(pg_server: PgServer) -> str:
    """An empty database of its own for one test."""
    return pg_server.create_database(f"t_{uuid.uuid4().hex[:12]}")
