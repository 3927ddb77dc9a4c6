"""Run `cotal-tui` as a real subprocess and read its output lines as they come."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Sequence
from pathlib import Path

from waiting import wait_for_sync


class CliProcess:
    """`python -m cotal_tui ARGS` with stdout and stderr collected line by line."""

    def __init__(self, args: Sequence[str], cwd: Path, env: dict[str, str] | None = None) -> None:
        self.args = list(args)
        self.lines: list[str] = []
        self._lock = threading.Lock()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "cotal_tui", *self.args],
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            with self._lock:
                self.lines.append(line.rstrip("\n"))

    @property
    def output(self) -> str:
        with self._lock:
            return "\n".join(self.lines)

    def wait_line(self, pattern: str, *, timeout: float = 20.0) -> re.Match[str]:
        """The first output line matching `pattern` (a regex), waiting for it to appear."""
        rx = re.compile(pattern)

        def found() -> re.Match[str] | None:
            with self._lock:
                for line in self.lines:
                    m = rx.search(line)
                    if m:
                        return m
            if self.proc.poll() is not None:
                self._reader.join(timeout=2)
                with self._lock:
                    for line in self.lines:
                        m = rx.search(line)
                        if m:
                            return m
                raise AssertionError(
                    f"cotal-tui {' '.join(self.args)} exited with {self.proc.returncode} before "
                    f"printing /{pattern}/; output:\n{self.output}"
                )
            return None

        try:
            return wait_for_sync(found, what=f"a line matching /{pattern}/", timeout=timeout)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\noutput so far:\n{self.output}") from None

    def count(self, pattern: str) -> int:
        rx = re.compile(pattern)
        with self._lock:
            return sum(1 for line in self.lines if rx.search(line))

    def terminate(self, timeout: float = 15.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout=timeout)
        self._reader.join(timeout=2)
        return code

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self._reader.join(timeout=2)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie still answers kill(0); treat it as gone only when its parent reaped it.
    try:
        with open(f"/proc/{pid}/status") as f:
            return "zombie" not in f.read().lower()
    except OSError:
        return False
