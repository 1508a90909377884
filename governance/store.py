"""The governed store: the only code that reads or writes call data.

Four zones live under one folder: ``raw`` (calls as ingested, with audio), ``redacted``
(PII-free transcripts and audio facts), ``datasets`` (versioned training/evaluation sets) and
``quarantine`` (what failed a check, with the reason). Every operation is checked against
the access policy for the actor's purpose and written to the audit trail, denied ones too.
Writes are atomic (temp file + rename) so a killed run never leaves half a record.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from governance import access
from governance.access import AccessDenied, Operation
from governance.audit import Actor, AuditLog
from governance.contract import SAFE_ID


def _atomic_write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _dump(document: Any) -> bytes:
    return json.dumps(document, indent=1, sort_keys=True, default=str).encode()


def _safe(call_id: str) -> str:
    if not SAFE_ID.match(call_id):
        raise ValueError("unsafe call id rejected by the store (letters, digits, '_', '-', '.' only)")
    return call_id


class GovernedStore:
    """Zones on a local folder, accessed on behalf of one :class:`Actor`."""

    def __init__(self, root: Path, audit: AuditLog, actor: Actor) -> None:
        self.root = root
        self.audit = audit
        self.actor = actor
        for zone in access.ZONES:
            (root / zone).mkdir(parents=True, exist_ok=True)
        (root / "state").mkdir(parents=True, exist_ok=True)

    def as_purpose(self, purpose: str) -> GovernedStore:
        """The same store, used for another purpose (each purpose is checked on its own)."""
        return GovernedStore(self.root, self.audit, self.actor.for_purpose(purpose))

    # -- access and audit -------------------------------------------------
    def _authorise(self, zone: str, operation: Operation, call_ids: Iterable[str] = ()) -> None:
        try:
            access.check(self.actor.role, self.actor.purpose, zone, operation)
        except AccessDenied as denied:
            self.audit.append(
                self.actor, f"{zone}.{operation}", zone=zone, outcome="denied", detail={"reason": str(denied)}
            )
            raise

    def _record(self, zone: str, action: str, call_ids: Iterable[str], **detail: Any) -> None:
        ids = list(call_ids)
        if ids or detail:
            self.audit.append(self.actor, action, zone=zone, call_ids=ids, detail=detail)

    # -- raw zone -----------------------------------------------------------
    def raw_dir(self, call_id: str) -> Path:
        return self.root / "raw" / _safe(call_id)

    def write_raw(self, records: list[tuple[dict[str, Any], bytes, str]]) -> None:
        """Store calls as ingested: (document, audio bytes, audio file suffix) each."""
        self._authorise("raw", "write")
        for document, audio, suffix in records:
            folder = self.raw_dir(document["call_id"])
            _atomic_write(folder / f"audio{suffix}", audio)
            _atomic_write(folder / "call.json", _dump({**document, "audio": f"audio{suffix}"}))
        self._record("raw", "raw.write", [d["call_id"] for d, _, _ in records])

    def raw_call_ids(self) -> set[str]:
        return {p.parent.name for p in (self.root / "raw").glob("*/call.json")}

    def read_raw(self, call_ids: Iterable[str]) -> Iterator[tuple[dict[str, Any], Path]]:
        """Yield (document, audio path) for each call; one audit entry for the whole read."""
        ids = sorted(call_ids)
        self._authorise("raw", "read", ids)
        self._record("raw", "raw.read", ids)
        for call_id in ids:
            folder = self.raw_dir(call_id)
            document = json.loads((folder / "call.json").read_text())
            yield document, folder / document["audio"]

    # -- redacted zone --------------------------------------------------------
    def _redacted_path(self, call_id: str) -> Path:
        return self.root / "redacted" / f"{_safe(call_id)}.json"

    def write_redacted(self, documents: list[dict[str, Any]]) -> None:
        self._authorise("redacted", "write")
        for document in documents:
            _atomic_write(self._redacted_path(document["call_id"]), _dump(document))
        self._record("redacted", "redacted.write", [d["call_id"] for d in documents])

    def redacted_call_ids(self) -> set[str]:
        return {p.stem for p in (self.root / "redacted").glob("*.json")}

    def read_redacted(self, call_ids: Iterable[str] | None = None) -> list[dict[str, Any]]:
        ids = sorted(self.redacted_call_ids() if call_ids is None else call_ids)
        self._authorise("redacted", "read", ids)
        documents = [json.loads(self._redacted_path(c).read_text()) for c in ids]
        self._record("redacted", "redacted.read", ids)
        return documents

    # -- quarantine -------------------------------------------------------------
    def quarantine(
        self,
        stage: str,
        item_id: str,
        reason: str,
        *,
        call_id: str | None = None,
        payload: dict[str, Any] | None = None,
        files: dict[str, bytes] | None = None,
    ) -> Path:
        """Keep what failed, with why; nothing that fails a check is ever dropped."""
        self._authorise("quarantine", "write")
        safe_item = "".join(ch if ch.isalnum() or ch in "_.-" else "_" for ch in item_id)[:150] or "item"
        folder = self.root / "quarantine" / stage / safe_item
        record = {
            "stage": stage,
            "item": item_id if SAFE_ID.match(item_id) else safe_item,
            "call_id": call_id,
            "reason": reason,
            "quarantined_at": datetime.now(UTC).isoformat(),
            "flow_run_id": self.actor.flow_run_id,
        }
        _atomic_write(folder / "reason.json", _dump(record))
        if payload is not None:
            _atomic_write(folder / "payload.json", _dump(payload))
        for name, data in (files or {}).items():
            _atomic_write(folder / Path(name).name, data)
        self.audit.append(
            self.actor,
            "quarantine.write",
            zone="quarantine",
            call_ids=[call_id] if call_id else [],
            detail={"stage": stage, "item": record["item"], "reason": reason},
        )
        return folder

    def quarantined(self, stage: str | None = None) -> list[dict[str, Any]]:
        """Reasons only (no payloads): safe for summaries and the CLI."""
        pattern = f"{stage}/*/reason.json" if stage else "*/*/reason.json"
        return [json.loads(p.read_text()) for p in sorted((self.root / "quarantine").glob(pattern))]

    # -- datasets zone ------------------------------------------------------------
    def dataset_dir(self, name: str, digest: str) -> Path:
        return self.root / "datasets" / name / digest

    def write_dataset(self, name: str, digest: str, writer: Any, call_ids: Iterable[str], **detail: Any) -> Path:
        """Run ``writer(tmp_dir)`` and publish the folder atomically as ``datasets/name/digest``."""
        self._authorise("datasets", "write")
        final = self.dataset_dir(name, digest)
        if not final.exists():
            tmp = final.with_name(f".{digest}.tmp-{os.getpid()}")
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.mkdir(parents=True)
            writer(tmp)
            os.replace(tmp, final)
        self._record("datasets", "datasets.write", call_ids, dataset=name, digest=digest, **detail)
        return final

    def open_dataset(self, name: str, digest: str, call_ids: Iterable[str] = ()) -> Path:
        """Hand a dataset folder to training/evaluation, audited with the calls it holds."""
        self._authorise("datasets", "read")
        path = self.dataset_dir(name, digest)
        if not path.exists():
            raise FileNotFoundError(f"dataset {name}@{digest[:12]} is not in the store; run `voiceloop retrain`")
        self._record("datasets", "datasets.read", call_ids, dataset=name, digest=digest)
        return path

    # -- small state files (watermarks, stage markers) ------------------------------
    def read_state(self, name: str) -> dict[str, Any]:
        path = self.root / "state" / f"{name}.json"
        return json.loads(path.read_text()) if path.exists() else {}

    def write_state(self, name: str, state: dict[str, Any]) -> None:
        _atomic_write(self.root / "state" / f"{name}.json", _dump(state))


def file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
