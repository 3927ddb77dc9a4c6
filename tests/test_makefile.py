"""Item 12 of issue 12: `make install` says what it is doing while it works (a first install
takes ~30 s), and still fails when pip fails. Run against a stand-in interpreter so the test
installs nothing."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

FAKE_PY = """#!/bin/sh
# A stand-in python: `-m venv DIR` makes DIR/bin/python (itself); `-m pip install ...` prints
# what pip prints, and fails when $FAKE_PIP_FAIL is set.
if [ "$1" = "-m" ] && [ "$2" = "venv" ]; then
  mkdir -p "$3/bin" && cp "$0" "$3/bin/python" && exit 0
fi
if [ "$1" = "-m" ] && [ "$2" = "pip" ]; then
  case "$*" in *--quiet*) exit 0 ;; esac
  echo "Collecting textual"
  echo "  Downloading textual-1.0.whl"
  if [ -n "$FAKE_PIP_FAIL" ]; then echo "ERROR: No matching distribution found"; exit 1; fi
  echo "Installing collected packages: textual"
  echo "Successfully installed textual-1.0"
  exit 0
fi
exit 0
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    shutil.copy(ROOT / "Makefile", tmp_path / "Makefile")
    (tmp_path / "pyproject.toml").write_text("[project]\nname = 'x'\n")
    fake = tmp_path / "fakepy"
    fake.write_text(FAKE_PY)
    fake.chmod(0o755)
    return tmp_path


def make_install(project: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["make", "install", f"PY={project / 'fakepy'}"],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin", **env},
    )


def test_make_install_prints_progress(project: Path) -> None:
    proc = make_install(project)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    steps = [line for line in lines if line.startswith("[")]
    assert [s[:5] for s in steps] == ["[1/3]", "[2/3]", "[3/3]"], proc.stdout
    assert any("Collecting textual" in line for line in lines), proc.stdout
    assert any("Successfully installed" in line for line in lines), proc.stdout
    assert "Downloading" not in proc.stdout, "pip's noise is filtered to one line per package"
    assert lines[-1].startswith("installed:"), proc.stdout
    assert (project / ".venv" / ".installed").exists()


def test_make_install_fails_when_pip_fails(project: Path) -> None:
    proc = make_install(project, FAKE_PIP_FAIL="1")
    assert proc.returncode != 0, proc.stdout
    assert "ERROR: No matching distribution" in proc.stdout
    assert not (project / ".venv" / ".installed").exists()
