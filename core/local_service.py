"""Run one long-lived local daemon (Alertmanager, the Pushgateway, Label Studio) on 127.0.0.1 without systemd.

The daemon is started detached (its own session: it outlives the command that started it) and
keeps everything under one folder of the project, e.g. ``.voiceloop/alertmanager/``: its data,
its log (``<name>.log``) and a pid file (``<name>.pid``, JSON: pid, url, command). It listens on
127.0.0.1 only. :meth:`LocalService.start` returns once its readiness endpoint (``/-/ready``)
answers; :meth:`LocalService.stop` sends SIGTERM, then SIGKILL after a timeout, and removes the
pid file. A pid file whose process is gone (or is some other program now) is stale: it is
reported as not running and replaced or removed. ``binary`` may be a full path (a virtualenv's
console script: its process runs as ``python <binary>``, and it is recognised by that name), and
``env`` may give the daemon's whole environment instead of this process's.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

#: Every daemon started here listens on this address only: never on a public interface.
HOST = "127.0.0.1"


class LocalServiceError(RuntimeError):
    """A local daemon could not be started, found or stopped; the message says why and what to do."""


class BinaryMissing(LocalServiceError):
    """The daemon's program is not installed."""


def listen_address(port: int) -> str:
    """``127.0.0.1:<port>``: the only address a local daemon is told to listen on."""
    if not 0 < port < 65536:
        raise ValueError(f"port {port} is not a TCP port (1-65535)")
    return f"{HOST}:{port}"


def _listens_locally(args: Sequence[str], port: int) -> bool:
    """Whether ``args`` name 127.0.0.1:``port`` as one value, or as two (``--host 127.0.0.1 --port <port>``)."""
    address = listen_address(port)
    return any(address in arg for arg in args) or (HOST in args and str(port) in args)


def port_in_use(port: int) -> bool:
    """Whether something already accepts connections on 127.0.0.1:``port``."""
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((HOST, port)) == 0


@dataclass(frozen=True)
class ServiceStatus:
    """What :meth:`LocalService.status` found: ``pid`` and ``url`` are None when nothing runs."""

    name: str
    running: bool
    pid: int | None
    url: str | None
    folder: Path
    log_file: Path


def _reap(pid: int) -> None:
    """Collect the exit status of ``pid`` if it is our exited child, so it does not linger as a zombie."""
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def _alive(pid: int, binary: str) -> bool:
    """Whether ``pid`` is a live process running ``binary`` (not a zombie, not a reused pid)."""
    _reap(pid)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, but someone else's: not ours
        return False
    proc = Path(f"/proc/{pid}")
    if not proc.exists():  # no procfs (macOS): trust kill(0)
        return True
    try:
        state = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
        argv = (proc / "cmdline").read_bytes().split(b"\0")[:2]  # [interpreter,] program
    except (OSError, IndexError):
        return False
    names = {Path(arg.decode(errors="replace")).name for arg in argv}
    return state != "Z" and Path(binary).name in names


class LocalService:
    """``binary args...`` run detached, with its pid file and log under ``folder``.

    ``name`` names the pid and log files and the messages; ``package`` is the Debian package that
    installs ``binary`` (named when it is missing, unless ``install_hint`` says how to install it
    instead); ``args`` must make the daemon listen on :func:`listen_address` (``port``);
    ``ready_path`` answers HTTP 200, unauthenticated, once it serves; ``env`` is the daemon's whole
    environment (None: this process's).
    """

    def __init__(self, *, name: str, binary: str, package: str, folder: Path, port: int, args: Sequence[str],
                 ready_path: str = "/-/ready", env: Mapping[str, str] | None = None,
                 install_hint: str | None = None) -> None:
        if not _listens_locally(args, port):
            raise ValueError(f"{name}: its arguments must make it listen on {listen_address(port)} only, "
                             f"got {list(args)}")
        self.name, self.binary, self.package = name, binary, package
        self.folder, self.port, self.args = Path(folder), port, list(args)
        self.ready_path = ready_path
        self.env = dict(env) if env is not None else None
        self.install_hint = install_hint
        self.pid_file = self.folder / f"{name}.pid"
        self.log_file = self.folder / f"{name}.log"

    @property
    def url(self) -> str:
        return f"http://{listen_address(self.port)}"

    def executable(self) -> str:
        """The full path of ``binary``; :class:`BinaryMissing` naming the package when it is not installed."""
        found = shutil.which(self.binary)
        if found is None:
            hint = self.install_hint or (f"Install the Debian package `{self.package}` (`make setup` does, or "
                                         f"`sudo apt-get install {self.package}`).")
            where = "" if os.sep in self.binary else " on PATH"
            raise BinaryMissing(f"{self.name}: `{self.binary}` was not found{where}. {hint}")
        return found

    # -- pid file -----------------------------------------------------------------------------------

    def _read_pid_file(self) -> dict[str, Any] | None:
        try:
            record = json.loads(self.pid_file.read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValueError):
            return {}  # unreadable: treated as stale
        return record if isinstance(record, dict) else {}

    def _live_record(self) -> dict[str, Any] | None:
        """The pid file's record when its process still runs; a stale pid file is removed."""
        record = self._read_pid_file()
        if record is None:
            return None
        pid = record.get("pid")
        if isinstance(pid, int) and _alive(pid, self.binary):
            return record
        self.pid_file.unlink(missing_ok=True)
        return None

    # -- lifecycle ----------------------------------------------------------------------------------

    def status(self) -> ServiceStatus:
        """Running or not, with its pid and URL (from its pid file: the port it was started on)."""
        record = self._live_record()
        if record is None:
            return ServiceStatus(self.name, False, None, None, self.folder, self.log_file)
        return ServiceStatus(self.name, True, int(record["pid"]), str(record.get("url", self.url)), self.folder,
                             self.log_file)

    def start(self, timeout_s: float = 30.0) -> ServiceStatus:
        """Start the daemon unless it already runs, and wait until its ``ready_path`` answers.

        A daemon already running from this folder is left as it is (its status is returned).
        :class:`LocalServiceError` when the port is taken by something else, or when the daemon
        exits or is not ready within ``timeout_s`` (its log's tail is in the message).
        """
        current = self.status()
        if current.running:
            return current
        executable = self.executable()
        if port_in_use(self.port):
            raise LocalServiceError(
                f"{self.name}: port {self.port} on {HOST} is already in use by another program; "
                f"stop it or choose another port for {self.name}"
            )
        self.folder.mkdir(parents=True, exist_ok=True)
        command = [executable, *self.args]
        with self.log_file.open("ab") as log:
            log.write(f"\n--- {time.strftime('%Y-%m-%dT%H:%M:%S%z')} starting: {' '.join(command)}\n".encode())
            log.flush()
            process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                       cwd=self.folder, env=self.env, start_new_session=True, close_fds=True)
        record = {"pid": process.pid, "url": self.url, "command": command}
        tmp = self.pid_file.with_suffix(".pid.tmp")
        tmp.write_text(json.dumps(record))
        tmp.replace(self.pid_file)
        try:
            self._wait_ready(process, timeout_s)
        except LocalServiceError:
            self.stop()
            raise
        return self.status()

    def _wait_ready(self, process: subprocess.Popen[bytes], timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        ready_url = self.url + self.ready_path
        last = "no answer yet"
        while time.monotonic() < deadline:
            code = process.poll()
            if code is not None:
                raise LocalServiceError(
                    f"{self.name} exited at start (exit status {code}); its log {self.log_file} ends with:\n"
                    f"{self.log_tail()}"
                )
            try:
                response = httpx.get(ready_url, timeout=1.0)
                if response.status_code == 200:
                    return
                last = f"HTTP {response.status_code}"
            except httpx.HTTPError as error:
                last = f"{type(error).__name__}"
            time.sleep(0.1)
        raise LocalServiceError(
            f"{self.name} was not ready at {ready_url} within {timeout_s:g} s ({last}); its log {self.log_file} "
            f"ends with:\n{self.log_tail()}"
        )

    def stop(self, timeout_s: float = 10.0) -> bool:
        """SIGTERM, then SIGKILL after ``timeout_s``; the pid file is removed. False when nothing ran."""
        record = self._live_record()
        if record is None:
            return False
        pid = int(record["pid"])
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and _alive(pid, self.binary):
            time.sleep(0.05)
        if _alive(pid, self.binary):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            kill_deadline = time.monotonic() + 5.0
            while time.monotonic() < kill_deadline and _alive(pid, self.binary):
                time.sleep(0.05)
        if _alive(pid, self.binary):
            raise LocalServiceError(f"{self.name} (pid {pid}) did not stop after SIGKILL; pid file {self.pid_file} "
                                    "kept")
        # a multi-threaded daemon reads as exited (its main thread a zombie) while its other threads still end and
        # hold the listening socket: wait for the port, so that a start right after this one finds it free
        release_deadline = time.monotonic() + timeout_s
        while time.monotonic() < release_deadline and port_in_use(self.port):
            time.sleep(0.05)
        self.pid_file.unlink(missing_ok=True)
        return True

    def log_tail(self, lines: int = 20) -> str:
        """The last ``lines`` lines of the daemon's log ('' when there is none)."""
        try:
            text = self.log_file.read_text(errors="replace")
        except FileNotFoundError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


def call_service(name: str, method: str, url: str, path: str, *, unreachable: type[Exception], failed: type[Exception],
                 hint: str, **kwargs: Any) -> httpx.Response:
    """One HTTP request to a daemon's API; errors name the daemon, the URL and what to do (``hint``)."""
    try:
        response = httpx.request(method, url.rstrip("/") + path, timeout=10.0, **kwargs)
    except httpx.TransportError as error:
        raise unreachable(f"{name} at {url} cannot be reached ({type(error).__name__}: {error}); {hint}") from error
    if response.status_code >= 300:
        raise failed(f"{name} at {url} answered {method} {path} with HTTP {response.status_code}: "
                     f"{response.text.strip()[:500]}")
    return response
