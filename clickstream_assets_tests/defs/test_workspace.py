"""The code location loads the way `dagster dev` loads it (workspace.yaml)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_dagster_definitions_validate_passes(tmp_path):
    env = {**os.environ, "CLICKSTREAM_HOME": str(tmp_path), "DAGSTER_HOME": str(tmp_path)}
    proc = subprocess.run(
        [sys.executable, "-m", "dagster", "definitions", "validate", "-w", "workspace.yaml"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "All code locations passed validation" in proc.stderr + proc.stdout


def test_pyproject_has_no_dagster_block():
    text = (ROOT / "pyproject.toml").read_text()
    assert "[tool.dagster]" not in text and "[tool.dg]" not in text
