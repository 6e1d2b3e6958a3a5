"""The layering rules of DESIGN.md hold: import-linter's contracts (pyproject ``[tool.importlinter]``) all kept."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def test_import_contracts_are_kept() -> None:
    exe = shutil.which("lint-imports", path=str(Path(sys.executable).parent))
    if exe is None:
        pytest.skip("import-linter not installed (scripts/setup.sh --test installs it)")
    proc = subprocess.run([exe, "--no-cache"], cwd=REPO, capture_output=True, text=True, timeout=300)
    report = proc.stdout + proc.stderr
    assert "Contracts: " in report, report[-2000:]
    assert proc.returncode == 0 and " 0 broken" in report, report[-4000:]
    assert report.count(" KEPT") >= 5
