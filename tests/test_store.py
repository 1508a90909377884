"""Store support for retention and erasure: a PII-free index, caller lookups, audited real deletes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from datasets import Dataset

from governance.access import AccessDenied
from governance.audit import Actor, AuditLog
from governance.ingest import ingest
from governance.store import GovernedStore
from tests.conftest import write_call


def _store(tmp_path: Path, purpose: str, role: str = "admin") -> GovernedStore:
    audit = AuditLog(f"sqlite:///{tmp_path / 'audit.db'}")
    return GovernedStore(tmp_path / "zones", audit, Actor(role=role, purpose=purpose, user="t"))


def _setup(tmp_path: Path) -> GovernedStore:
    """Two calls of caller A (one also quarantined at validation), one of B, one bad call of A."""
    source = tmp_path / "calls"
    write_call(source, "a1", caller_id="caller-A", started_at="2026-11-01T09:00:00+00:00")
    write_call(source, "a2", caller_id="caller-A")
    write_call(source, "b1", caller_id="caller-B")
    write_call(source, "a-bad", caller_id="caller-A", audio_bytes=b"")
    write_call(source, "nobody", consent=False)
    assert len(ingest(_store(tmp_path, "ingest"), str(source), "train").ingested) == 3
    redactor = _store(tmp_path, "redaction")
    redactor.write_redacted(
        [{"call_id": c, "caller_ref": redactor.caller_ref(who), "turns": []}
         for c, who in (("a1", "caller-A"), ("a2", "caller-A"), ("b1", "caller-B"))]
    )
    _store(tmp_path, "validation").quarantine("validation", "a2.turn1", "text too short", call_id="a2",
                                              payload={"text": "ok"})
    trainer = _store(tmp_path, "training")
    for name, calls in (("intent-train", ["a1", "b1"]), ("intent-golden", ["a2"])):
        trainer.write_dataset(name, f"{name.split('-')[1]}digest", _rows(calls), calls)
    (tmp_path / "zones/datasets/intent-train/traindigest.dvc").write_text("outs:\n- md5: abc123.dir\n  path: x\n")
    return redactor


def _rows(calls: list[str]) -> Dataset:
    return Dataset.from_list([{"call_id": c, "text": f"turn of {c}"} for c in calls])


def test_the_raw_index_holds_facts_and_pseudonyms_never_a_clear_caller_id(tmp_path: Path) -> None:
    store = _setup(tmp_path)
    index = store.raw_index()
    assert sorted(index) == ["a1", "a2", "b1"]
    a1 = index["a1"]
    assert (a1.started_at, a1.split, a1.consent_training) == ("2026-11-01T09:00:00+00:00", "train", True)
    assert a1.ingested_at > "2026" and a1.caller_ref == store.caller_ref("caller-A") != store.caller_ref("caller-B")
    metas = b"".join(p.read_bytes() for p in (tmp_path / "zones/raw").glob("*/meta.json"))
    assert b"caller-A" not in metas and b"caller-B" not in metas and b"card" not in metas


def test_calls_of_caller_finds_raw_redacted_and_quarantine_and_is_audited(tmp_path: Path) -> None:
    _setup(tmp_path)
    store = _store(tmp_path, "erasure")
    ref = store.caller_ref("caller-A")
    found = store.calls_of_caller(ref)
    assert found.raw == ("a1", "a2") and found.redacted == ("a1", "a2")
    assert found.quarantine == ("ingest/a-bad.json", "validation/a2.turn1")  # the bad call named its caller
    assert found.call_ids == ("a-bad", "a1", "a2")
    [entry] = list(store.audit.entries(action="store.find_caller"))
    assert entry.call_ids == ["a-bad", "a1", "a2"] and entry.detail["caller_ref"] == ref
    assert "caller-A" not in json.dumps(entry.detail)
    assert store.calls_of_caller(store.caller_ref("caller-nobody")).call_ids == ()


def test_calls_of_caller_is_refused_to_a_purpose_that_may_not_delete(tmp_path: Path) -> None:
    trainer = _setup(tmp_path).as_purpose("training")
    with pytest.raises(AccessDenied, match="raw"):
        trainer.calls_of_caller(trainer.caller_ref("caller-A"))
    [denied] = list(trainer.audit.entries(outcome="denied"))
    assert denied.action == "raw.delete" and denied.call_ids == []


def test_delete_raw_removes_every_file_and_is_audited(tmp_path: Path) -> None:
    _setup(tmp_path)
    eraser = _store(tmp_path, "erasure", role="compliance-officer")
    result = eraser.delete_raw(["a1", "a2", "ghost"])
    assert (result.call_ids, result.missing) == (["a1", "a2"], ["ghost"])
    files = ("audio.wav.enc", "call.json.enc", "meta.json")
    assert result.paths == [f"raw/{c}/{f}" for c in ("a1", "a2") for f in files]
    assert result.files == 6 and result.bytes > 2 * 64000
    assert not (tmp_path / "zones/raw/a1").exists() and list((tmp_path / "zones/.trash").iterdir()) == []
    assert eraser.raw_call_ids() == {"b1"} and set(eraser.raw_index()) == {"b1"}
    [entry] = list(eraser.audit.entries(action="raw.delete"))
    assert (entry.zone, entry.call_ids, entry.purpose) == ("raw", ["a1", "a2"], "erasure")
    assert entry.detail["files"] == 6 and entry.detail["missing"] == ["ghost"]


def test_delete_redacted_and_quarantined(tmp_path: Path) -> None:
    _setup(tmp_path)
    retention = _store(tmp_path, "retention", role="compliance-officer")
    redacted = retention.delete_redacted(["a2"])
    assert redacted.paths == ["redacted/a2.json"] and retention.redacted_call_ids() == {"a1", "b1"}

    quarantined = retention.delete_quarantined(["a2"], items=["ingest/a-bad.json"])
    assert quarantined.call_ids == ["a-bad", "a2"] and quarantined.missing == []
    assert sorted(quarantined.paths) == [
        "quarantine/ingest/a-bad.json/a-bad.json.enc", "quarantine/ingest/a-bad.json/reason.json",
        "quarantine/validation/a2.turn1/payload.json.enc", "quarantine/validation/a2.turn1/reason.json",
    ]
    assert quarantined.extra["items"] == ["ingest/a-bad.json", "validation/a2.turn1"]
    assert retention.quarantined() == []
    actions = [(e.action, e.call_ids) for e in retention.audit.entries() if e.action.endswith(".delete")]
    assert actions == [("redacted.delete", ["a2"]), ("quarantine.delete", ["a-bad", "a2"])]


def test_datasets_are_listed_with_their_calls_and_deleted_with_their_dvc_pointer(tmp_path: Path) -> None:
    _setup(tmp_path)
    eraser = _store(tmp_path, "erasure", role="compliance-officer")
    listed = {(d.name, d.digest): d.call_ids for d in eraser.list_datasets()}
    assert listed == {("intent-golden", "goldendigest"): ("a2",), ("intent-train", "traindigest"): ("a1", "b1")}

    result = eraser.delete_dataset("intent-train", "traindigest")
    assert result.call_ids == ["a1", "b1"] and result.extra["dvc_md5"] == "abc123.dir"
    folder = "datasets/intent-train/traindigest"
    assert {p for p in result.paths if not p.startswith(f"{folder}/data/")} == {
        "datasets/intent-train/traindigest.dvc", f"{folder}/manifest.json"}
    assert any(p.endswith(".arrow") for p in result.paths)  # the rows went too
    assert not (tmp_path / "zones/datasets/intent-train").exists()
    assert [d.name for d in eraser.list_datasets()] == ["intent-golden"]
    [entry] = list(eraser.audit.entries(action="datasets.delete"))
    assert entry.call_ids == ["a1", "b1"] and entry.detail["dataset"] == "intent-train"
    assert eraser.delete_dataset("intent-train", "traindigest").missing == ["intent-train@traindigest"]


def test_a_dataset_is_handed_out_as_data_checked_and_audited_with_its_calls(tmp_path: Path) -> None:
    _setup(tmp_path)
    trainer = _store(tmp_path, "training")
    opened = trainer.open_dataset("intent-train", "traindigest")
    assert opened.data["call_id"] == ["a1", "b1"] and opened.call_ids == ("a1", "b1")
    assert opened.manifest == {"name": "intent-train", "digest": "traindigest", "rows": 2, "call_ids": ["a1", "b1"]}
    [read] = list(trainer.audit.entries(action="datasets.read"))
    assert read.call_ids == ["a1", "b1"] and read.detail == {"dataset": "intent-train", "digest": "traindigest"}
    with pytest.raises(AccessDenied):
        _store(tmp_path, "ingest").open_dataset("intent-train", "traindigest")
    with pytest.raises(FileNotFoundError, match="intent-train@nodigest"):
        trainer.open_dataset("intent-train", "nodigest")


def test_an_empty_dataset_is_never_published_nor_opened(tmp_path: Path) -> None:
    """`datasets` cannot load an empty saved dataset back (IndexError): the store refuses to write one,
    and names a version without rows (written by older code) instead of crashing on it."""
    from datasets import Dataset

    from governance.store import DATASET_MANIFEST, EmptyDatasetError

    _setup(tmp_path)
    trainer = _store(tmp_path, "training")
    with pytest.raises(EmptyDatasetError, match="intent-train has no rows"):
        trainer.write_dataset("intent-train", "emptydigest", Dataset.from_list([]), [])
    assert not (tmp_path / "zones/datasets/intent-train/emptydigest").exists()
    old = tmp_path / "zones/datasets/intent-train/olddigest"
    old.mkdir(parents=True)
    (old / DATASET_MANIFEST).write_text(json.dumps({"name": "intent-train", "digest": "olddigest", "rows": 0,
                                                    "call_ids": []}))
    with pytest.raises(EmptyDatasetError, match="intent-train@olddigest has no rows"):
        trainer.open_dataset("intent-train", "olddigest")


def test_deletes_need_the_delete_right(tmp_path: Path) -> None:
    from governance.access import AccessDenied

    _setup(tmp_path)
    engineer = _store(tmp_path, "training", role="ml-engineer")
    with pytest.raises(AccessDenied, match="may not delete zone 'datasets'"):
        engineer.delete_dataset("intent-train", "traindigest")
    retention = _store(tmp_path, "retention", role="compliance-officer")
    with pytest.raises(AccessDenied, match="may not delete zone 'datasets'"):
        retention.delete_dataset("intent-train", "traindigest")
    assert len(engineer.list_datasets()) == 2


def test_the_labels_zone_keeps_reviews_finds_a_callers_and_deletes_them_with_their_audio(tmp_path: Path) -> None:
    store = _setup(tmp_path)
    redactor = _store(tmp_path, "redaction")
    redactor.write_redacted_audio("a1", b"RIFF-redacted-a1", ".wav")
    labeller = _store(tmp_path, "labelling", role="reviewer")
    assert labeller.export_review_media(["a1", "b1"]) == {"a1": "a1/audio.wav"}  # b1 has no redacted audio
    assert (labeller.review_media_root() / "a1/audio.wav").read_bytes() == b"RIFF-redacted-a1"
    ref_a, ref_b = store.caller_ref("caller-A"), store.caller_ref("caller-B")
    labeller.write_labels("samples", {"2026-W45": {"call_ids": ["a1", "b1"], "calls": {"a1": {"p": 0.5},
                                                                                     "b1": {"p": 1.0}}}})
    labeller.write_labels("tasks", {"a1": {"call_ids": ["a1"], "caller_ref": ref_a, "task_id": 1}})
    labeller.write_labels("reviews", {"a1": {"call_ids": ["a1"], "caller_ref": ref_a, "turns": []},
                                      "b1": {"call_ids": ["b1"], "caller_ref": ref_b, "turns": []}})
    assert sorted(labeller.read_labels("reviews")) == ["a1", "b1"]
    with pytest.raises(ValueError, match="unknown labels record kind"):
        labeller.write_labels("answers", {"a1": {"call_ids": ["a1"]}})
    with pytest.raises(AccessDenied):
        _store(tmp_path, "labelling", role="reviewer").read_raw(["a1"]).__next__()
    eraser = _store(tmp_path, "erasure")
    assert eraser.calls_of_caller(ref_a).labels == ("a1",)
    deleted = eraser.delete_labels(["a1"])
    assert deleted.call_ids == ["a1"] and deleted.extra["records_scrubbed"] == 1
    assert sorted(labeller.read_labels("reviews")) == ["b1"] and labeller.label_keys("tasks") == []
    assert not (tmp_path / "zones/labels/media/a1").exists()
    sample = labeller.read_labels("samples")["2026-W45"]
    assert sample["call_ids"] == ["b1"] and list(sample["calls"]) == ["b1"]
    [entry] = list(eraser.audit.entries(action="labels.delete"))
    assert entry.call_ids == ["a1"] and entry.detail["files"] == 3
