"""A throwaway Label Studio for tests: one real server per session, from the repository's .venv-labelstudio.

The ``label_studio`` fixture (tests/conftest.py) starts it with the project's own
:class:`qa.studio.LocalLabelStudio` on a free port of 127.0.0.1, its folder and media root in a
temporary folder, and stops it at the end of the session. The first start creates the database
(20-45 s on 2 cores). A missing virtualenv fails the tests, naming the Makefile target that makes
it: Label Studio tests never skip silently.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from qa.studio import LocalLabelStudio, StudioConnection, StudioStatus
from qa.studio_api import StudioClient
from tests.alerting_helpers import free_port

REPO = Path(__file__).resolve().parents[1]
STUDIO_VENV = REPO / ".venv-labelstudio"
#: The first start migrates a new database: 20-45 s here, more when the machine is busy.
START_TIMEOUT_S = 240.0


@dataclass
class StudioHarness:
    """The running server: its :class:`LocalLabelStudio` and the admin's status and connection."""

    studio: LocalLabelStudio
    status: StudioStatus

    @property
    def connection(self) -> StudioConnection:
        return self.status.connection

    def client(self) -> StudioClient:
        """A client acting as the admin (close it, or use it in a ``with``)."""
        return StudioClient(self.connection)


@contextmanager
def running_studio(root: Path, media_root: Path | None = None, venv: Path = STUDIO_VENV) -> Iterator[StudioHarness]:
    """Label Studio from ``venv`` with its files under ``root``, running for the ``with`` block; it serves local
    files from ``media_root`` (default ``root/media``)."""
    if not (venv / "bin" / "label-studio").exists():
        pytest.fail(f"Label Studio's virtualenv {venv} is missing: run `make studio-venv` (`make test` does) to "
                    "create it (about a minute)", pytrace=False)
    studio = LocalLabelStudio(root / "studio", free_port(), venv, media_root or root / "media")
    try:
        harness = StudioHarness(studio, studio.start(START_TIMEOUT_S))
        yield harness
    finally:
        studio.stop()
