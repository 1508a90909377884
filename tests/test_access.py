"""Access policy: every role's allowed and denied paths, hard invariants, bad files, audited changes.

The expectations below are written out by hand (not derived from the policy file), so a change
to the shipped policy that widens or narrows access fails here until it is made on purpose.
"""

from __future__ import annotations

import getpass
import re
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from datasets import Dataset

from core.settings import Settings
from governance import access
from governance.access import AccessDenied
from governance.audit import Actor, AuditLog
from governance.crypto import Keyring
from governance.policy import (
    OPERATIONS,
    PURPOSES,
    ZONES,
    Policy,
    PolicyError,
    UnknownRole,
    load_policy,
    parse_policy,
)
from governance.session import open_store
from governance.store import GovernedStore

SHIPPED = load_policy()
SHIPPED_TEXT = Path(SHIPPED.source).read_text()

#: purpose -> the zone operations it may do (the shipped policy, written out)
RIGHTS: dict[str, set[str]] = {
    "ingest": {"raw.write", "quarantine.write"},
    "redaction": {"raw.read", "redacted.write", "quarantine.write"},
    "validation": {"redacted.read", "quarantine.write"},
    "training": {"redacted.read", "datasets.read", "datasets.write", "labels.read"},
    "evaluation": {"datasets.read", "labels.read"},
    "qa-review": {"raw.read", "redacted.read", "quarantine.read"},
    "audit": set(),
    "erasure": {"raw.delete", "redacted.delete", "datasets.read", "datasets.write", "datasets.delete",
                "quarantine.delete", "monitoring.delete", "labels.read", "labels.delete"},
    "withdrawal": {"raw.delete", "redacted.delete", "datasets.read", "datasets.write", "datasets.delete",
                   "quarantine.delete", "monitoring.delete", "labels.read", "labels.delete"},
    "retention": {"raw.delete", "redacted.delete", "quarantine.delete", "monitoring.delete", "labels.delete"},
    "key-rotation": {"raw.write", "quarantine.write"},
    "promotion": set(),
    "transcription": set(),
    # numbers about every production call; reads redacted calls and the golden set, never raw
    "monitoring": {"redacted.read", "datasets.read", "monitoring.read", "monitoring.write", "labels.read"},
    # the weekly QA review: redacted calls and the monitor's numbers in, reviewed labels out; never raw
    "labelling": {"redacted.read", "monitoring.read", "labels.read", "labels.write", "quarantine.write"},
}
ROLES: dict[str, set[str]] = {
    "pipeline": {"ingest", "redaction", "validation", "training", "evaluation", "withdrawal", "monitoring"},
    "ml-engineer": {"validation", "training", "evaluation", "qa-review", "monitoring", "labelling"},
    "reviewer": {"labelling"},
    "compliance-officer": {"audit", "erasure", "withdrawal", "retention", "qa-review", "monitoring"},
    "serving": {"evaluation"},
    "voice-bot": {"evaluation", "transcription"},
    "admin": set(PURPOSES),
}
CALL, CALLER = "call-secret-1", "caller-555-0134"


def allowed(role: str, purpose: str, zone: str, operation: str) -> bool:
    return purpose in ROLES[role] and f"{zone}.{operation}" in RIGHTS[purpose]


def test_hard_rules_hold_in_the_expectations_too() -> None:
    assert "raw.read" not in RIGHTS["training"] and "raw.read" not in RIGHTS["evaluation"]
    assert not any(z.startswith("raw") or z == "redacted.read" for z in RIGHTS["evaluation"])
    assert set(SHIPPED.roles) == set(ROLES)


@pytest.mark.parametrize("role", sorted(ROLES))
def test_shipped_policy_matches_the_table(role: str) -> None:
    assert SHIPPED.purposes_of(role) == ROLES[role]
    wrong = []
    for purpose in PURPOSES:
        for zone in ZONES:
            for operation in OPERATIONS:
                try:
                    access.check(SHIPPED, Actor(role=role, purpose=purpose, user="t"), zone, operation)
                    granted = True
                except AccessDenied:
                    granted = False
                if granted != allowed(role, purpose, zone, operation):
                    wrong.append((purpose, zone, operation, granted))
    assert wrong == []


# -- the store enforces the table, audits denials, and never names data in them -----------------
def _wav() -> bytes:
    samples = 1600
    header = b"RIFF" + struct.pack("<I", 36 + 2 * samples) + b"WAVEfmt " + struct.pack(
        "<IHHIIHH", 16, 1, 1, 16000, 32000, 2, 16
    ) + b"data" + struct.pack("<I", 2 * samples)
    return header + b"\x01\x00" * samples


def _document() -> dict[str, Any]:
    return {
        "call_id": CALL,
        "started_at": "2026-11-20T10:00:00+00:00",
        "caller_id": CALLER,
        "consent": {"training": True},
        "turns": [{"speaker": "customer", "start_s": 0.0, "end_s": 0.1, "text": "my card is lost"}],
        "_ingest": {"split": "train", "ingested_at": "2026-11-21T00:00:00+00:00"},
    }


def _populate(root: Path, audit: AuditLog) -> None:
    def as_admin(purpose: str) -> GovernedStore:
        return GovernedStore(root, audit, Actor(role="admin", purpose=purpose, user="setup"))

    as_admin("ingest").write_raw([(_document(), _wav(), ".wav")])
    as_admin("redaction").write_redacted([{"call_id": CALL, "caller_ref": "caller-x", "turns": []}])
    as_admin("training").write_dataset("intent-train", "d" * 64, _ROWS, [CALL])
    as_admin("ingest").quarantine("ingest", f"{CALL}.json", "bad audio", call_id=CALL)


_ROWS = Dataset.from_list([{"call_id": CALL, "text": "my card is lost"}])


OPS: dict[str, Callable[[GovernedStore], Any]] = {
    "raw.read": lambda s: list(s.read_raw([CALL])),
    "raw.write": lambda s: s.write_raw([(_document(), _wav(), ".wav")]),
    "raw.delete": lambda s: s.delete_raw([CALL]),
    "redacted.read": lambda s: s.read_redacted([CALL]),
    "redacted.write": lambda s: s.write_redacted([{"call_id": CALL, "turns": []}]),
    "redacted.delete": lambda s: s.delete_redacted([CALL]),
    "datasets.read": lambda s: s.open_dataset("intent-train", "d" * 64),
    "datasets.write": lambda s: s.write_dataset("intent-train", "d" * 64, _ROWS, [CALL]),
    "datasets.delete": lambda s: s.delete_dataset("intent-train", "d" * 64),
    "quarantine.read": lambda s: s.read_quarantined(f"ingest/{CALL}.json"),
    "quarantine.write": lambda s: s.quarantine("validation", f"{CALL}.turn0", "too short", call_id=CALL),
    "quarantine.delete": lambda s: s.delete_quarantined([CALL]),
}


@pytest.mark.parametrize("role", sorted(ROLES))
def test_the_store_allows_and_denies_every_path_of_a_role(role: str, tmp_path: Path) -> None:
    audit = AuditLog(f"sqlite:///{tmp_path / 'audit.db'}")
    root = tmp_path / "zones"
    _populate(root, audit)
    for purpose in PURPOSES:
        store = GovernedStore(root, audit, Actor(role=role, purpose=purpose, user="tester"))
        for name, operation in OPS.items():
            zone, op = name.split(".")
            if allowed(role, purpose, zone, op):
                operation(store)
                if op == "delete":
                    _populate(root, audit)
                continue
            before = audit.count()
            with pytest.raises(AccessDenied) as denied:
                operation(store)
            message = str(denied.value)
            assert f"role {role!r} with purpose {purpose!r} may not {op} zone {zone!r}" in message
            assert CALL not in message and CALLER not in message and "caller-x" not in message
            [entry] = list(audit.entries(since_id=before))
            assert (entry.outcome, entry.role, entry.purpose, entry.zone) == ("denied", role, purpose, zone)
            assert entry.call_ids == [] and CALL not in str(entry.detail)
    assert audit.verify().ok


def test_a_denial_says_who_could_do_it_instead() -> None:
    engineer = Actor(role="ml-engineer", purpose="training", user="t")
    with pytest.raises(AccessDenied, match="hard rule") as denied:
        access.check(SHIPPED, engineer, "raw", "read")
    assert "redacted zone or a dataset" in str(denied.value)
    with pytest.raises(AccessDenied) as denied:
        access.check(SHIPPED, Actor(role="serving", purpose="erasure", user="t"), "raw", "delete")
    assert "Roles that may act for 'erasure': admin, compliance-officer" in str(denied.value)
    assert "--as ROLE" in str(denied.value)
    with pytest.raises(AccessDenied) as denied:
        access.check(SHIPPED, Actor(role="compliance-officer", purpose="erasure", user="t"), "raw", "read")
    assert "purposes allowed to read zone 'raw': qa-review, redaction" in str(denied.value)
    assert "role 'compliance-officer' may use purpose qa-review" in str(denied.value)


# -- training never reads raw, whatever the policy ----------------------------------------------
HOSTILE = SHIPPED_TEXT.replace(
    "read: [redaction, qa-review]", "read: [redaction, qa-review, training]"
)


def test_a_policy_file_granting_training_raw_reads_is_rejected(tmp_path: Path) -> None:
    assert "training]" in HOSTILE
    path = tmp_path / "hostile.yaml"
    path.write_text(HOSTILE)
    with pytest.raises(PolicyError, match=rf"{re.escape(str(path))}: zones\.raw\.read: grants training") as error:
        load_policy(path)
    assert "hard rule" in str(error.value)


def test_a_hand_built_policy_still_cannot_let_training_read_raw() -> None:
    grants = dict(SHIPPED.grants)
    grants[("raw", "read")] = frozenset(PURPOSES)
    rogue = Policy(source="rogue", digest="x", roles={"admin": frozenset(PURPOSES)}, grants=grants)
    access.check(rogue, Actor(role="admin", purpose="evaluation", user="t"), "raw", "read")  # the policy's call
    with pytest.raises(AccessDenied, match="may not read zone 'raw': training never may"):
        access.check(rogue, Actor(role="admin", purpose="training", user="t"), "raw", "read")


# -- bad policy files fail loading with the file and the key ---------------------------------------
@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (lambda t: t.replace("purposes: [validation, training", "purposes: [validaton, training"),
         r"roles\.ml-engineer\.purposes\[0\]: Input should be 'ingest'"),
        (lambda t: t.replace("version: 1", "version: 1\nowner: me"), r"owner: Extra inputs are not permitted"),
        (lambda t: t.replace("  quarantine:\n", "  quarantine-zone:\n"), r"zones\.quarantine: Field required"),
        (lambda t: t.replace("  serving:\n", "  Serving Team:\n"),
         r"roles\.Serving Team\.\[key\]: String should match"),
        (lambda t: t.replace("version: 1", "version: 2"), r"version: Input should be 1"),
        (lambda t: t.replace("roles:", "roles: [oops", 1), r"not valid YAML at line \d+"),
        (lambda t: t.replace("    read: [training, evaluation, erasure, withdrawal, monitoring]", "    read: training"),
         r"zones\.datasets\.read"),
    ],
)
def test_a_bad_policy_file_gives_a_clear_error(edit: Callable[[str], str], expected: str, tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text(edit(SHIPPED_TEXT))
    with pytest.raises(PolicyError, match=expected) as error:
        load_policy(path)
    assert str(error.value).startswith(f"{path}: ")


def test_a_missing_policy_file_says_which_setting_to_fix(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match="access.policy_file"):
        load_policy(tmp_path / "nope.yaml")
    assert parse_policy(SHIPPED_TEXT, "copy").rules() == SHIPPED.rules()


# -- identity and audited policy changes through open_store ---------------------------------------
def _settings(tmp_path: Path, policy_file: Path | None = None) -> Settings:
    (tmp_path / "state").mkdir(exist_ok=True)
    return Settings.model_validate(
        {"project_dir": str(tmp_path / "state"), "access": {"policy_file": str(policy_file or "")}}
    )


def test_unknown_roles_fail_with_the_known_ones(tmp_path: Path) -> None:
    with pytest.raises(UnknownRole, match="unknown role 'intern'.*admin, compliance-officer, ml-engineer"):
        open_store(_settings(tmp_path), "intern", "training")
    store = open_store(_settings(tmp_path), "ml-engineer", "training")
    assert store.actor.user == getpass.getuser() and store.actor.role == "ml-engineer"
    assert isinstance(store.keys, Keyring) and store.keys.keys_dir == tmp_path / "state" / "keys"


def test_policy_changes_are_audited_with_digests_and_what_changed(tmp_path: Path) -> None:
    policy_file = tmp_path / "policy.yaml"
    policy_file.write_text(SHIPPED_TEXT)
    settings = _settings(tmp_path, policy_file)
    store = open_store(settings, "pipeline", "ingest")
    [loaded] = list(store.audit.entries(action="policy.loaded"))
    assert loaded.detail["digest"] == SHIPPED.digest and loaded.detail["rules"] == SHIPPED.rules()

    open_store(settings, "pipeline", "training")  # same policy: nothing new
    assert list(store.audit.entries(action="policy.changed")) == []

    policy_file.write_text(
        SHIPPED_TEXT.replace("purposes: [evaluation]", "purposes: [evaluation, qa-review]").replace(
            "    delete: [erasure, withdrawal]\n", "    delete: [erasure, withdrawal, retention]\n"
        )
    )
    serving = open_store(settings, "serving", "qa-review")
    [changed] = list(store.audit.entries(action="policy.changed"))
    assert changed.detail["previous_digest"] == SHIPPED.digest
    assert changed.detail["digest"] == serving.policy.digest != SHIPPED.digest
    assert changed.detail["changes"] == ["roles.serving: +qa-review", "zones.datasets.delete: +retention"]
    assert (changed.role, changed.actor) == ("serving", getpass.getuser())
    serving.read_redacted([])  # the new rule is in force at once

    policy_file.write_text(policy_file.read_text() + "# a comment\n")
    open_store(settings, "pipeline", "ingest")
    *_, last = store.audit.entries(action="policy.changed")
    assert last.detail["changes"] == ["no rule changed (comments or formatting only)"]
    assert store.audit.verify().ok
