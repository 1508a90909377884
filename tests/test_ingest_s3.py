"""Ingest from an S3 call store (a real S3 API: moto's server on 127.0.0.1) reads only what the listing says changed."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import fsspec
import pytest

from governance.audit import Actor, AuditLog
from governance.ingest import ingest
from governance.ingest_listing import ListingWindow
from governance.store import GovernedStore
from tests.conftest import write_call
from tests.s3_server import S3

T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
WINDOW = ListingWindow(lateness_days=2, sweep_days=7)


@pytest.fixture()
def s3_url(s3: S3) -> str:
    """A call store in a fresh bucket of the session's S3 server (tests/s3_server.py)."""
    return f"s3://{s3.bucket()}/calls"


def _upload(local: Path, url: str) -> None:
    fs, root = fsspec.core.url_to_fs(url)
    for path in sorted(p for p in local.rglob("*") if p.is_file()):
        fs.pipe_file(f"{root}/{path.relative_to(local).as_posix()}", path.read_bytes())


def test_an_s3_store_is_read_only_where_its_listing_changed(s3_url: str, tmp_path: Path) -> None:
    local = tmp_path / "local"
    for day in ("2026-11-01", "2026-11-09", "2026-11-10"):
        write_call(local / day, f"call-{day}", started_at=f"{day}T10:00:00+00:00")
    write_call(local, "flat-call", started_at="2026-11-10T09:00:00+00:00")
    _upload(local, s3_url)
    store = GovernedStore(tmp_path / "zones", AuditLog(f"sqlite:///{tmp_path / 'audit.db'}"),
                          Actor(role="pipeline", purpose="ingest", user="tester"))
    first = ingest(store, s3_url, "train", window=WINDOW, now=T0)
    assert first.documents_read == 4 and len(first.ingested) == 4 and first.folders_listed == 3

    _upload(local, s3_url)  # the same bytes uploaded again: the ETags say nothing changed
    again = ingest(store, s3_url, "train", window=WINDOW, now=T0 + timedelta(minutes=1))
    assert (again.documents_read, again.folders_listed, again.folders_skipped) == (0, 2, 1)

    write_call(local / "2026-11-11", "call-new", started_at="2026-11-11T10:00:00+00:00")
    withdrawn = local / "2026-11-10" / "call-2026-11-10.json"
    withdrawn.write_text(json.dumps({**json.loads(withdrawn.read_text()), "consent": {"training": False}}))
    _upload(local, s3_url)
    changed = ingest(store, s3_url, "train", window=WINDOW, now=T0 + timedelta(minutes=2))
    assert changed.documents_read == 2 and changed.ingested == ["call-new"]
    assert changed.withdrawn == ["call-2026-11-10"]
