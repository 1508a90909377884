"""The import-linter contracts hold, and each one fails when a single violating import is planted.

A contract that cannot fail guards nothing: each case copies the packages and ``pyproject.toml``
into a temporary folder, adds one module that breaks exactly one rule, and runs ``lint-imports``
on the copy for that contract.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

PACKAGES = ("core", "governance", "training", "serving", "monitoring", "qa", "flows", "voiceloop")
LINT_IMPORTS = str(Path(sys.executable).with_name("lint-imports"))


def _copy(tmp_path: Path) -> Path:
    root = tmp_path / "house"
    for package in PACKAGES:
        shutil.copytree(REPO / package, root / package, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "pyproject.toml", root / "pyproject.toml")
    return root


def _lint(root: Path, *contracts: str) -> subprocess.CompletedProcess[str]:
    args = [LINT_IMPORTS, "--no-cache", "--no-logo", *(a for c in contracts for a in ("--contract", c))]
    return subprocess.run(args, cwd=root, capture_output=True, text=True, timeout=120, check=False)


def test_the_repository_keeps_every_contract(tmp_path: Path) -> None:
    result = _lint(_copy(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "4 kept, 0 broken" in result.stdout


@pytest.mark.parametrize(
    ("contract", "module", "planted"),
    [
        ("layers", "core/_planted.py", "import governance.store\n"),  # the foundation reaching up
        ("layers", "monitoring/_planted.py", "import serving.app\n"),  # siblings stay independent
        ("layers", "training/_planted.py", "import serving.runtime\n"),  # training below serving
        ("flows-on-top", "training/_planted.py", "def later() -> None:\n    import flows.retrain\n"),
        ("governance-alone", "governance/_planted.py", "import training.registry\n"),
        ("serving-without-prefect", "serving/_planted.py", "from prefect import flow\n"),
    ],
)
def test_a_planted_violation_breaks_its_contract(tmp_path: Path, contract: str, module: str, planted: str) -> None:
    root = _copy(tmp_path)
    (root / module).write_text(f'"""A planted violation."""\n\n{planted}')
    result = _lint(root, contract)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "BROKEN" in result.stdout and module.replace("/", ".").removesuffix(".py") in result.stdout
