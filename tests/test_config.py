"""Configuration precedence: environment > params file > defaults."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.settings import env_overrides, load_settings
from governance.identity import ROLE_ENV, RoleRefused, resolve_role
from governance.policy import UnknownRole


def test_env_overrides_params_file_which_overrides_defaults(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    params = tmp_path / "params.yaml"
    params.write_text("gate:\n  margin: 0.02\n  floor: 0.5\nproject_dir: somewhere\n")
    monkeypatch.setenv("VOICELOOP__GATE__MARGIN", "0.015")
    monkeypatch.setenv("VOICELOOP_PROJECT_DIR", str(tmp_path / "state"))
    settings = load_settings(params)
    assert settings.gate.margin == 0.015 and settings.gate.floor == 0.5
    assert settings.root == (tmp_path / "state").resolve()
    assert settings.audit_url == f"sqlite:///{settings.root / 'audit.db'}"
    assert settings.gate.confidence == 0.95  # default


def test_env_values_are_parsed_as_yaml() -> None:
    tree = env_overrides({"VOICELOOP__INTENT__LORA__TARGET_MODULES": "[query, value]", "OTHER": "x"})
    assert tree == {"intent": {"lora": {"target_modules": ["query", "value"]}}}


def test_environment_values_reach_the_settings_parsed_as_yaml(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VOICELOOP__INTENT__LORA__TARGET_MODULES", "[query, value]")
    monkeypatch.setenv("VOICELOOP__ASR__ENABLED", "no")  # YAML's boolean, as in params.yaml
    monkeypatch.setenv("VOICELOOP__GATE__MARGIN", "0.015")
    settings = load_settings(tmp_path / "absent.yaml")
    assert settings.intent.lora.target_modules == ["query", "value"]
    assert settings.asr.enabled is False and settings.gate.margin == 0.015
    assert load_settings(tmp_path / "absent.yaml", gate={"margin": 0.005}).gate.margin == 0.005  # keywords win


def test_an_unknown_environment_key_is_an_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VOICELOOP__GATE__MARGN", "0.02")
    with pytest.raises(ValueError, match="margn"):
        load_settings(tmp_path / "absent.yaml")


def test_unknown_keys_are_refused(tmp_path: Path) -> None:
    params = tmp_path / "params.yaml"
    params.write_text("gate:\n  margn: 0.02\n")
    with pytest.raises(ValueError, match="margn"):
        load_settings(params)


def test_one_role_resolver_flag_then_environment_then_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    params = tmp_path / "params.yaml"
    params.write_text("identity:\n  role: ml-engineer\n")
    settings = load_settings(params)
    monkeypatch.delenv(ROLE_ENV, raising=False)
    assert resolve_role(settings) == "ml-engineer"
    assert resolve_role(settings, configured="serving") == "serving"  # the server's own setting
    monkeypatch.setenv(ROLE_ENV, "compliance-officer")
    assert resolve_role(settings) == "compliance-officer"
    assert resolve_role(settings, flag="admin") == "admin"
    assert load_settings(params).identity.role == "ml-engineer"  # the environment is read in one place only


def test_unknown_roles_and_roles_without_the_purpose_are_refused_at_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(ROLE_ENV, raising=False)
    settings = load_settings(tmp_path / "none.yaml")
    with pytest.raises(UnknownRole, match="unknown role 'auditor'"):
        resolve_role(settings, flag="auditor")
    with pytest.raises(RoleRefused, match="roles that may: admin, compliance-officer"):
        resolve_role(settings, "erasure", flag="pipeline")
    assert resolve_role(settings, "erasure", flag="compliance-officer") == "compliance-officer"


def test_a_params_file_with_a_removed_knob_is_refused_naming_it(tmp_path: Path) -> None:
    """Projects made before issue 15 may still set the removed intent knobs: the error says which to delete."""
    params = tmp_path / "params.yaml"
    params.write_text("intent:\n  rdrop_alpha: 0.0\n")
    with pytest.raises(ValueError, match=r"intent\.rdrop_alpha"):
        load_settings(params)
