"""A failed install step stops `make deps` with one message naming what failed and the fix."""

import os
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_missing_python_is_named_with_the_fix(tmp_path):
    result = subprocess.run(["bash", str(ROOT / "scripts" / "bootstrap.sh")], capture_output=True, text=True,
                            timeout=300, env={**os.environ, "MODELMESH_PYTHON": "/nonexistent/python3.11"})
    assert result.returncode != 0
    assert "ERROR: /nonexistent/python3.11 not found" in result.stderr
    assert "how to fix: install Python >= 3.11" in result.stderr
    assert "Traceback" not in result.stderr


def test_failed_pip_install_names_the_step(tmp_path):
    # A copy of the project whose pyproject asks for a package that cannot exist.
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True)
    pyproject = clone / "pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace(
        'dependencies = [', 'dependencies = [\n    "modelmesh-no-such-package-xyz==0.0.1",', 1))
    result = subprocess.run(["bash", "scripts/bootstrap.sh"], cwd=clone, capture_output=True, text=True, timeout=600,
                            env={**os.environ, "MODELMESH_CACHE": str(tmp_path / "cache")})
    assert result.returncode != 0
    assert "ERROR: pip install -e .[dev] failed" in result.stderr
    assert "how to fix:" in result.stderr
