"""Follow a registry alias: serve the bundle it points at, and swap to the next one without dropping a request.

A request takes the bundle that is current when it starts (:attr:`BundleFollower.current`) and
keeps it to the end. When the alias moves, the new bundle is loaded whole in the background while
the old one goes on serving; then one reference is replaced. Requests already running finish on
the old bundle, which is freed when the last of them lets go. A bundle that fails to load is
reported (``last_error``, the ``reloads`` counter) and the old one keeps serving; the next poll
tries again.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Generic, TypeVar

Loaded = TypeVar("Loaded")
log = logging.getLogger("voiceloop.serving")


class BundleFollower(Generic[Loaded]):
    """``locate()`` names the version the alias points at now; ``load(version)`` loads it (version None: none yet)."""

    def __init__(self, locate: Callable[[], str | None], load: Callable[[str | None], Loaded],
                 on_swap: Callable[[str | None, str | None], None] | None = None,
                 on_error: Callable[[Exception], None] | None = None) -> None:
        self._locate, self._load = locate, load
        self._on_swap, self._on_error = on_swap, on_error
        self.version = locate()
        self._current = load(self.version)
        self.last_error: str | None = None
        self._lock = threading.Lock()  # one reload at a time
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def current(self) -> Loaded:
        return self._current

    def check(self) -> bool:
        """Load and swap in the bundle the alias points at, if it moved; True when it did."""
        with self._lock:
            try:
                version = self._locate()
                if version == self.version:
                    return False
                loaded = self._load(version)
            except Exception as error:  # any failure: keep serving what is loaded
                self.last_error = f"{type(error).__name__}: {error}"
                log.warning("bundle reload failed, still serving v%s: %s", self.version, self.last_error)
                if self._on_error:
                    self._on_error(error)
                return False
            before, self.version, self._current = self.version, version, loaded
            self.last_error = None
        log.info("now serving bundle v%s (was v%s)", version, before)
        if self._on_swap:
            self._on_swap(before, version)
        return True

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
