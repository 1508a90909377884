"""Per-call work fanned out to Dask workers through Prefect gives what the single-process path gives."""

from __future__ import annotations

import json
import os
import pickle
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from prefect import flow, task
from prefect.cache_policies import NO_CACHE

import flows.fan_out as fan_out_module
from core.asr import AsrEngine
from core.asr_shards import transcribe_shards
from core.audio import decode_16k
from core.compute import chunks, content_key, in_process, shard_size
from core.settings import ComputeConfig, RedactionConfig
from flows.fan_out import DaskShards, ShardWorkersLost, call_shard, fan_out, run_shard
from governance.audit import Actor, AuditLog
from governance.crypto import Keyring
from governance.ingest import ingest
from governance.redaction.calls import redact_pending
from governance.store import GovernedStore
from voiceloop.simulate.calls import build_calls


def _square(x: int) -> int:
    return x * x


def _square_dying_once(shard: tuple[int, str]) -> int:
    """The first worker to take a shard of 3 dies (the process ends: a killed worker) before it returns."""
    x, marker = shard
    if x == 3 and not Path(marker).exists():
        Path(marker).write_text("died")
        os._exit(1)
    return x * x


def _ingested(tiny_corpus: Path, folder: Path, keys: Path) -> GovernedStore:
    audit = AuditLog(f"sqlite:///{folder / 'audit.db'}")
    store = GovernedStore(folder / "zones", audit, Actor(role="pipeline", purpose="ingest", user="t"),
                          keyring=Keyring(keys))
    assert ingest(store, str(tiny_corpus / "calls"), "train").ingested
    return store.as_purpose("redaction")


def _outputs(store: GovernedStore) -> dict[str, Any]:
    reader = store.as_purpose("training")
    calls = {doc["call_id"]: doc for doc in reader.read_redacted()}
    return {
        "documents": calls,
        "audio": {call_id: reader.read_redacted_audio(call_id) for call_id in calls},
        "quarantine": sorted(json.dumps([item["stage"], item["item"], item["call_id"], item["reason"]], sort_keys=True)
                             for item in store.quarantined()),
    }


_NOW = datetime(2026, 11, 20, tzinfo=UTC)


def _files(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _clips(tiny_corpus: Path) -> list[np.ndarray]:
    """Clips of a call's audio in every class the batch methods know: under 10 ms (nothing heard), short
    (batched in 10 s windows, two batches and a half), 9.8 s (a 30 s window), and over 30 s (on its own)."""
    audio = decode_16k(str(sorted((tiny_corpus / "calls" / "audio").glob("*.wav"))[0]))
    looped = np.tile(audio, -(-31 * 16000 // audio.size) + 1)
    return [looped[:80]] + [looped[:int(s * 16000)] for s in (1.0, 1.5, 2.0, 2.5, 3.0, 9.8, 31.0)]


def test_shards_are_split_evenly_and_named_by_content() -> None:
    assert [list(c) for c in chunks([1, 2, 3, 4, 5], 2)] == [[1, 2], [3, 4], [5]]
    assert shard_size(100, workers=2, most=32) == 25 and shard_size(3, workers=2, most=32) == 1
    assert shard_size(1000, workers=2, most=32) == 32
    with pytest.raises(ValueError, match="at least 1"):
        chunks([1], 0)
    key = content_key("redact-text", [("c1", "digest")], {"score_threshold": 0.4})
    assert key == content_key("redact-text", [("c1", "digest")], {"score_threshold": 0.4})
    assert key != content_key("redact-text", [("c1", "other digest")], {"score_threshold": 0.4})
    assert key != content_key("redact-text", [("c1", "digest")], {"score_threshold": 0.5})


def test_the_shard_task_travels_by_reference() -> None:
    """Workers import the shard function by name."""
    assert pickle.loads(pickle.dumps(run_shard.fn)) is call_shard


@task(cache_policy=NO_CACHE)
def _step_holding_a_store(store: GovernedStore, shards: DaskShards) -> list[int]:
    return list(shards(_square, [1, 2, 3], ["a", "b", "c"]))


_GIVEN: dict[str, Any] = {}  # what the flow below hands its step (a flow's own parameters are recorded)


@flow
def _flow_with_a_step() -> list[int]:
    return _step_holding_a_store(_GIVEN["store"], _GIVEN["shards"])


def test_in_process_is_used_when_fan_out_is_off() -> None:
    with fan_out(ComputeConfig(fan_out=False)) as shards:
        assert shards is in_process
        assert list(shards(_square, [1, 2, 3], ["a", "b", "c"])) == [1, 4, 9]


def test_a_lost_worker_costs_its_shard_again_not_the_run(prefect_harness: None, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """A worker that dies mid-shard is replaced and its shard runs again elsewhere: every result comes back
    once, in order. A cluster left with no workers at all stops the run with what to do. A shard's arguments
    (calls' audio) are never hashed in this process to name its Dask task."""
    import distributed.client

    def hashed(*args: Any) -> str:
        raise AssertionError("a shard's arguments were hashed in the run's process")

    monkeypatch.setattr(distributed.client, "tokenize", hashed)
    marker = str(tmp_path / "died")
    shards = DaskShards(ComputeConfig(workers=2))
    try:
        work = [(x, marker) for x in range(6)]
        assert list(shards(_square_dying_once, work, [str(x) for x, _ in work])) == [x * x for x in range(6)]
        assert Path(marker).read_text() == "died"  # a worker did die on the way
        monkeypatch.setattr(fan_out_module, "POLL_S", 0.2)
        monkeypatch.setattr(fan_out_module, "WORKERLESS_S", 1.0)
        client = shards._runner.client
        client.cluster.scale(0)  # every worker gone, and none restarted
        deadline = time.monotonic() + 60
        while client.scheduler_info()["workers"] and time.monotonic() < deadline:
            time.sleep(0.2)
        with pytest.raises(ShardWorkersLost, match="no Dask workers .* run again"):
            list(shards(_square, [1], ["after"]))
    finally:
        shards.close()


def test_per_call_work_on_two_dask_workers_matches_one_process(
    prefect_harness: None, tiny_corpus: Path, tmp_path: Path
) -> None:
    """On a local cluster of two single-thread worker processes, what the single-process path gives: text and
    audio redaction of the tiny corpus (alignment, masking, verification: the same documents, audio bytes and
    quarantine), Whisper's hearing of clips (the gate's golden sets, the monitor's champion) and simulated calls."""
    config = RedactionConfig()
    here = _ingested(tiny_corpus, tmp_path / "here", tmp_path / "keys")
    single = redact_pending(here, config)
    assert single.calls and single.audio.calls

    there = _ingested(tiny_corpus, tmp_path / "there", tmp_path / "keys")
    shards = DaskShards(ComputeConfig(workers=2))
    try:
        # tiny shards: both workers get some, and results must come back in order all the same
        assert [r for r in shards(_square, list(range(7)), [str(i) for i in range(7)])] == [i * i for i in range(7)]
        # from inside a flow's task whose parameters hold the store (as the retrain's redact step): the shards
        # leave the task's context behind (its parameters never leave this process; the store cannot pickle)
        _GIVEN.update(store=there, shards=shards)
        assert _flow_with_a_step() == [1, 4, 9]
        fanned = redact_pending(there, config, shards=shards)
        worker_pids = shards.worker_pids()
        # the same workers as an existing cluster (compute.dask_address): Whisper-bound work goes to them only then
        elsewhere = DaskShards(ComputeConfig(dask_address=shards._runner.client.scheduler.address))
        assert elsewhere.elsewhere and not shards.elsewhere
        try:
            clips = _clips(tiny_corpus)
            heard_there = transcribe_shards(elsewhere, None, clips, 2, 10.0)
            simulated_there = build_calls(tmp_path / "simulated-there", 2, seed=5, shards=elsewhere, now=_NOW)
            assert elsewhere.worker_pids() == worker_pids
        finally:
            elsewhere.close()
    finally:
        shards.close()
    # simulate-calls: the same documents and audio, byte for byte
    simulated_here = build_calls(tmp_path / "simulated-here", 2, seed=5, now=_NOW)
    assert simulated_there.call_ids == simulated_here.call_ids
    assert _files(tmp_path / "simulated-there") == _files(tmp_path / "simulated-here")
    # golden-set transcription and the monitor's hearing: the same batches, so the same texts and confidences
    assert heard_there == AsrEngine(cpu_threads=1, window_s=10.0).transcribe_scored_batch(clips, batch_size=2)
    assert heard_there[0].text == "" and sum(bool(h.text) for h in heard_there) >= 4
    assert len(worker_pids) == 2  # two processes, neither of them this one
    assert fanned.calls == single.calls and fanned.audio.calls == single.audio.calls
    assert fanned.entities == single.entities and fanned.leaks == single.leaks
    assert _outputs(there) == _outputs(here)
    # a second run finds every shard's calls done: nothing is redacted twice
    assert redact_pending(there, config, shards=in_process).calls == []
