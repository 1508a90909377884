"""List only the parts of a call store that can hold new or changed calls, so a run's listing stays bounded.

A call store is flat (``<call_id>.json`` at the top) or date-partitioned (``2026-11-02/<call_id>.json``, or
``date=2026-11-02/...``: top-level folders named by a date), or both. Each run lists:

- the top level (call files there, and the folders);
- every top-level folder that is not a date, in full (a flat store's ``audio/``);
- a date folder when it was never listed, when its date is within ``lateness_days`` of the watermark's
  date (late arrivals land there; a watermark after today counts as today), or when its last listing is
  older than ``sweep_days`` (the sweep: a document rewritten in an old folder, such as a consent
  withdrawn or a fixed transcript, is noticed within ``sweep_days`` plus one run interval). Other date
  folders are not listed at all.

A folder listed for the first time is recorded as listed up to ``sweep_days`` earlier than it was (a fixed
fraction per folder name), so a large backfill is swept again spread over the period, not all in one run.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from core.settings import SourcesConfig
from governance.change_signals import signature

_DATE_FOLDER = re.compile(r"^(?:[A-Za-z_][A-Za-z0-9_]*=)?(\d{4}-\d{2}-\d{2})$")


@dataclass(frozen=True)
class ListingWindow:
    """Which date folders a run lists again (``sources.lateness_days``, ``sources.sweep_days``)."""

    lateness_days: int
    sweep_days: float

    @classmethod
    def of(cls, sources: SourcesConfig) -> ListingWindow:
        return cls(lateness_days=sources.lateness_days, sweep_days=sources.sweep_days)


@dataclass
class Listing:
    """What one run listed: the call documents to consider and every file's signature."""

    documents: list[tuple[str, str]] = field(default_factory=list)  # (path in the store, its ledger shard)
    files: dict[str, str | None] = field(default_factory=dict)  # path in the store -> signature
    listed_folders: list[str] = field(default_factory=list)  # date folders listed this run
    skipped_folders: list[str] = field(default_factory=list)  # date folders left out (outside the window, swept)
    folders: dict[str, str] = field(default_factory=dict)  # date folder -> when it counts as last listed (ISO)


def folder_date(name: str) -> date | None:
    """The date a top-level folder is named by (``2026-11-02`` or ``key=2026-11-02``), None for other folders."""
    match = _DATE_FOLDER.match(name)
    if not match:
        return None
    try:
        return date.fromisoformat(match.group(1))
    except ValueError:
        return None


def list_store(fs: Any, root: str, watermark: str | None, listed_at: dict[str, str], window: ListingWindow,
               now: datetime) -> Listing:
    """List what this run must consider; ``listed_at`` is the previous run's record of the date folders."""
    fs.invalidate_cache(root)  # an object store's cached listing would hide what changed since the last run
    listing = Listing()
    cutoff = _cutoff(watermark, window, now)
    for entry in fs.ls(root, detail=True):
        relative = _relative(root, entry["name"])
        if not relative:
            continue
        if entry.get("type") != "directory":
            _add(listing, relative, entry, "")
            continue
        day = folder_date(relative)
        if day is None:
            _list_folder(fs, root, entry["name"], listing, shard=None)
            continue
        last = listed_at.get(relative)
        if last is None or cutoff is None or day >= cutoff or _due(last, window, now):
            _list_folder(fs, root, entry["name"], listing, shard=day.isoformat())
            listing.listed_folders.append(relative)
            listing.folders[relative] = (now if last is not None else _staggered(relative, window, now)).isoformat()
        else:
            listing.skipped_folders.append(relative)
            listing.folders[relative] = last
    listing.documents.sort()
    return listing


def _cutoff(watermark: str | None, window: ListingWindow, now: datetime) -> date | None:
    """Date folders from this day on are listed on every run (None: no watermark yet, list them all). A
    watermark in the future (one call with a wrong clock) counts as today's: it must not hide today's folders."""
    if watermark is None:
        return None
    latest = min(datetime.fromisoformat(watermark).astimezone(UTC).date(), now.astimezone(UTC).date())
    return latest - timedelta(days=window.lateness_days)


def _due(last: str, window: ListingWindow, now: datetime) -> bool:
    return now - datetime.fromisoformat(last) >= timedelta(days=window.sweep_days)


def _staggered(folder: str, window: ListingWindow, now: datetime) -> datetime:
    fraction = int(hashlib.sha256(folder.encode()).hexdigest()[:8], 16) / 2**32
    return now - timedelta(days=window.sweep_days * fraction)


def _list_folder(fs: Any, root: str, path: str, listing: Listing, shard: str | None) -> None:
    """Every file under ``path``; its direct ``.json`` children are call documents when it is a date folder."""
    for name, entry in fs.find(path, detail=True).items():
        relative = _relative(root, name)
        if shard is not None and relative.count("/") == 1:
            _add(listing, relative, entry, shard)
        else:
            listing.files[relative] = signature(entry)


def _add(listing: Listing, relative: str, entry: dict[str, Any], shard: str) -> None:
    listing.files[relative] = signature(entry)
    if relative.endswith(".json"):
        listing.documents.append((relative, shard))


def _relative(root: str, name: str) -> str:
    """``name`` relative to the store's root ("" for the root itself)."""
    name = name.rstrip("/")
    if not name.startswith(root + "/"):
        return ""
    return name[len(root) + 1:]
