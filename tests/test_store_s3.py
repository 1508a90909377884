"""The governed store on S3 (a real moto server over HTTP): the same zones, audit and erasure as on disk.

Raw data is encrypted before it leaves the process (the bucket never sees plaintext); every zone
round-trips; the audit trail of the same work is entry for entry the one a local store writes; an
erasure on a versioned bucket leaves no object version (current, older or deleted) and no local copy
holding the caller's id, pseudonym, words or audio; DVC versions the datasets zone through a local
staging copy whose pointers live in the bucket, so another machine can erase and purge DVC too.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from datasets import Dataset

from core.settings import Settings, StoreConfig
from governance.audit import Actor, AuditLog
from governance.crypto import Keyring, RawKeyError
from governance.erasure import Journal, delete_call_labels, delete_caller_calls, find_caller_calls
from governance.session import open_store
from governance.store import GovernedStore
from governance.zone_fs import S3ZoneFS, StoreLocationError, ZoneFS, open_zone_fs
from training.versioning import DvcVersioner

if TYPE_CHECKING:
    from tests.s3_server import S3


ERASED, KEPT = "call-erased-7f3", "call-kept-2b9"
CALLER, OTHER = "+14155550134", "+14155550199"
SECRET_WORDS = "my card ending four two four two never reached zanzibar"
AUDIO = {ERASED: b"RIFF" + bytes(range(256)) * 40, KEPT: b"RIFF" + bytes(range(255, -1, -1)) * 40}
REDACTED_AUDIO = b"RIFF-masked-" + b"quokka" * 50


def _document(call_id: str, caller: str) -> dict[str, Any]:
    return {"call_id": call_id, "started_at": "2026-11-20T10:00:00+00:00", "caller_id": caller,
            "consent": {"training": True},
            "turns": [{"speaker": "customer", "start_s": 0.0, "end_s": 2.0,
                       "text": SECRET_WORDS if call_id == ERASED else "where is my card"}],
            "_ingest": {"ingested_at": "2026-11-20T11:00:00+00:00", "split": "train", "source_digest": f"d-{call_id}",
                        "audio": {"sha256": f"a-{call_id}"}}}


def _opener(location: Path | ZoneFS, keys: Path, audit: AuditLog) -> Any:
    def open_as(purpose: str, role: str = "admin") -> GovernedStore:
        return GovernedStore(location, audit, Actor(role=role, purpose=purpose, user="t"),
                             keyring=Keyring(keys, environ={}))
    return open_as


def _audit(tmp_path: Path, name: str = "audit.db") -> AuditLog:
    return AuditLog(f"sqlite:///{tmp_path / name}")


def _s3_zones(bucket: str, work: Path) -> ZoneFS:
    return open_zone_fs(f"s3://{bucket}/voiceloop", work)


def _work(location: Path | ZoneFS, keys: Path, audit: AuditLog) -> None:
    """The same work on any store: every zone written and read, then a caller erased from all of them."""
    _fill(location, keys, audit)
    _erase(location, keys, audit)


def _fill(location: Path | ZoneFS, keys: Path, audit: AuditLog) -> None:
    """Every zone written (some things twice) and read; the caller is everywhere."""
    open_as = _opener(location, keys, audit)
    ingest = open_as("ingest")
    ref, other_ref = ingest.caller_ref(CALLER), ingest.caller_ref(OTHER)
    ingest.write_raw([(_document(ERASED, CALLER), AUDIO[ERASED], ".mp3"),
                      (_document(KEPT, OTHER), AUDIO[KEPT], ".wav")])
    ingest.write_raw([(_document(ERASED, CALLER), AUDIO[ERASED], ".wav")])  # re-ingested: versions, a stale audio
    ingest.quarantine("ingest", f"{ERASED}-bad.json", "unreadable audio", call_id=f"{ERASED}-bad", caller_ref=ref,
                      files={f"{ERASED}-bad.json": json.dumps(_document(ERASED, CALLER)).encode()})

    redactor = open_as("redaction")
    documents = list(redactor.read_raw_documents([ERASED, KEPT]))
    assert [d["caller_id"] for d in documents] == [CALLER, OTHER]
    assert [call.audio for call in redactor.read_raw([ERASED])] == [AUDIO[ERASED]]
    redacted = [{"call_id": d["call_id"], "caller_ref": redactor.caller_ref(d["caller_id"]), "raw_digest": f"d-{c}",
                 "audio": {"sha256": f"a-{c}"}, "turns": d["turns"]}
                for d, c in zip(documents, (ERASED, KEPT), strict=True)]
    redactor.write_redacted(redacted)
    redactor.write_redacted_audio(ERASED, REDACTED_AUDIO, ".wav")
    assert open_as("training").read_redacted_audio(ERASED) == REDACTED_AUDIO
    assert redactor.stale_redacted_call_ids() == set()
    open_as("validation").quarantine("validation", f"{ERASED}.turn0", "too long", call_id=ERASED,
                                     payload={"text": SECRET_WORDS})

    trainer = open_as("training")
    rows = [{"call_id": c, "text": t["text"]} for c in (ERASED, KEPT) for t in _document(c, "").get("turns", [])]
    trainer.write_dataset("intent-train", "digest1", Dataset.from_list(rows), [ERASED, KEPT], source="test")
    trainer.write_dataset("intent-golden", "digest2", Dataset.from_list(rows[1:]), [KEPT])
    opened = trainer.open_dataset("intent-train", "digest1")
    assert opened.data["text"] == [SECRET_WORDS, "where is my card"] and opened.call_ids == (ERASED, KEPT)
    trainer.write_evaluation("intent-train", "digest1", "champion-intent-v1", {"predictions": [SECRET_WORDS]})
    assert trainer.read_evaluation("intent-train", "digest1", "champion-intent-v1") == {"predictions": [SECRET_WORDS]}
    assert [(d.name, d.digest, d.call_ids) for d in trainer.list_datasets()] == [
        ("intent-golden", "digest2", (KEPT,)), ("intent-train", "digest1", (ERASED, KEPT))]

    monitor = open_as("monitoring")
    monitor.write_monitoring("calls", {c: {"call_ids": [c], "caller_ref": r, "started_at": "2026-11-20T10:00:00"}
                                       for c, r in ((ERASED, ref), (KEPT, other_ref))})
    monitor.write_monitoring("days", {"2026-11-20": {"call_ids": [ERASED, KEPT], "calls": {ERASED: 1, KEPT: 2}}})
    assert sorted(monitor.read_monitoring("calls")) == [ERASED, KEPT]

    labeller = open_as("labelling", role="reviewer")
    assert labeller.export_review_media([ERASED, KEPT]) == {ERASED: f"{ERASED}/audio.wav"}
    assert (labeller.review_media_root() / ERASED / "audio.wav").read_bytes() == REDACTED_AUDIO
    labeller.write_labels("samples", {"2026-W47": {"call_ids": [ERASED, KEPT], "calls": {ERASED: {}, KEPT: {}}}})
    labeller.write_labels("reviews", {ERASED: {"call_ids": [ERASED], "caller_ref": ref, "text": SECRET_WORDS}})
    ingest.write_state("probe", {"calls": {ERASED: ref}})
    ingest.write_state("probe", {"calls": {}})  # rewritten to forget: no earlier version may keep it


def _erase(location: Path | ZoneFS, keys: Path, audit: AuditLog) -> None:
    """The store-side erasure steps (flows/erase.py), and the versions holding the caller dropped."""
    open_as = _opener(location, keys, audit)
    eraser = open_as("erasure")
    journal = Journal("er-test")
    footprint, affected = find_caller_calls(eraser, journal, CALLER, "er-test")
    assert footprint.raw == (ERASED,) and footprint.labels == (ERASED,) and len(footprint.quarantine) == 2
    delete_caller_calls(eraser, journal, footprint)
    delete_call_labels(eraser, journal)
    for info in affected:  # training/erasure.py rebuilds them without the caller first; here they just go
        eraser.delete_dataset(info.name, info.digest)
    assert eraser.raw_call_ids() == {KEPT} and eraser.redacted_call_ids() == {KEPT}
    assert eraser.quarantined() == [] and [d.name for d in eraser.list_datasets()] == ["intent-golden"]
    assert open_as("monitoring").read_monitoring("days")["2026-11-20"]["call_ids"] == [KEPT]


def _audit_trail(audit: AuditLog) -> list[tuple[Any, ...]]:
    return [(e.action, e.zone, e.purpose, e.outcome, e.call_ids, json.dumps(e.detail, sort_keys=True))
            for e in audit.entries()]


def test_the_same_work_on_s3_and_on_disk_writes_the_same_audit_trail(tmp_path: Path, s3: S3) -> None:
    local_audit, s3_audit = _audit(tmp_path, "local.db"), _audit(tmp_path, "s3.db")
    _work(tmp_path / "zones", tmp_path / "keys", local_audit)
    _work(_s3_zones(s3.bucket(), tmp_path / "work"), tmp_path / "keys", s3_audit)
    trail = _audit_trail(s3_audit)
    assert len(trail) > 25 and trail == _audit_trail(local_audit)


def test_raw_calls_reach_the_bucket_encrypted_and_come_back_whole(tmp_path: Path, s3: S3) -> None:
    bucket = s3.bucket()
    store = _opener(_s3_zones(bucket, tmp_path / "work"), tmp_path / "keys", _audit(tmp_path))("ingest")
    store.write_raw([(_document(ERASED, CALLER), AUDIO[ERASED], ".wav")])
    stored = {key: data for key, data in s3.versions(bucket)}
    assert sorted(stored) == [f"voiceloop/raw/{ERASED}/{name}" for name in ("audio.wav.enc", "call.json.enc",
                                                                             "meta.json")]
    blob = b"".join(data or b"" for data in stored.values())
    for plaintext in (CALLER.encode(), SECRET_WORDS.encode(), AUDIO[ERASED][100:164]):
        assert plaintext not in blob
    meta = json.loads(stored[f"voiceloop/raw/{ERASED}/meta.json"] or b"")
    assert meta["caller_ref"] == store.caller_ref(CALLER) and CALLER not in json.dumps(meta)
    reader = store.as_purpose("redaction")
    [call] = reader.read_raw([ERASED])
    assert call.document["caller_id"] == CALLER and call.audio == AUDIO[ERASED]
    with pytest.raises(RawKeyError):  # the bucket alone, without this installation's keys, reads nothing
        Keyring(tmp_path / "other-keys", environ={}).raw.decrypt(stored[f"voiceloop/raw/{ERASED}/call.json.enc"]
                                                                or b"", "call.json.enc")


def test_erasure_on_a_versioned_bucket_leaves_no_version_and_no_local_copy_of_the_caller(
        tmp_path: Path, s3: S3) -> None:
    bucket = s3.bucket(versioned=True)
    keys, work, audit = tmp_path / "keys", tmp_path / "work", _audit(tmp_path)
    zones = _s3_zones(bucket, work)
    _fill(zones, keys, audit)
    keyring = Keyring(keys, environ={})
    needles = {"caller id": CALLER.encode(), "pseudonym": _opener(zones, keys, audit)("ingest").caller_ref(CALLER)
               .encode(), "words": b"zanzibar", "audio": AUDIO[ERASED][100:164], "redacted audio": b"quokka" * 4}

    def holding_the_caller() -> dict[str, set[str]]:
        """Every version in the bucket (current, older, deleted) -> what of the caller it holds, decrypted."""
        held: dict[str, set[str]] = {}
        for key, data in s3.versions(bucket):
            plain = keyring.raw.decrypt(data, key) if data and key.endswith(".enc") else data or b""
            found = {what for what, needle in needles.items() if needle in plain}
            if ERASED in key or (ERASED.encode() in plain and not key.startswith("voiceloop/state/")):
                found.add("call id")  # tombstones and the erasure's journal name erased calls: nothing else may
            if found:
                held[key] = held.get(key, set()) | found
        return held

    before = holding_the_caller()  # the same search finds all of it first, older versions included
    assert set().union(*before.values()) == {*needles, "call id"}
    assert len([key for key, data in s3.versions(bucket) if f"raw/{ERASED}/" in key and data is not None]) > 3
    _erase(zones, keys, audit)
    assert holding_the_caller() == {}
    for path in (p for p in work.rglob("*") if p.is_file()):
        data = path.read_bytes()
        assert not [what for what, needle in needles.items() if needle in data], path
        assert ERASED not in str(path.relative_to(work)), path
    assert (work / "labels/media").exists() and not (work / "labels/media" / ERASED).exists()


def test_dvc_versions_an_s3_datasets_zone_through_a_local_staging_copy_erasable_from_another_machine(
        tmp_path: Path, s3: S3) -> None:
    bucket = s3.bucket(versioned=True)
    keys, audit = tmp_path / "keys", _audit(tmp_path)
    remote, cache = tmp_path / "dvc-remote", tmp_path / "dvc-cache"
    machine_a = _opener(_s3_zones(bucket, tmp_path / "work-a"), keys, audit)("training")
    rows = Dataset.from_list([{"call_id": c, "text": f"turn of {c}"} for c in (ERASED, KEPT)])
    machine_a.write_dataset("intent-train", "digest1", rows, [ERASED, KEPT])
    versioner = DvcVersioner(machine_a.dvc_workspace("write"), str(remote), cache, machine_a)
    md5 = versioner.track("intent-train", "digest1")
    assert md5.endswith(".dir") and (tmp_path / "work-a/datasets/intent-train/digest1/data").is_dir()
    pointer = s3.client.get_object(Bucket=bucket, Key="voiceloop/datasets/intent-train/digest1.dvc")
    assert md5 in pointer["Body"].read().decode()  # the pointer lives in the zone, not only on machine A

    machine_b = _opener(_s3_zones(bucket, tmp_path / "work-b"), keys, audit)("erasure")
    b_versioner = DvcVersioner(machine_b.dvc_workspace("write"), str(remote), cache, machine_b)
    assert [p.name for p in b_versioner.dvc_files()] == ["digest1.dvc"]  # pulled from the zone
    deletion = machine_b.delete_dataset("intent-train", "digest1")
    assert deletion.extra["dvc_md5"] == md5 and deletion.call_ids == [ERASED, KEPT]
    removal = b_versioner.forget([md5])
    assert md5 in removal.remote.objects and md5 in removal.cache.objects and removal.shared == []
    assert not list(remote.rglob("*.dir")) and [p for p in cache.rglob("*") if p.is_file()] == []

    machine_a.dvc_workspace("write")  # machine A's next use drops its copies of what the zone no longer holds
    assert not (tmp_path / "work-a/datasets/intent-train/digest1").exists()
    assert not (tmp_path / "work-a/datasets/intent-train/digest1.dvc").exists()
    assert not [key for key, _ in s3.versions(bucket) if key.startswith("voiceloop/datasets/intent-train/digest1")]


def test_open_store_follows_store_url_and_names_what_is_wrong(tmp_path: Path, s3: S3) -> None:
    bucket = s3.bucket()
    settings = Settings(project_dir=str(tmp_path / "project"), store=StoreConfig(url=f"s3://{bucket}/vl"))
    store = open_store(settings, "pipeline", "ingest")
    assert isinstance(store.zones, S3ZoneFS) and store.location == f"s3://{bucket}/vl"
    assert settings.zones_dir == tmp_path / "project" / "store-work" and settings.zones_dir.is_dir()
    store.write_raw([(_document(KEPT, OTHER), AUDIO[KEPT], ".wav")])
    assert store.raw_call_ids() == {KEPT} and not (tmp_path / "project" / "zones").exists()
    local = Settings(project_dir=str(tmp_path / "project"))
    assert local.zones_dir == tmp_path / "project" / "zones"  # no url: the local folder, as always

    missing = Settings(project_dir=str(tmp_path / "project"), store=StoreConfig(url="s3://no-such-bucket-here/vl"))
    with pytest.raises(StoreLocationError, match="bucket 'no-such-bucket-here' does not exist"):
        open_store(missing, "pipeline", "ingest")
    with pytest.raises(StoreLocationError, match="names no bucket"):
        open_zone_fs("s3://", tmp_path / "work")
