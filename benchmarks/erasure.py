"""Erasure speed: erase one caller from a store of 10,000 calls, dataset rebuilds included.

Builds a fresh project in a temp folder, straight through the governed store (ingest and
redaction are not what is measured): N synthetic calls (encrypted raw documents + audio, redacted
documents) from about N/2.5 callers, two generations of ``intent-train`` and ``intent-golden``
(the first from 80% of the calls, the second from all) versioned with DVC and pushed to a local
remote, and one MLflow run trained on the second generation, registered as a model version and a
bundle version. Then erases a caller with calls in both generations of both datasets, with the real
:func:`flows.erase.erase_caller`, and prints one JSON line per figure::

    PYTHONPATH=. .venv/bin/python benchmarks/erasure.py                    # 10,000 calls
    PYTHONPATH=. .venv/bin/python benchmarks/erasure.py --calls 2000 --keep

There is no champion, so the golden re-baseline (loading the champion and predicting the rebuilt
golden set, about 5 s for the intent model on 2 cores plus prediction time) is not part of the figure.
"""

from __future__ import annotations

import argparse
import random
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import yaml
from common import emit, scratch  # benchmarks/common.py

T = TypeVar("T")
ROLE = "compliance-officer"



def timed(figure: str, fn: Callable[[], T], **extra: object) -> T:
    start = time.perf_counter()
    result = fn()
    emit(figure=figure, seconds=round(time.perf_counter() - start, 2), **extra)
    return result


def policy_file(folder: Path) -> str:
    """The shipped policy, plus erasure on datasets read/write if it still lacks them (docs/erasure.md)."""
    from governance.policy import load_policy

    shipped = load_policy()
    if {"erasure"} <= shipped.allowed("datasets", "read") & shipped.allowed("datasets", "write"):
        return ""
    rules = yaml.safe_load(Path(shipped.source).read_text())
    for operation in ("read", "write"):
        rules["zones"]["datasets"][operation].append("erasure")
    path = folder / "policy.yaml"
    path.write_text(yaml.safe_dump(rules))
    return str(path)


def synthetic_calls(n: int, seed: int, audio_bytes: int) -> tuple[list[tuple[dict[str, Any], bytes]], str]:
    """(raw document, audio) per call, and the caller to erase (2 train calls + 1 golden call, all early)."""
    from training.datasets import banking77_rows

    rng = random.Random(seed)
    train, test = banking77_rows("train"), banking77_rows("test")
    start = datetime(2026, 1, 1, tzinfo=UTC)
    callers = [f"+1555{i:07d}" for i in range(int(n / 2.5))]
    target = callers[0]
    calls = []
    for i in range(n):
        golden = i % 10 == 0
        caller = target if i in (1, 2, 10) else rng.choice(callers[1:])
        pool = test if golden else train
        picks = [rng.choice(pool) for _ in range(3)]
        turns = [{"speaker": "bot", "start_s": 0.0, "end_s": 0.2, "text": "how can I help you today"}]
        turns += [{"speaker": "customer", "start_s": 0.3 + k, "end_s": 0.9 + k, "text": p["text"].lower()}
                  for k, p in enumerate(picks)]
        document = {
            "call_id": f"call-{i:06d}", "started_at": (start + timedelta(minutes=7 * i)).isoformat(),
            "caller_id": caller, "consent": {"training": True}, "audio": "audio.wav", "turns": turns,
            "labels": [{"turn": k + 1, "transcript": p["text"], "intent": p["intent"]} for k, p in enumerate(picks)],
            "_ingest": {"split": "golden" if golden else "train", "source_file": f"call-{i:06d}.json",
                        "source_digest": f"{i:064x}", "ingested_at": start.isoformat(),
                        "audio": {"sample_rate": 8000, "channels": 1, "duration_s": 4.0, "sha256": f"{i:064x}"}},
        }
        calls.append((document, rng.randbytes(audio_bytes)))
    return calls, target


def redacted(document: dict[str, Any], caller_ref: str) -> dict[str, Any]:
    labels = {label["turn"]: label for label in document["labels"]}
    return {
        "call_id": document["call_id"], "started_at": document["started_at"], "caller_ref": caller_ref,
        "split": document["_ingest"]["split"], "consent_training": True, "outcome": None,
        "meta": {"voice": "bench", "channel": "pstn", "snr_db": 20.0}, "audio": document["_ingest"]["audio"],
        "raw_digest": document["_ingest"]["source_digest"],
        "turns": [{"index": k, "speaker": t["speaker"], "start_s": t["start_s"], "end_s": t["end_s"], "text": t["text"],
                   "transcript": labels.get(k, {}).get("transcript"), "intent": labels.get(k, {}).get("intent"),
                   "pii_types": []} for k, t in enumerate(document["turns"])],
    }


def build_project(settings: Any, calls: list[tuple[dict[str, Any], bytes]]) -> dict[str, str]:
    """Raw + redacted zones, two dataset generations in DVC, one MLflow run + model + bundle."""
    from governance.session import open_store
    from governance.validation import turn_rows
    from training.datasets import build_versions
    from training.registry import Registry
    from training.versioning import DvcVersioner

    store = open_store(settings, "pipeline", "ingest")
    for start in range(0, len(calls), 500):
        store.write_raw([(doc, audio, ".wav") for doc, audio in calls[start:start + 500]])
    docs = [redacted(doc, store.caller_ref(doc["caller_id"])) for doc, _ in calls]
    store.as_purpose("redaction").write_redacted(docs)
    trainer = store.as_purpose("training")
    dvc = DvcVersioner.of(trainer, settings)
    versions: dict[str, Any] = {}
    for share in (0.8, 1.0):
        versions = build_versions(trainer, turn_rows(docs[: int(len(docs) * share)]), include_banking77=False)
        for version in versions.values():
            dvc.track(version.name, version.digest)
    registry = Registry(settings)
    import mlflow

    with mlflow.start_run(run_name="bench-intent") as run:
        mlflow.log_params({f"dataset.{v.name}": v.digest for v in versions.values()})
        mlflow.log_dict({"bench": True}, "intent_model/intent_config.json")
    intent = registry.register_component(registry.intent_name, run.info.run_id, "intent_model")
    registry.register_bundle(run.info.run_id, {"intent": f"{registry.intent_name}/{intent}"}, {"bench": True})
    return {name: v.digest for name, v in versions.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=10_000)
    parser.add_argument("--audio-bytes", type=int, default=8_000, help="audio per call (8 kB = 0.5 s of 8 kHz PCM)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = parser.parse_args()
    with scratch("voiceloop-erasure-bench-", args.keep) as folder:
        from core.runtime import prepare
        from core.settings import load_settings

        settings = load_settings(folder / "none.yaml", project_dir=str(folder / "state"),
                                 access={"policy_file": policy_file(folder)})
        prepare(settings.root, settings.threads or None)
        from flows.erase import erase_caller

        calls, target = timed("bench_synthesise_calls", lambda: synthetic_calls(args.calls, args.seed,
                                                                                args.audio_bytes), calls=args.calls)
        digests = timed("bench_build_project", lambda: build_project(settings, calls), calls=args.calls)
        emit(figure="bench_datasets", versions=digests)
        start = time.perf_counter()
        outcome = erase_caller(settings, ROLE, target)
        seconds = time.perf_counter() - start
        certificate = outcome.certificate
        emit(figure="erasure_wall_seconds", seconds=round(seconds, 2), calls_in_store=args.calls,
             caller_calls=len(certificate["call_ids"]), goal_seconds=60)
        for step, step_seconds in outcome.timings_s.items():
            emit(figure="erasure_step_seconds", step=step, seconds=step_seconds)
        emit(figure="erasure_removed", datasets_rebuilt=len(certificate["datasets"]),
             rows_removed=sum(d["rows_before"] - d["rows_after"] for d in certificate["datasets"]),
             zone_files={z: r["files"] for z, r in certificate["zones"].items()},
             dvc_cache_objects=len(certificate["dvc"]["cache"]["objects"]),
             dvc_remote_objects=len(certificate["dvc"]["remote"]["objects"]),
             models_tagged=certificate["models"]["model_versions"] + certificate["models"]["bundle_versions"])


if __name__ == "__main__":
    main()
