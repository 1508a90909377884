"""Runs the local Label Studio where QA reviewers label sampled production calls, offline and on 127.0.0.1 only.

Label Studio lives in a virtualenv of its own (its pins, Django 5.2 and numpy 2.2, differ from the
project's): :func:`install_studio` creates it. :class:`LocalLabelStudio` runs it as a
:class:`~core.local_service.LocalService` with everything under one folder: ``data/`` (its SQLite
database and uploads), ``label-studio.log``, ``label-studio.pid`` and ``credentials.json`` (mode
0600: the admin's login and API token, generated once with :mod:`secrets`, never printed and never
on a command line, where any local user could read them: Label Studio takes them from its
environment). The audio reviewers hear is served by Label Studio itself from ``media_root``
(``/data/local-files/?d=<path relative to media_root>``, :func:`local_file_url`), to logged-in
users only, and only below a folder a project has a local-files storage for
(:meth:`qa.studio_api.StudioClient.ensure_local_storage`).

The environment is built from scratch, not inherited: Label Studio reads plain names such as
``HOST``, ``DEBUG``, ``USERNAME`` or ``SENTRY_DSN`` as settings. It turns off usage analytics,
the PyPI version check, Sentry error reports (on by default, to Label Studio's own project) and
Django's debug mode, keeps feature flags offline, and points every outbound HTTP(S) request of the
process at a proxy that does not exist (``NO_PROXY`` spares 127.0.0.1), so nothing it might fetch
(the UI's "tips" come from GitHub) leaves the machine.

Deleted tasks must leave no copy in the database file: a ``sitecustomize`` module on Label
Studio's ``PYTHONPATH`` turns on ``PRAGMA secure_delete`` for each of its SQLite connections, so
SQLite overwrites deleted rows with zeros instead of leaving them in free pages (Debian builds
SQLite with that default; other builds, e.g. Python's own or Homebrew's, may not).
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

import httpx

from core import progress
from core.local_service import HOST, LocalService, LocalServiceError, ServiceStatus

#: The Label Studio release voiceloop is written and tested against.
STUDIO_VERSION = "1.23.2"
STUDIO_PACKAGE = f"label-studio=={STUDIO_VERSION}"

#: What a healthy Label Studio answers without authentication.
READY_PATH = "/health/"

#: Variables of this process that Label Studio may see (locale, time zone, home, temp dir); nothing else.
_PASSED_ON = ("HOME", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "TMPDIR")

#: Telemetry, update checks and debug mode off; feature flags from the bundled file.
_OFFLINE = {
    "COLLECT_ANALYTICS": "false",
    "LABEL_STUDIO_LATEST_VERSION_CHECK": "false",
    "SENTRY_DSN": "",
    "FRONTEND_SENTRY_DSN": "",
    "LABEL_STUDIO_FEATURE_FLAGS_OFFLINE": "true",
    "LABEL_STUDIO_CONVERTER_DOWNLOAD_RESOURCES": "false",
    "LABEL_STUDIO_DEBUG": "false",
}

#: Outbound HTTP(S) goes to a proxy that is not there (the discard port): nothing leaves the machine.
_NO_EGRESS = {
    **{name: "http://127.0.0.1:9" for name in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY")},
    **{name: "127.0.0.1,localhost" for name in ("no_proxy", "NO_PROXY")},
}

_SECURE_DELETE_HOOK = '''\
"""Written by voiceloop (qa/studio.py): Label Studio's SQLite overwrites what it deletes."""
try:
    from django.db.backends.signals import connection_created
except ImportError:  # not Label Studio's interpreter
    pass
else:
    def _secure_delete(sender, connection, **kwargs):
        if connection.vendor == "sqlite":
            with connection.cursor() as cursor:
                cursor.execute("PRAGMA secure_delete = ON")

    connection_created.connect(_secure_delete, weak=False)
'''


class StudioError(RuntimeError):
    """Label Studio could not be installed, started or reached; the message says why and what to do."""


@dataclass(frozen=True)
class StudioConnection:
    """Where a Label Studio answers, and the API token of the user the requests act as."""

    url: str
    token: str = field(repr=False)


@dataclass(frozen=True)
class StudioCredentials:
    """The admin account :class:`LocalLabelStudio` creates at its first start."""

    username: str
    password: str = field(repr=False)
    token: str = field(repr=False)


@dataclass(frozen=True)
class StudioStatus:
    """Running or not; ``url``, ``pid`` and ``token`` are None when it is not running."""

    running: bool
    url: str | None
    pid: int | None
    token: str | None = field(repr=False)
    log_file: Path

    @property
    def connection(self) -> StudioConnection:
        if not self.running or self.url is None or self.token is None:
            raise StudioError("Label Studio is not running: start it first")
        return StudioConnection(self.url, self.token)


def local_file_url(relative_path: str) -> str:
    """The URL (path only) under which Label Studio serves ``relative_path`` of its local-files document root."""
    return "/data/local-files/?d=" + quote(relative_path.lstrip("/"), safe="/")


def _run(command: list[str], what: str) -> None:
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        tail = "\n".join((result.stderr or result.stdout).strip().splitlines()[-15:])
        raise StudioError(f"{what} failed (exit status {result.returncode}). Run it by hand to see why: "
                          f"`{' '.join(command)}`. Its output ended with:\n{tail}")


def install_studio(venv: Path) -> bool:
    """Create ``venv`` with Label Studio :data:`STUDIO_VERSION` in it, unless it is there; True when it installed.

    A stamp file (``venv/.installed``, holding the requirement) marks a finished install: a venv
    left half-done by an interrupted pip is completed, one of another version is upgraded in place.
    """
    venv = Path(venv).absolute()
    stamp = venv / ".installed"
    if stamp.is_file() and stamp.read_text().strip() == STUDIO_PACKAGE and (venv / "bin" / "label-studio").exists():
        return False
    step = f"installing {STUDIO_PACKAGE} into {venv} (about a minute)"
    progress.started(step)
    if not (venv / "bin" / "python").exists():
        _run([sys.executable, "-m", "venv", str(venv)], f"creating the virtualenv {venv}")
    _run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", STUDIO_PACKAGE], f"installing {STUDIO_PACKAGE}")
    stamp.write_text(STUDIO_PACKAGE + "\n")
    progress.finished(step)
    return True


def _write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` readable by this user only, atomically."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.unlink(missing_ok=True)
    descriptor = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(text)
    tmp.replace(path)


class LocalLabelStudio:
    """Label Studio from ``venv``, its files under ``folder``, serving ``media_root``'s files, on 127.0.0.1:``port``."""

    name = "label-studio"

    def __init__(self, folder: Path, port: int, venv: Path, media_root: Path) -> None:
        self.folder = Path(folder).absolute()
        self.port = port
        self.venv = Path(venv).absolute()
        self.media_root = Path(media_root).resolve()
        self.data_dir = self.folder / "data"
        self.credentials_file = self.folder / "credentials.json"
        self.hooks_dir = self.folder / "python"
        self.database = self.data_dir / "label_studio.sqlite3"

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def executable(self) -> Path:
        return self.venv / "bin" / "label-studio"

    @property
    def log_file(self) -> Path:
        return self._service().log_file

    @property
    def pid_file(self) -> Path:
        return self._service().pid_file

    def ensure_installed(self) -> bool:
        """Create the virtualenv with Label Studio when it is missing (about a minute); True when it installed."""
        return install_studio(self.venv)

    def media_url(self, path: Path) -> str:
        """The URL of ``path`` (a file below ``media_root``) as a task's data gives it to Label Studio."""
        resolved = Path(path).resolve()
        if not resolved.is_relative_to(self.media_root):
            raise StudioError(f"{path} is not below Label Studio's media root {self.media_root}: it cannot serve it")
        return local_file_url(resolved.relative_to(self.media_root).as_posix())

    # -- credentials and environment --------------------------------------------------------------------

    def _stored_credentials(self) -> StudioCredentials | None:
        if not self.credentials_file.exists():
            return None
        self.credentials_file.chmod(0o600)
        try:
            record = json.loads(self.credentials_file.read_text())
            return StudioCredentials(record["username"], record["password"], record["token"])
        except (ValueError, KeyError, TypeError) as error:
            raise StudioError(f"{self.credentials_file} is damaged ({type(error).__name__}); restore it, or "
                              f"move {self.folder} away to start a new Label Studio") from error

    def credentials(self) -> StudioCredentials:
        """The admin's credentials, generated and kept in ``credentials.json`` (mode 0600) the first time."""
        stored = self._stored_credentials()
        if stored is not None:
            return stored
        if self.database.exists():
            raise StudioError(f"{self.data_dir} holds a Label Studio database but {self.credentials_file} is gone: "
                              f"its admin token cannot be recovered. Restore the file, or move {self.data_dir} away "
                              "to start afresh (its projects and annotations go with it)")
        created = StudioCredentials(username=f"voiceloop-{secrets.token_hex(4)}@localhost",
                                    password=secrets.token_urlsafe(24), token=secrets.token_hex(20))
        self.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        _write_private(self.credentials_file, json.dumps(
            {"username": created.username, "password": created.password, "token": created.token}))
        return created

    def environment(self, credentials: StudioCredentials) -> dict[str, str]:
        """Label Studio's whole environment (see the module's docstring): it inherits nothing else."""
        env = {name: os.environ[name] for name in _PASSED_ON if name in os.environ}
        env.update(_OFFLINE)
        env.update(_NO_EGRESS)
        env.update({
            "PATH": f"{self.venv / 'bin'}{os.pathsep}{os.environ.get('PATH', os.defpath)}",
            "PYTHONPATH": str(self.hooks_dir),
            "PYTHONNOUSERSITE": "1",
            "LABEL_STUDIO_BASE_DATA_DIR": str(self.data_dir),
            "LABEL_STUDIO_HOST": self.url,
            "LABEL_STUDIO_LOCAL_FILES_SERVING_ENABLED": "true",
            "LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT": str(self.media_root),
            # reviewers join through the invite link only (the admin's token fetches it), not by open signup
            "LABEL_STUDIO_DISABLE_SIGNUP_WITHOUT_LINK": "true",
            # `Authorization: Token <key>` (the organisation created at first start accepts it)
            "LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN": "true",
            "LABEL_STUDIO_USERNAME": credentials.username,
            "LABEL_STUDIO_PASSWORD": credentials.password,
            "LABEL_STUDIO_USER_TOKEN": credentials.token,
        })
        return env

    def _service(self, env: dict[str, str] | None = None) -> LocalService:
        return LocalService(
            name=self.name, binary=str(self.executable), package=STUDIO_PACKAGE, folder=self.folder, port=self.port,
            args=["start", "--no-browser", "--internal-host", HOST, "-p", str(self.port)],
            ready_path=READY_PATH, env=env,
            install_hint=f"Create its virtualenv {self.venv}: LocalLabelStudio.ensure_installed() does (or, for "
                         "the repository's .venv-labelstudio, `make studio-venv`).",
        )

    # -- lifecycle ----------------------------------------------------------------------------------------

    def start(self, timeout_s: float = 120.0) -> StudioStatus:
        """Start Label Studio unless it runs, wait until it serves, and check that the admin token works.

        The first start creates the database (migrations: 20-45 s on 2 cores) and the admin user.
        """
        service = self._service()
        try:
            service.executable()  # a missing install is reported before anything is written
            credentials = self.credentials()
            self.media_root.mkdir(parents=True, exist_ok=True)
            self.hooks_dir.mkdir(exist_ok=True)
            (self.hooks_dir / "sitecustomize.py").write_text(_SECURE_DELETE_HOOK)
            service = self._service(self.environment(credentials))
            service.start(timeout_s)
        except LocalServiceError as error:
            raise StudioError(str(error)) from error
        self._check_token(credentials.token)
        return self._status(service.status(), credentials)

    def _check_token(self, token: str) -> None:
        try:
            response = httpx.get(self.url + "/api/current-user/whoami", headers={"Authorization": f"Token {token}"},
                                 timeout=30.0)
        except httpx.TransportError as error:
            raise StudioError(f"Label Studio at {self.url} stopped answering ({type(error).__name__})") from error
        if response.status_code != 200:
            raise StudioError(
                f"Label Studio at {self.url} refused the admin token of {self.credentials_file} (HTTP "
                f"{response.status_code}: {response.text.strip()[:300]}): is another Label Studio on port {self.port}, "
                f"or was {self.data_dir} created with other credentials?")

    def stop(self, timeout_s: float = 10.0) -> bool:
        """Stop it (SIGTERM, then SIGKILL); False when it was not running."""
        return self._service().stop(timeout_s)

    def status(self) -> StudioStatus:
        """Running or not, with its URL, pid and the admin token when it runs."""
        return self._status(self._service().status(), self._stored_credentials())

    def _status(self, found: ServiceStatus, credentials: StudioCredentials | None) -> StudioStatus:
        token = credentials.token if credentials is not None and found.running else None
        return StudioStatus(found.running, found.url, found.pid, token, found.log_file)
