"""Raw-zone encryption: nothing readable at rest, round trips, key rotation, clear key errors."""

from __future__ import annotations

import re
import stat
from pathlib import Path

import pytest

from governance.audit import Actor, AuditLog
from governance.crypto import (
    RAW_KEYS_ENV,
    Keyring,
    RawKeyError,
    add_raw_key,
    fingerprint,
    generate_key,
    load_raw_cipher,
    retire_raw_keys,
)
from governance.ingest import ingest
from governance.store import GovernedStore
from tests.conftest import write_call

TRANSCRIPT = "my card has not arrived yet"


def _store(tmp_path: Path, purpose: str, keys: list[str] | None = None, role: str = "admin") -> GovernedStore:
    environ = {RAW_KEYS_ENV: ",".join(keys)} if keys is not None else {}
    keyring = Keyring(tmp_path / "keys", environ=environ)
    audit = AuditLog(f"sqlite:///{tmp_path / 'audit.db'}")
    return GovernedStore(tmp_path / "zones", audit, Actor(role=role, purpose=purpose, user="t"), keyring=keyring)


def _ingest(tmp_path: Path, keys: list[str] | None = None) -> Path:
    source = tmp_path / "calls"
    write_call(source, "c1")
    write_call(source, "broken", audio_bytes=b"")  # quarantined with its original document
    report = ingest(_store(tmp_path, "ingest", keys), str(source), "train")
    assert report.ingested == ["c1"] and len(report.quarantined) == 1
    return source


def _zone_bytes(tmp_path: Path, zone: str) -> bytes:
    return b"".join(p.read_bytes() for p in sorted((tmp_path / "zones" / zone).rglob("*")) if p.is_file())


def test_nothing_in_the_raw_zone_is_readable_plaintext(tmp_path: Path) -> None:
    source = _ingest(tmp_path)
    audio = (source / "audio" / "c1.wav").read_bytes()
    for zone in ("raw", "quarantine"):
        stored = _zone_bytes(tmp_path, zone)
        assert TRANSCRIPT.encode() not in stored and b"caller-c1" not in stored and b"caller-broken" not in stored
        assert b"how can I help" not in stored
    stored = _zone_bytes(tmp_path, "raw")
    for start in range(44, len(audio) - 64, 4096):  # no run of the PCM samples survives
        assert audio[start : start + 64] not in stored
    # A WAV header, not the bare words: Fernet's base64 text spells "RIFF" by chance about once in 100 runs.
    assert re.search(rb"RIFF.{4}WAVEfmt ", stored, re.DOTALL) is None
    names = sorted(p.name for p in (tmp_path / "zones/raw/c1").iterdir())
    assert names == ["audio.wav.enc", "call.json.enc", "meta.json"]


def test_decrypt_round_trip(tmp_path: Path) -> None:
    source = _ingest(tmp_path)
    [(document, audio)] = _store(tmp_path, "redaction").read_raw(["c1"])
    assert audio == (source / "audio" / "c1.wav").read_bytes()
    assert document["caller_id"] == "caller-c1" and document["turns"][1]["text"] == TRANSCRIPT
    assert document["audio"] == "audio.wav" and document["_ingest"]["audio"]["sample_rate"] == 16000


def test_rotation_with_two_keys_then_dropping_the_old_one(tmp_path: Path) -> None:
    old, new = generate_key(), generate_key()
    _ingest(tmp_path, keys=[old])
    before = {p: p.read_bytes() for p in (tmp_path / "zones").rglob("*.enc")}
    assert len(before) == 3  # call, audio, quarantined original

    report = _store(tmp_path, "key-rotation", keys=[new, old]).rotate_raw_keys()
    assert (report.files, report.failed, report.primary, report.call_ids) == (3, [], fingerprint(new), ["c1"])
    assert all(path.read_bytes() != data for path, data in before.items())
    [entry] = list(_store(tmp_path, "ingest").audit.entries(action="keys.rotate"))
    assert entry.outcome == "ok" and entry.call_ids == ["c1"] and entry.detail["primary"] == fingerprint(new)
    assert old not in str(entry.detail) and new not in str(entry.detail)

    [(document, _audio)] = _store(tmp_path, "redaction", keys=[new]).read_raw(["c1"])
    assert document["call_id"] == "c1"
    reviewer = _store(tmp_path, "qa-review", keys=[new])
    assert reviewer.read_quarantined("ingest/broken.json").files["broken.json"].startswith(b"{")
    with pytest.raises(RawKeyError, match="raw/c1/call.json.enc cannot be decrypted"):
        list(_store(tmp_path, "redaction", keys=[old]).read_raw_documents(["c1"]))


def test_rotation_reports_files_no_configured_key_opens(tmp_path: Path) -> None:
    lost, current = generate_key(), generate_key()
    _ingest(tmp_path, keys=[lost])
    report = _store(tmp_path, "key-rotation", keys=[current]).rotate_raw_keys()
    assert report.files == 0 and report.failed == [
        "raw/c1/audio.wav.enc", "raw/c1/call.json.enc", "quarantine/ingest/broken.json/broken.json.enc"]
    [entry] = list(_store(tmp_path, "ingest").audit.entries(action="keys.rotate"))
    assert entry.outcome == "partial"


def test_only_key_rotation_may_rotate(tmp_path: Path) -> None:
    from governance.access import AccessDenied

    _ingest(tmp_path)
    with pytest.raises(AccessDenied, match="may not write zone 'raw'"):
        _store(tmp_path, "retention", role="compliance-officer").rotate_raw_keys()


def test_a_wrong_key_gives_a_clear_error_without_key_material(tmp_path: Path) -> None:
    right, wrong = generate_key(), generate_key()
    _ingest(tmp_path, keys=[right])
    with pytest.raises(RawKeyError) as error:
        list(_store(tmp_path, "redaction", keys=[wrong]).read_raw(["c1"]))
    message = str(error.value)
    assert "raw/c1/call.json.enc cannot be decrypted with the 1 raw key(s) from VOICELOOP_RAW_KEYS" in message
    assert fingerprint(wrong) in message and wrong not in message and right not in message
    assert "Put the old key back" in message


def test_a_malformed_key_names_its_position_not_its_value(tmp_path: Path) -> None:
    good = generate_key()
    with pytest.raises(RawKeyError, match="VOICELOOP_RAW_KEYS: key 2 of 2 is not a valid Fernet key") as error:
        load_raw_cipher(tmp_path, {RAW_KEYS_ENV: f"{good},not-a-key"})
    assert good not in str(error.value) and "not-a-key" not in str(error.value)


def test_key_file_is_created_private_and_rotated_in_place(tmp_path: Path) -> None:
    keys_dir = tmp_path / "keys"
    first = load_raw_cipher(keys_dir, {})
    path = keys_dir / "raw.keys"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and stat.S_IMODE(keys_dir.stat().st_mode) == 0o700
    assert load_raw_cipher(keys_dir, {}).fingerprints == first.fingerprints  # created once, then reused

    new = add_raw_key(keys_dir, {})
    assert load_raw_cipher(keys_dir, {}).fingerprints == [new, first.primary]
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert retire_raw_keys(keys_dir, {}) == [first.primary]
    assert load_raw_cipher(keys_dir, {}).fingerprints == [new]
    with pytest.raises(RawKeyError, match="prepend the new key there"):
        add_raw_key(keys_dir, {RAW_KEYS_ENV: new})

    path.chmod(0o644)
    with pytest.raises(RawKeyError, match="readable by other users.*chmod 600"):
        load_raw_cipher(keys_dir, {})


def test_the_environment_wins_over_the_key_file(tmp_path: Path) -> None:
    key = generate_key()
    cipher = load_raw_cipher(tmp_path / "keys", {RAW_KEYS_ENV: f" {key} ,"})
    assert cipher.fingerprints == [fingerprint(key)] and cipher.source == RAW_KEYS_ENV
    assert not (tmp_path / "keys" / "raw.keys").exists()
