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
"""

from __future__ import annotations

import argparse
import json
import os
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
    args = parser.parse_args()
    project = Path(args.project_dir or tempfile.mkdtemp(prefix="voiceloop-bench-"))
    os.environ["VOICELOOP_PROJECT_DIR"] = str(project)
    os.environ["VOICELOOP__SOURCES__CALL_STORE"] = str(Path(args.calls).resolve())
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
    start, cpu_start = time.perf_counter(), cpu_seconds()
    summary = retrain().to_json()
    total, cpu_total = time.perf_counter() - start, cpu_seconds() - cpu_start
    for stage, seconds in summary["timings_s"].items():
        print(json.dumps({"figure": "retrain_stage_seconds", "stage": stage, "seconds": seconds,
                          "cpu_seconds": summary["cpu_s"].get(stage)}))
    print(json.dumps({
        "figure": "retrain_total_seconds", "seconds": round(total, 1),
        "calls": summary["ingest"]["train"]["ingested"] + summary["ingest"]["golden"]["ingested"],
        "golden_accuracy": summary["training"]["golden_accuracy"], "verdict": summary["gate"]["verdict"],
        "cpu_count": os.cpu_count(),
    }))
    cores = load_settings().threads or os.cpu_count() or 1
    print(json.dumps({  # no schedule of the stages can finish sooner than this on these cores
        "figure": "retrain_cpu_seconds", "seconds": round(cpu_total, 1), "cores": cores,
        "floor_wall_seconds": round(cpu_total / cores, 1), "core_utilisation": round(cpu_total / (total * cores), 3),
    }))
    print(json.dumps(results(summary)))
    print(json.dumps({"figure": "retrain_audit_seconds", "seconds": round(audit_seconds[0], 2),
                      "entries": audit_seconds[1], "share_of_total": round(audit_seconds[0] / total, 4)}))


if __name__ == "__main__":
    main()
