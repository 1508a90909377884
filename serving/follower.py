"""Follow a registry alias: serve the bundle it points at, and swap to the next one without dropping a request.

A request takes the bundle that is current when it starts (:attr:`BundleFollower.current`) and
keeps it to the end. When the alias moves, the new bundle is loaded whole in the background while
the old one goes on serving; then one reference is replaced. Requests already running finish on
the old bundle, which is freed when the last of them lets go.

Nothing stops the follower: a bundle that fails to load, a registry that cannot be reached or a
swap report (the audit entry) that cannot be written is recorded in ``last_error`` and reported
(``on_error``), the old bundle keeps serving, and the next poll tries again. A swap whose report
failed still happens (a rollback must take effect at once); its report is retried on every poll
until it is written, and until then ``last_error`` says so. ``last_error`` clears on the first poll
that finds everything in order.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Generic, TypeVar

Loaded = TypeVar("Loaded")
log = logging.getLogger("voiceloop.serving")


class BundleFollower(Generic[Loaded]):
    """``locate()`` names the version the alias points at now; ``load(version)`` loads it (version None: none yet).

    ``on_swap(before, after)`` reports a swap (the server audits it); ``on_error(stage, error)`` is told of
    each failure, ``stage`` being "locate", "load" or "report".
    """

    def __init__(self, locate: Callable[[], str | None], load: Callable[[str | None], Loaded],
                 on_swap: Callable[[str | None, str | None], None] | None = None,
                 on_error: Callable[[str, Exception], None] | None = None) -> None:
        self._locate, self._load = locate, load
        self._on_swap, self._on_error = on_swap, on_error
        self.version = locate()
        self._current = load(self.version)
        self.last_error: str | None = None
        self._unreported: list[tuple[str | None, str | None]] = []  # swaps whose report failed, oldest first
        self._lock = threading.Lock()  # one reload at a time
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def current(self) -> Loaded:
        return self._current

    @property
    def healthy(self) -> bool:
        """Following the alias with nothing failed since the last good poll."""
        return self.last_error is None

    def check(self) -> bool:
        """Load and swap in the bundle the alias points at, if it moved; True when it did. Never raises."""
        with self._lock:
            stage = "locate"
            swapped = False
            try:
                version = self._locate()
                if version != self.version:
                    stage = "load"
                    loaded = self._load(version)
                    before, self.version, self._current = self.version, version, loaded
                    self._unreported.append((before, version))
                    swapped = True
                    log.info("now serving bundle v%s (was v%s)", version, before)
                stage = "report"
                self._report_swaps()
            except Exception as error:  # any failure: keep serving what is loaded, try again next poll
                self._failed(stage, error)
                return swapped
            self.last_error = None
            return swapped

    def _report_swaps(self) -> None:
        while self._unreported:
            before, after = self._unreported[0]
            if self._on_swap:
                self._on_swap(before, after)
            self._unreported.pop(0)

    def _failed(self, stage: str, error: Exception) -> None:
        what = {"locate": "reading the alias", "load": "loading the bundle",
                "report": "recording the bundle swap"}[stage]
        self.last_error = f"{what} failed: {type(error).__name__}: {error}"
        log.warning("%s, serving v%s; retrying at the next poll", self.last_error, self.version)
        if self._on_error:
            try:
                self._on_error(stage, error)
            except Exception:  # a failing counter must not stop the follower either
                log.exception("bundle follower error hook failed")

    def start(self, every_s: float) -> None:
        """Check the alias every ``every_s`` seconds in a daemon thread until :meth:`stop`."""

        def loop() -> None:
            while not self._stop.wait(every_s):
                self.check()

        self._thread = threading.Thread(target=loop, name="bundle-follower", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
