"""Audit log speed: verifying a large SQLite log, and append throughput.

Builds an N-entry log (default 1,000,000) with correctly chained MACs through
``AuditLog.append_many`` (one transaction), then times ``verify()`` (median of 3) and single-
process ``append`` throughput (each append commits and moves the head file, fsync included).
Prints one JSON line per figure::

    .venv/bin/python benchmarks/audit_verify.py                 # 1M entries, a fresh temp folder
    .venv/bin/python benchmarks/audit_verify.py --entries 100000 --appends 200
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

from common import emit, scratch  # benchmarks/common.py

from governance.audit import Actor, AuditLog, EntryDraft

ROLES = (("pipeline", "ingest"), ("pipeline", "redaction"), ("trainer", "training"), ("analyst", "qa-review"))
ACTIONS = ("raw.write", "raw.read", "redacted.write", "datasets.read", "quarantine.write")


def drafts(n: int) -> Iterator[EntryDraft]:
    """Realistic-looking entries: a few call ids, a small detail, spread over a year."""
    start = datetime(2026, 1, 1, tzinfo=UTC)
    actors = [Actor(role, purpose, user=f"svc-{role}", flow_run_id="f3b1c2d4-run") for role, purpose in ROLES]
    for i in range(n):
        yield EntryDraft(actors[i % len(actors)], ACTIONS[i % len(ACTIONS)], zone="raw",
                         call_ids=[f"call-{i:07d}", f"call-{i + 1:07d}"], detail={"rows": i % 97, "stage": "bench"},
                         caller=f"+1555{i % 10000:04d}" if i % 10 == 0 else None,
                         ts=start + timedelta(seconds=30 * i))



def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--appends", type=int, default=300)
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = parser.parse_args()
    with scratch("voiceloop-audit-bench-", args.keep) as folder:
        url = f"sqlite:///{folder / 'audit.db'}"
        log = AuditLog(url)
        start = time.perf_counter()
        log.append_many(drafts(args.entries), batch_size=20000)
        build = time.perf_counter() - start
        emit(figure="audit_bulk_build_seconds", entries=args.entries, seconds=round(build, 2),
             entries_per_s=round(args.entries / build))
        times = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            result = log.verify()
            times.append(time.perf_counter() - start)
            assert result.ok and result.checked == args.entries, result
        emit(figure="audit_verify_seconds", entries=args.entries, seconds=round(statistics.median(times), 2),
             runs=[round(t, 2) for t in times])
        actor = Actor("pipeline", "ingest", user="bench")
        start = time.perf_counter()
        for i in range(args.appends):
            log.append(actor, "raw.read", zone="raw", call_ids=[f"c{i}"], detail={"i": i})
        seconds = time.perf_counter() - start
        emit(figure="audit_append_per_s", appends=args.appends, entries_per_s=round(args.appends / seconds, 1),
             ms_per_append=round(1000 * seconds / args.appends, 2))
        assert log.verify().ok
        log.close()


if __name__ == "__main__":
    main()
