"""`cotal-tui agent` as a real subprocess: JSON lines in on stdin, JSON lines out on stdout."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from waiting import wait_for_sync

Obj = dict[str, Any]


class AgentProcess:
    """Collects every stdout line (parsed; a non-JSON line is kept as {"_raw": line}) and
    stderr apart, so a test can assert that stdout holds nothing but JSON objects."""

    def __init__(self, args: Sequence[str], cwd: Path) -> None:
        self.args = list(args)
        self.out: list[Obj] = []
        self.err: list[str] = []
        self._lock = threading.Lock()
        self._next_id = 0
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "cotal_tui", "agent", *self.args],
            cwd=cwd,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        self._threads = [
            threading.Thread(target=self._read_out, daemon=True),
            threading.Thread(target=self._read_err, daemon=True),
        ]
        for t in self._threads:
            t.start()

    def _read_out(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            try:
                obj = json.loads(line)
            except ValueError:
                obj = {"_raw": line.rstrip("\n")}
            if not isinstance(obj, dict):
                obj = {"_raw": line.rstrip("\n")}
            with self._lock:
                self.out.append(obj)

    def _read_err(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            with self._lock:
                self.err.append(line.rstrip("\n"))

    def objects(self) -> list[Obj]:
        with self._lock:
            return list(self.out)

    def describe(self) -> str:
        with self._lock:
            out = "\n".join(json.dumps(o) for o in self.out[-40:])
            err = "\n".join(self.err[-20:])
        return f"exit={self.proc.poll()}\nstdout (last 40):\n{out}\nstderr:\n{err}"

    def send_raw(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def send(self, op: str, **fields: Any) -> str:
        """Send a command with a fresh id; returns the id."""
        self._next_id += 1
        cmd_id = f"c{self._next_id}"
        self.send_raw(json.dumps({"op": op, "id": cmd_id, **fields}))
        return cmd_id

    def wait(self, pred: Callable[[Obj], bool], *, what: str, timeout: float = 30.0) -> Obj:
        def found() -> Obj | None:
            for obj in self.objects():
                if pred(obj):
                    return obj
            if self.proc.poll() is not None:
                for t in self._threads:
                    t.join(timeout=2)
                for obj in self.objects():
                    if pred(obj):
                        return obj
                raise AssertionError(f"agent exited before {what}\n{self.describe()}")
            return None

        return wait_for_sync(found, what=what, timeout=timeout, describe=self.describe)

    def reply(self, cmd_id: str, *, timeout: float = 40.0) -> Obj:
        return self.wait(
            lambda o: "reply" in o and o.get("id") == cmd_id,
            what=f"the reply to {cmd_id}",
            timeout=timeout,
        )

    def call(self, op: str, *, timeout: float = 40.0, **fields: Any) -> Obj:
        return self.reply(self.send(op, **fields), timeout=timeout)

    def events(self, kind: str, **match: Any) -> list[Obj]:
        return [
            o
            for o in self.objects()
            if o.get("event") == kind and all(o.get(k) == v for k, v in match.items())
        ]

    def close_stdin(self) -> None:
        if self.proc.stdin is not None and not self.proc.stdin.closed:
            self.proc.stdin.close()

    def wait_exit(self, timeout: float = 20.0) -> int:
        code = self.proc.wait(timeout=timeout)
        for t in self._threads:
            t.join(timeout=2)
        return code

    def terminate(self, timeout: float = 20.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.wait_exit(timeout)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        with_stdin = self.proc.stdin
        if with_stdin is not None and not with_stdin.closed:
            try:
                with_stdin.close()
            except OSError:
                pass
