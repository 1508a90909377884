"""A project-local Prefect server, started on demand, for schedules.

Schedules need a real Prefect API: the ephemeral in-process server that plain flow runs use
refuses them, and its scheduler would die with the process anyway. When the user has not
pointed ``PREFECT_API_URL`` at a server of their own, :func:`ensure_server` starts
``prefect server start`` detached from the caller (it must outlive a CLI invocation so its
scheduler keeps creating runs), with its state and log under ``<project>/prefect/`` and its
pid/port recorded in ``<project>/prefect/server.json`` so later calls reuse it and
:func:`stop_server` can end it.

The server gets its own ``PREFECT_HOME`` (``<project>/prefect/server/``, database included)
rather than sharing ``<project>/prefect/prefect.db`` with the ephemeral API that plain flow
runs start: two Prefect servers migrating and writing one SQLite file invite "database is
locked". To have manual runs show up on the server, point them at it
(:func:`project_server_url`).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

import httpx

HOST = "127.0.0.1"
STATE_FILE = "server.json"
LOG_FILE = "server.log"

# Popen objects of servers this process started: kept so they are not garbage-collected
# while running (ResourceWarning) and so stop_server can reap them (no zombies).
_STARTED: dict[int, subprocess.Popen[bytes]] = {}


class ServerError(RuntimeError):
    """The Prefect server could not be reached or started."""


def _home(project_dir: Path) -> Path:
    return Path(project_dir).expanduser().resolve() / "prefect"


def api_url_for(port: int) -> str:
    return f"http://{HOST}:{port}/api"


def is_healthy(api_url: str, timeout_s: float = 2.0) -> bool:
    """True when ``<api_url>/health`` answers 200 (Prefect's liveness endpoint)."""
    try:
        response = httpx.get(api_url.rstrip("/") + "/health", timeout=timeout_s)
    except httpx.HTTPError:
        return False
    return response.status_code == 200


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _is_prefect_server(pid: int) -> bool:
    """Guard against pid reuse: the recorded pid must still be a ``prefect server`` process."""
    if not _pid_alive(pid):
        return False
    cmdline = Path(f"/proc/{pid}/cmdline")
    if not cmdline.exists():  # no procfs (macOS): trust the pid
        return True
    try:
        args = cmdline.read_bytes()
    except OSError:
        return False
    return b"prefect" in args and b"server" in args


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((HOST, port))
        except OSError:
            return False
    return True


def _log_tail(log: Path, lines: int = 15) -> str:
    try:
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def read_state(project_dir: Path) -> dict[str, object] | None:
    """The recorded server (``pid``, ``port``, ``url``, ``log``) or None."""
    path = _home(project_dir) / STATE_FILE
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _write_state(home: Path, state: Mapping[str, object]) -> None:
    tmp = home / (STATE_FILE + ".tmp")
    tmp.write_text(json.dumps(state, indent=2))
    tmp.replace(home / STATE_FILE)


@contextlib.contextmanager
def _lock(home: Path) -> Iterator[None]:
    """Serialise check-then-start so two concurrent callers do not start two servers."""
    home.mkdir(parents=True, exist_ok=True)
    with open(home / "server.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _user_api_url() -> str | None:
    url = os.environ.get("PREFECT_API_URL")
    if url:
        return url
    from prefect.settings import PREFECT_API_URL  # also covers a URL set in a Prefect profile

    return PREFECT_API_URL.value() or None


def _check_user_server(url: str) -> str:
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL, temporary_settings

    # The Prefect client sends PREFECT_API_KEY, so this also works for Prefect Cloud.
    with temporary_settings({PREFECT_API_URL: url}), get_client(sync_client=True) as client:
        error = client.api_healthcheck()
    if error is not None:
        raise ServerError(f"PREFECT_API_URL={url} is set but the Prefect API there is not healthy: {error}")
    return url


def _wait_healthy(url: str, proc: subprocess.Popen[bytes] | None, deadline: float) -> bool:
    while time.monotonic() < deadline:
        if is_healthy(url):
            return True
        if proc is not None and proc.poll() is not None:
            return False
        time.sleep(0.25)
    return is_healthy(url)


def _kill(pid: int, grace_s: float = 10.0) -> None:
    """SIGTERM the server's process group, then SIGKILL after ``grace_s``; reap our children."""
    popen = _STARTED.pop(pid, None)
    for sig, wait_s in ((signal.SIGTERM, grace_s), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(pid, sig)  # started with start_new_session: pgid == pid
        except ProcessLookupError:
            break
        except PermissionError:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            if popen is not None:
                if popen.poll() is not None:
                    return
            else:
                with contextlib.suppress(ChildProcessError):
                    os.waitpid(pid, os.WNOHANG)
                if not _pid_alive(pid):
                    return
            time.sleep(0.1)


def _start(home: Path, port: int, timeout_s: float, env: Mapping[str, str] | None) -> str:
    if not _port_free(port):
        url = api_url_for(port)
        who = "a Prefect server not recorded for this project" if is_healthy(url) else "another program"
        raise ServerError(
            f"Port {port} on {HOST} is already in use by {who}. Choose another port, or set "
            f"PREFECT_API_URL={url} to use that server."
        )
    log = home / LOG_FILE
    server_env = dict(os.environ)
    server_env.pop("PREFECT_API_URL", None)
    server_home = home / "server"
    server_home.mkdir(parents=True, exist_ok=True)
    server_env.update(
        PREFECT_HOME=str(server_home),
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        DO_NOT_TRACK="1",
    )
    server_env.update(env or {})
    cmd = [sys.executable, "-m", "prefect", "server", "start", "--host", HOST, "--port", str(port)]
    with open(log, "ab") as out:
        out.write(f"\n--- {time.strftime('%Y-%m-%d %H:%M:%S')} {' '.join(cmd)}\n".encode())
        out.flush()
        proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=server_env,
            cwd=server_home,
            start_new_session=True,  # survives Ctrl-C / exit of the CLI that started it
        )
    _STARTED[proc.pid] = proc
    url = api_url_for(port)
    if not _wait_healthy(url, proc, time.monotonic() + timeout_s):
        code = proc.poll()
        _kill(proc.pid, grace_s=3.0)
        reason = f"exited with code {code}" if code is not None else f"was not healthy within {timeout_s:g} s"
        raise ServerError(f"Prefect server on port {port} {reason}; log: {log}\n{_log_tail(log)}")
    _write_state(home, {"pid": proc.pid, "port": port, "url": url, "log": str(log)})
    return url


def ensure_server(
    project_dir: Path, port: int = 4200, timeout_s: float = 60, *, env: Mapping[str, str] | None = None
) -> str:
    """Return the URL of a healthy Prefect API, starting a project-local server if needed.

    Order: ``PREFECT_API_URL`` (user's own server or Prefect Cloud; only health-checked);
    then the server recorded in ``<project>/prefect/server.json`` (reused whatever its port);
    else a new ``prefect server start`` on ``127.0.0.1:port``. ``env`` adds settings to the
    new server's environment (e.g. a shorter scheduler loop in tests).
    """
    user_url = _user_api_url()
    if user_url:
        return _check_user_server(user_url)
    home = _home(project_dir)
    with _lock(home):
        state = read_state(project_dir)
        if state is not None:
            pid, url = int(str(state.get("pid", 0))), str(state.get("url", ""))
            if pid and url and _is_prefect_server(pid):
                if _wait_healthy(url, None, time.monotonic() + timeout_s):
                    return url
                raise ServerError(
                    f"The project's Prefect server (pid {pid}, {url}) is running but not healthy; "
                    f"log: {home / LOG_FILE}. Stop it with stop_server() and retry."
                )
            (home / STATE_FILE).unlink(missing_ok=True)  # stale record
        return _start(home, port, timeout_s, env)


def project_server_url(project_dir: Path) -> str | None:
    """URL of the project's recorded server if it is up, else None (nothing is started).

    Lets other entry points (e.g. a manual retrain) report to the same server as scheduled
    runs, instead of an ephemeral API, when one happens to be running.
    """
    state = read_state(project_dir)
    if not state:
        return None
    pid, url = int(str(state.get("pid", 0))), str(state.get("url", ""))
    return url if pid and url and _is_prefect_server(pid) and is_healthy(url) else None


def stop_server(project_dir: Path) -> bool:
    """Stop the project's recorded server; True if a running server was stopped."""
    home = _home(project_dir)
    with _lock(home):
        state = read_state(project_dir)
        if state is None:
            return False
        pid = int(str(state.get("pid", 0)))
        running = bool(pid) and _is_prefect_server(pid)
        if running:
            _kill(pid)
        (home / STATE_FILE).unlink(missing_ok=True)
        return running
