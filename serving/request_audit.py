"""Every authenticated request in the audit trail, in batches: which key, role and purpose, which endpoint, how many.

One audit entry per request would put a database write on every call a voice bot makes, so
requests are counted in memory by (key name, role, purpose, endpoint) and written as one
``serving.requests`` entry per group: at most every ``every_s`` seconds (1), at once when
``max_pending`` (100) requests wait, and when the server stops. Never any text, audio or intent.

The loss window: a server killed without a clean stop (SIGKILL, power loss) loses the counts of at
most the last second or the last 100 requests. A failing audit write loses nothing: the counts
stay and the next flush writes them, and ``voiceloop_request_audit_failures_total`` counts it.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime

log = logging.getLogger("voiceloop.serving")

Group = tuple[str, str, str, str]  # key name, role, purpose, endpoint
Writer = Callable[[Group, int, datetime, datetime], None]


class RequestAuditor:
    """Counts requests and hands each group's count to ``write`` (one audit entry) in batches."""

    def __init__(self, write: Writer, every_s: float = 1.0, max_pending: int = 100,
                 on_failure: Callable[[Exception], None] | None = None) -> None:
        self._write, self._every_s, self._max_pending = write, every_s, max_pending
        self._on_failure = on_failure
        self._counts: Counter[Group] = Counter()
        self._since: datetime | None = None
        self._lock = threading.Lock()  # guards the counts
        self._flushing = threading.Lock()  # one flush at a time
        self._due = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def record(self, key: str, role: str, purpose: str, endpoint: str) -> None:
        with self._lock:
            self._counts[(key, role, purpose, endpoint)] += 1
            self._since = self._since or datetime.now(UTC)
            if self._counts.total() >= self._max_pending:
                self._due.set()

    @property
    def pending(self) -> int:
        with self._lock:
            return self._counts.total()

    def flush(self) -> None:
        """Write what is counted; a group whose write fails is kept for the next flush."""
        with self._flushing:
            with self._lock:
                counts, since = self._counts, self._since or datetime.now(UTC)
                self._counts, self._since = Counter(), None
            until = datetime.now(UTC)
            for group, count in sorted(counts.items()):
                try:
                    self._write(group, count, since, until)
                except Exception as error:  # the audit log is away: keep the count, try again
                    log.warning("auditing %d %s request(s) failed (%s); kept for the next flush",
                                count, group[3], type(error).__name__)
                    with self._lock:
                        self._counts[group] += count
                        self._since = min(self._since or since, since)
                    if self._on_failure:
                        self._on_failure(error)

    def start(self) -> None:
        def loop() -> None:
            while not self._stop.is_set():
                self._due.wait(self._every_s)
                self._due.clear()
                if self.pending:
                    self.flush()

        self._thread = threading.Thread(target=loop, name="request-audit", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the batching thread and write what is left."""
        self._stop.set()
        self._due.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
        self.flush()
