"""Wall time of the main job (`voiceloop retrain`) on the demo corpus, per stage.

Runs the flow on a fresh project folder (so nothing is reused) against the demo corpus that
`make demo` builds, and prints one JSON line per stage plus the total. The corpus build itself
is excluded (it is `make corpus`). With ASR retraining the two fine-tunings run side by side
(training/lanes.py): ``finetune`` (intent) and ``score_champion_asr`` are counted from the start
of the lanes, ``finetune_asr`` is the other lane, and ``train_lanes`` is the wall time of both.

Each stage also reports its CPU seconds (every thread of the flow's process plus the processes it
started and saw end; the lanes as one figure), and the whole run its CPU seconds divided by the
cores: the wall time below which no scheduling of the same work can go.

    .venv/bin/python benchmarks/pipeline.py --calls data/calls --golden data/golden

``--weekly N`` then measures a weekly run (issue 20, part 6): the call store is a copy of ``--calls``; after
the first run, N calls simulated with another seed (``--weekly-seed``) join it and the flow runs again,
warm-started from the champion (training/warm_start.py). Every figure of the second run is printed again
with ``"run": "weekly"``, plus its CPU seconds as a share of the first run's (the bar: at most 0.40).

    .venv/bin/python benchmarks/pipeline.py --weekly 12
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any


def results(summary: dict[str, Any]) -> dict[str, Any]:
    """What must not move when code moves (issue 15): dataset digests, golden scores, each criterion's verdict."""
    return {
        "figure": "retrain_results",
        "datasets": {name: info["digest"] for name, info in sorted(summary["datasets"].items())},
        "golden_accuracy": summary["training"]["golden_accuracy"],
        "golden_wer": summary.get("asr", {}).get("golden_wer"),
        "verdict": summary["gate"]["verdict"],
        "criteria": {c["name"]: c["passed"] for c in summary["gate"]["criteria"]},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", default="data/calls")
    parser.add_argument("--golden", default="data/golden")
    parser.add_argument("--project-dir", default=None, help="default: a fresh temporary folder")
    parser.add_argument("--weekly", type=int, default=0, metavar="N",
                        help="then add N new calls and measure the weekly (warm-started) run (0: off)")
    parser.add_argument("--weekly-seed", type=int, default=1, help="the simulator's seed for the new calls")
    parser.add_argument("--weekly-only", action="store_true",
                        help="skip the first run: --project-dir holds it (a champion promoted) and its call store")
    args = parser.parse_args()
    project = Path(args.project_dir or tempfile.mkdtemp(prefix="voiceloop-bench-"))
    calls = Path(args.calls).resolve()
    if args.weekly:  # the weekly calls join a copy: the demo corpus itself is never changed
        calls = Path(shutil.copytree(calls, project / "call-store", dirs_exist_ok=True))
    os.environ["VOICELOOP_PROJECT_DIR"] = str(project)
    os.environ["VOICELOOP__SOURCES__CALL_STORE"] = str(calls)
    os.environ["VOICELOOP__SOURCES__GOLDEN_STORE"] = str(Path(args.golden).resolve())

    from core.runtime import cpu_seconds, prepare
    from core.settings import load_settings

    prepare(load_settings().root)
    from flows.retrain import retrain
    from governance.audit import AuditLog

    audit_seconds = [0.0, 0]
    append = AuditLog.append

    def timed_append(self: AuditLog, *a: object, **kw: object) -> object:  # the audit cost, measured in place
        began = time.perf_counter()
        try:
            return append(self, *a, **kw)  # type: ignore[arg-type]
        finally:
            audit_seconds[0] += time.perf_counter() - began
            audit_seconds[1] += 1

    AuditLog.append = timed_append  # type: ignore[method-assign,assignment]
    cores = load_settings().threads or os.cpu_count() or 1

    def measured(run: str) -> float:
        """One retrain, its figures printed (each tagged with ``run``); returns its CPU seconds."""
        audit_seconds[:] = [0.0, 0]
        start, cpu_start = time.perf_counter(), cpu_seconds()
        summary = retrain().to_json()
        total, cpu_total = time.perf_counter() - start, cpu_seconds() - cpu_start

        def emit(figure: dict[str, object]) -> None:
            print(json.dumps({**figure, "run": run}), flush=True)

        for stage, seconds in summary["timings_s"].items():
            emit({"figure": "retrain_stage_seconds", "stage": stage, "seconds": seconds,
                  "cpu_seconds": summary["cpu_s"].get(stage)})
        emit({
            "figure": "retrain_total_seconds", "seconds": round(total, 1),
            "calls": summary["ingest"]["train"]["ingested"] + summary["ingest"]["golden"]["ingested"],
            "golden_accuracy": summary["training"]["golden_accuracy"], "verdict": summary["gate"]["verdict"],
            "cpu_count": os.cpu_count(), "warm_start": summary.get("warm_start"),
        })
        emit({  # no schedule of the stages can finish sooner than this on these cores
            "figure": "retrain_cpu_seconds", "seconds": round(cpu_total, 1), "cores": cores,
            "floor_wall_seconds": round(cpu_total / cores, 1),
            "core_utilisation": round(cpu_total / (total * cores), 3),
        })
        emit(results(summary))
        emit({"figure": "retrain_audit_seconds", "seconds": round(audit_seconds[0], 2),
              "entries": audit_seconds[1], "share_of_total": round(audit_seconds[0] / total, 4)})
        return cpu_total

    first = None if args.weekly_only else measured("first")
    if args.weekly:
        added = add_calls(calls, args.weekly, args.weekly_seed)
        weekly = measured("weekly")
        print(json.dumps({"figure": "weekly_retrain_cpu_share", "new_calls": added,
                          "first_cpu_seconds": round(first, 1) if first else None,
                          "weekly_cpu_seconds": round(weekly, 1), "share": round(weekly / first, 3) if first else None,
                          "bar": 0.40}), flush=True)


def add_calls(store: Path, count: int, seed: int) -> int:
    """Simulate ``count`` training calls with ``seed`` into ``store`` (their ids name the seed: no clash)."""
    from voiceloop.simulate.calls import build_calls

    with tempfile.TemporaryDirectory() as tmp:
        build_calls(Path(tmp) / "calls", count, split="train", seed=seed)
        shutil.copytree(Path(tmp) / "calls", store, dirs_exist_ok=True)
    return count


if __name__ == "__main__":
    main()
