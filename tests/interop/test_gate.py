"""The interop suite's gate: a missing reference folder skips (naming the folder) on a user's
clone and fails under CI=true — run as a pytest subprocess against a folder that does not exist."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def _run(tmp_path: Path, ci: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COTAL_REFERENCE": str(tmp_path / "no-reference"), "CI": ci}
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            str(HERE / "test_ref_space.py"),
            "-q",
            "-rs",
            "-p",
            "no:cacheprovider",
        ],
        cwd=HERE.parents[1],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_missing_reference_skips_with_the_folder_named(tmp_path: Path) -> None:
    done = _run(tmp_path, "")
    assert done.returncode == 0, done.stdout
    assert "2 skipped" in done.stdout
    assert f"reference build not found: {tmp_path / 'no-reference' / 'cotal-0.6.0'}" in done.stdout


def test_missing_reference_fails_under_ci(tmp_path: Path) -> None:
    done = _run(tmp_path, "true")
    assert done.returncode != 0, done.stdout
    assert "CI=true: the interop suite must run, not skip" in done.stdout
    assert "skipped" not in done.stdout
