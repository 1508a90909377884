"""Ingest cost against store size: a run must read the new calls, not the store's history (issue 20).

Builds a date-partitioned call store (``<day>/<call_id>.json``, ``--per-day`` calls a day; ``--layout flat``
puts every call at the top instead) of ``--calls`` small valid calls: one template document with new ids
and times, and one short recording per folder that all its calls name (the contract allows it: ``audio`` is
any path inside the store). Then, through the real :func:`governance.ingest.ingest` and a real governed store:

1. the first ingest (every call read and imported);
2. the same store again (nothing changed: expect 0 documents read);
3. ``--new`` calls in a new day's folder (expect that many read);
4. one call of the oldest folder rewritten to withdraw consent, run when the sweep is due
   (``sources.sweep_days`` after the first run: every old folder listed again, 1 document read).

One JSON line per figure (documents read, listing time, run time)::

    PYTHONPATH=. nice -n 15 .venv/bin/python benchmarks/ingest_scale.py                       # 100,000 + 1,000
    PYTHONPATH=. nice -n 15 .venv/bin/python benchmarks/ingest_scale.py --calls 2000 --new 20 # quick check
"""

from __future__ import annotations

import argparse
import io
import json
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
from common import emit, scratch  # benchmarks/common.py

FIRST_DAY = date(2026, 1, 1)
T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)  # the runs' clock (the sweep's)
TEMPLATE = json.dumps({
    "call_id": "@ID@", "started_at": "@START@", "caller_id": "@CALLER@", "consent": {"training": True},
    "audio": "@AUDIO@", "outcome": "contained",
    "turns": [{"speaker": "bot", "start_s": 0.0, "end_s": 0.1, "text": "how can I help"},
              {"speaker": "customer", "start_s": 0.12, "end_s": 0.24, "text": "my card has not arrived"}],
})


def recording() -> bytes:
    """A quarter second of 8 kHz tone: short, valid, and read by ingest like any recording."""
    buffer = io.BytesIO()
    t = np.arange(2000) / 8000
    sf.write(buffer, 0.1 * np.sin(2 * np.pi * 440 * t), 8000, format="WAV", subtype="PCM_16")
    return buffer.getvalue()


def write_calls(source: Path, first: int, count: int, per_day: int, flat: bool, audio: bytes) -> int:
    """Calls ``first`` .. ``first + count - 1``, call i on day ``i // per_day``; returns the folders written."""
    folders: set[Path] = set()
    for index in range(first, first + count):
        day = FIRST_DAY + timedelta(days=index // per_day)
        folder = source if flat else source / day.isoformat()
        if folder not in folders:
            tone = folder / "audio" / "tone.wav"
            if not tone.exists():  # rewritten, it would be a changed recording of every call naming it
                tone.parent.mkdir(parents=True, exist_ok=True)
                tone.write_bytes(audio)
            folders.add(folder)
        call_id = f"call-{index:07d}"
        started = datetime(day.year, day.month, day.day, tzinfo=UTC) + timedelta(seconds=index % per_day)
        text = (TEMPLATE.replace("@ID@", call_id).replace("@START@", started.isoformat())
                .replace("@CALLER@", f"caller-{index % 40_000}").replace("@AUDIO@", "audio/tone.wav"))
        (folder / f"{call_id}.json").write_text(text)
    return len(folders)


def run(figure: str, store: Any, source: Path, now: datetime, **extra: object) -> Any:
    from governance.ingest import ingest
    from governance.ingest_listing import ListingWindow

    start = time.perf_counter()
    report = ingest(store, str(source), "train", window=ListingWindow(lateness_days=2, sweep_days=7), now=now)
    emit(figure=figure, seconds=round(time.perf_counter() - start, 2), documents_read=report.documents_read,
         listed=report.listed, ingested=len(report.ingested), withdrawn=len(report.withdrawn),
         listing_seconds=report.listing_seconds, folders_listed=report.folders_listed,
         folders_skipped=report.folders_skipped, **extra)
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=100_000, help="calls in the store before the new ones")
    parser.add_argument("--new", type=int, default=1_000, help="new calls added for the incremental run")
    parser.add_argument("--per-day", type=int, default=1_000, help="calls per date folder")
    parser.add_argument("--layout", choices=("dated", "flat"), default="dated")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = parser.parse_args()
    flat = args.layout == "flat"
    with scratch("voiceloop-ingest-bench-", args.keep) as folder:
        from governance.audit import Actor, AuditLog
        from governance.store import GovernedStore

        source = folder / "calls"
        shape = {"calls": args.calls, "layout": args.layout, "per_day": args.per_day}
        start = time.perf_counter()
        folders = write_calls(source, 0, args.calls, args.per_day, flat, recording())
        emit(figure="ingest_bench_build_store", seconds=round(time.perf_counter() - start, 2), folders=folders,
             **shape)
        store = GovernedStore(folder / "zones", AuditLog(f"sqlite:///{folder / 'audit.db'}"),
                              Actor(role="pipeline", purpose="ingest", user="benchmark"))
        run("ingest_first_run", store, source, T0, **shape)
        run("ingest_unchanged_rerun", store, source, T0 + timedelta(minutes=1), **shape)

        # the new calls start on a new day: a day past the last folder of the store
        first_new = -(-args.calls // args.per_day) * args.per_day
        write_calls(source, first_new, args.new, args.per_day, flat, recording())
        run("ingest_new_calls", store, source, T0 + timedelta(minutes=2), new=args.new, **shape)

        oldest = source / "call-0000000.json" if flat else source / FIRST_DAY.isoformat() / "call-0000000.json"
        oldest.write_text(oldest.read_text().replace('"training": true', '"training": false'))
        run("ingest_sweep_run", store, source, T0 + timedelta(days=7, minutes=3), changed_old=1, **shape)

        for name, read in (("raw_call_ids", store.raw_call_ids), ("raw_index", store.raw_index)):
            start = time.perf_counter()
            held = len(read())
            emit(figure=f"ingest_store_{name}", seconds=round(time.perf_counter() - start, 2), calls=held,
                 note="what a run reads of the governed store once it reads a document: the call ids for a new "
                      "call, the whole index once a call the raw zone holds comes up (O(history))")


if __name__ == "__main__":
    main()
