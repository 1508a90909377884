"""Configuration precedence: environment > params file > defaults."""

from __future__ import annotations

from pathlib import Path

import pytest

from voiceloop.config import env_overrides, load_settings


def test_env_overrides_params_file_which_overrides_defaults(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    params = tmp_path / "params.yaml"
    params.write_text("gate:\n  margin: 0.02\n  floor: 0.5\nproject_dir: somewhere\n")
    monkeypatch.setenv("VOICELOOP__GATE__MARGIN", "0.03")
    monkeypatch.setenv("VOICELOOP_PROJECT_DIR", str(tmp_path / "state"))
    settings = load_settings(params)
    assert settings.gate.margin == 0.03 and settings.gate.floor == 0.5
    assert settings.root == (tmp_path / "state").resolve()
    assert settings.audit_url == f"sqlite:///{settings.root / 'audit.db'}"
    assert settings.gate.confidence == 0.95  # default


def test_env_values_are_parsed_as_yaml() -> None:
    tree = env_overrides({"VOICELOOP__INTENT__LORA__TARGET_MODULES": "[query, value]", "OTHER": "x"})
    assert tree == {"intent": {"lora": {"target_modules": ["query", "value"]}}}


def test_unknown_keys_are_refused(tmp_path: Path) -> None:
    params = tmp_path / "params.yaml"
    params.write_text("gate:\n  margn: 0.02\n")
    with pytest.raises(ValueError, match="margn"):
        load_settings(params)


def test_voiceloop_role_sets_who_acts_for_every_command(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    params = tmp_path / "params.yaml"
    params.write_text("identity:\n  role: pipeline\n")
    assert load_settings(params).identity.role == "pipeline"
    monkeypatch.setenv("VOICELOOP_ROLE", "compliance-officer")
    assert load_settings(params).identity.role == "compliance-officer"
