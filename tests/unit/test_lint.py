"""No undefined names, unused imports or syntax errors anywhere in the code (ruff F, E9)."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_ruff_finds_no_errors():
    result = subprocess.run(
        [sys.executable, "-m", "ruff", "check", "--select", "F,E9", "--exclude", "modelmesh/protos",
         "modelmesh", "tests", "perf", "scripts"], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
