"""The store-wide ingest lock: one ingest at a time per store (the retrain's, the monitor's), on one machine and
across machines.

Two flows that ingest the same call store at once would import the same files twice. On one
machine a ``flock`` in the store's work area keeps them apart. A store on object storage is shared
by machines whose work areas are their own, so there the audit log's PostgreSQL, which every
machine of one store shares (docs/scale.md), also holds a session-level advisory lock keyed by the
store's location: a flow on a second machine waits as a second process on the first one does.
PostgreSQL drops an advisory lock when its session ends, so a machine that dies mid-ingest frees
the store. A SQLite audit log means one machine, and the flock is the whole lock.
"""

from __future__ import annotations

import fcntl
import hashlib
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import IO

from sqlalchemy import text

from governance.audit import AuditLog

TELL_AFTER_S = 5.0  # a flow that waits longer is told so, once
POLL_S = 0.5


def advisory_key(location: str) -> int:
    """The advisory lock's id for the store at ``location``: a signed 64-bit hash (PostgreSQL's bigint)."""
    digest = hashlib.sha256(f"voiceloop-ingest|{location}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


@contextmanager
def ingest_lock(path: Path, audit: AuditLog, location: str, timeout_s: float,
                say: Callable[[str], None] = lambda line: print(line, flush=True)) -> Iterator[None]:
    """Hold the flock at ``path`` and, with a PostgreSQL audit log, the advisory lock of ``location``;
    TimeoutError naming what was held once ``timeout_s`` have passed waiting."""
    deadline = time.monotonic() + timeout_s
    with ExitStack() as held:
        handle = held.enter_context(path.open("a+"))
        _wait(lambda: _try_flock(handle), str(path), deadline, timeout_s, say)
        held.callback(fcntl.flock, handle, fcntl.LOCK_UN)
        if audit.dialect == "postgresql":
            connection = held.enter_context(audit.engine.connect().execution_options(isolation_level="AUTOCOMMIT"))
            key = advisory_key(location)
            what = f"the ingest lock of {location} in the audit database"
            _wait(lambda: bool(connection.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": key}).scalar()),
                  what, deadline, timeout_s, say)
            held.callback(connection.execute, text("SELECT pg_advisory_unlock(:k)"), {"k": key})
        yield


def _try_flock(handle: IO[str]) -> bool:
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _wait(take: Callable[[], bool], what: str, deadline: float, timeout_s: float, say: Callable[[str], None]) -> None:
    started, told = time.monotonic(), False
    while not take():
        if time.monotonic() > deadline:
            raise TimeoutError(f"another voiceloop flow has held {what} for {timeout_s:.0f} s")
        if not told and time.monotonic() - started > TELL_AFTER_S:
            say(f"waiting for another flow's ingest to finish ({what})")
            told = True
        time.sleep(POLL_S)
