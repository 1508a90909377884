"""What ingest remembers of each call-store file, kept so that a run loads and rewrites only the folders it listed.

Per file (keyed by its path in the call store): ``seen``, the SHA-256 of the JSON last handled, and
``signatures``, what the listing said of that JSON and of its recording then (``[json signature,
audio path, audio signature]``, :mod:`governance.change_signals`). A file whose listing still says the same
is not read again. Files at the top of the store (a flat store) are kept in the main ingest state
(``ingest-<split>``, beside the watermark, ``monitor_pending`` and ``folders``, when each date folder was
last listed); the files of a date folder in a shard of their own (``ingest-<split>.<date>``).

Paths name calls (``<call_id>.json``), so an erasure removes them from every ingest state
(:func:`forget_calls`): the tombstone then does the job of the erased file's digest and signature.
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterable
from typing import Any

from governance.store import GovernedStore

INGEST_STATE = "ingest-"
SEEN, SIGNATURES = "seen", "signatures"
LEGACY_AUDIO = "audio_seen"  # the recording's identity as code before signatures kept it (read, then replaced)
MONITOR_PENDING = "monitor_pending"
#: The per-file records of an ingest state: each is keyed by a path that names a call.
PER_FILE = (SEEN, LEGACY_AUDIO, SIGNATURES, MONITOR_PENDING)

Signature = list[str | None]  # [json signature, audio path in the store, audio signature]


class IngestLedger:
    """One split's ingest bookkeeping: the main state, and the shards of the date folders this run touched."""

    def __init__(self, store: GovernedStore, state_name: str) -> None:
        self.store = store
        self.name = state_name
        self.main: dict[str, Any] = store.read_state(state_name)
        self._shards: dict[str, dict[str, Any]] = {"": self.main}
        self._dirty: set[str] = set()

    def _shard(self, shard: str) -> dict[str, Any]:
        if shard not in self._shards:
            self._shards[shard] = self.store.read_state(f"{self.name}.{shard}")
        return self._shards[shard]

    def digest(self, shard: str, path: str) -> str | None:
        digest: str | None = self._shard(shard).get(SEEN, {}).get(path)
        return digest

    def signature(self, shard: str, path: str) -> Signature | None:
        recorded: Signature | None = self._shard(shard).get(SIGNATURES, {}).get(path)
        return recorded

    def legacy_audio(self, shard: str, path: str) -> str | None:
        identity: str | None = self._shard(shard).get(LEGACY_AUDIO, {}).get(path)
        return identity

    def record(self, shard: str, path: str, digest: str, signature: Signature) -> None:
        """``path`` was handled at this version (its JSON's digest, what the listing said of it and its audio)."""
        data = self._shard(shard)
        data.setdefault(SEEN, {})[path] = digest
        data.setdefault(SIGNATURES, {})[path] = signature
        data.get(LEGACY_AUDIO, {}).pop(path, None)  # the signature now does what the old identity did
        self._dirty.add(shard)

    def save(self, **fields: Any) -> None:
        """Write the shards changed since the last save, and the main state with ``fields`` set."""
        self.main.update(fields)
        self._dirty.add("")
        for shard in sorted(self._dirty):
            self.store.write_state(f"{self.name}.{shard}" if shard else self.name, self._shards[shard])
        self._dirty.clear()


def forget_calls(store: GovernedStore, call_ids: Iterable[str]) -> None:
    """Drop every per-file record of these calls' files from every ingest state (main states and shards)."""
    names = {f"{call_id}.json" for call_id in call_ids}
    if not names:
        return
    for state_name in store.state_names(INGEST_STATE):
        state = store.read_state(state_name)
        kept = {key: {path: value for path, value in state.get(key, {}).items()
                      if posixpath.basename(path) not in names}
                for key in PER_FILE if key in state}
        if any(len(kept[key]) != len(state[key]) for key in kept):
            store.write_state(state_name, {**state, **kept})
