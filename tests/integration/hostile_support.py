"""Helpers for the hostile-input tests (issue 10): the daemon as a real process whose CPU and log
can be watched, the poison payloads, and the dead-letter store as an operator reads it."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from nats.aio.client import Client

from cotal_tui.protocol.dead_letter import dead_letter_stream

_TICK = os.sysconf("SC_CLK_TCK")


class DaemonProcess:
    """`cotal-tui daemon` as a subprocess (stderr to a log file), stopped by pid."""

    def __init__(self, url: str, space: str, tmp: Path, name: str = "daemon", **kw: Any) -> None:
        self.log = tmp / f"{name}.log"
        args = [sys.executable, "-m", "cotal_tui", "daemon", "--server", url, "--space", space]
        if kw.get("creds"):
            args += ["--creds", str(kw["creds"])]
        else:
            args += ["--id", kw.get("daemon_id") or f"D{uuid.uuid4().hex[:10]}"]
        if kw.get("state_dir"):
            args += ["--state-dir", str(kw["state_dir"])]
        self.proc = subprocess.Popen(
            args, stdout=subprocess.DEVNULL, stderr=self.log.open("w"), env={**os.environ}
        )

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def text(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")

    def serving(self) -> bool:
        return "✓ delivery: serving" in self.text

    def error_lines(self) -> int:
        return sum(1 for line in self.text.splitlines() if line.startswith("! delivery"))

    def pids(self) -> list[int]:
        """The daemon's processes: this one and its stages (``--stages processes``)."""
        out, todo = [], [self.pid]
        while todo:
            pid = todo.pop()
            out.append(pid)
            with contextlib.suppress(OSError):
                children = Path(f"/proc/{pid}/task/{pid}/children").read_text()
                todo += [int(p) for p in children.split()]
        return out

    def cpu_seconds(self) -> float:
        """CPU seconds of every process of the daemon (its stages included)."""
        total = 0.0
        for pid in self.pids():
            with contextlib.suppress(OSError), open(f"/proc/{pid}/stat", encoding="ascii") as f:
                fields = f.read().rsplit(")", 1)[1].split()
                total += (int(fields[11]) + int(fields[12])) / _TICK
        return total

    def idle_over(self, window: float = 2.0, share: float = 0.2) -> bool:
        """True when the daemon used less than ``share`` of a core over ``window`` seconds."""
        before, t0 = self.cpu_seconds(), time.monotonic()
        time.sleep(window)
        used = self.cpu_seconds() - before
        return used / (time.monotonic() - t0) < share

    def pause(self) -> None:
        """Freeze the whole daemon (its stage processes too: they route on their own)."""
        for pid in self.pids():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGSTOP)

    def resume(self) -> None:
        for pid in self.pids():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.resume()
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.resume()
            self.proc.kill()
            self.proc.wait()


def nested(levels: int) -> Any:
    value: Any = []
    for _ in range(levels - 1):
        value = [value]
    return value


def deep_body(space: str, sender: str, channel: str, levels: int = 3000) -> bytes:
    """The issue's poison: a valid-looking CotalMessage whose data part nests ``levels`` deep
    (built as text: Python's own encoder cannot write what its decoder cannot read)."""
    head = json.dumps(
        {
            "id": str(uuid.uuid4()),
            "ts": 1,
            "space": space,
            "from": {"id": sender, "name": "mallory"},
            "channel": channel,
        }
    )[:-1]
    return (
        head + ',"parts":[{"kind":"data","data":' + "[" * levels + "]" * levels + "}]}"
    ).encode()


async def dead_letters(nc: Client, space: str) -> list[dict[str, Any]]:
    """Every retained dead-letter record, oldest first ([] when the store is empty)."""
    js = nc.jetstream()
    stream = dead_letter_stream(space)
    info = await js.stream_info(stream)
    out = []
    for seq in range(info.state.first_seq, info.state.last_seq + 1):
        if info.state.messages == 0:
            break
        try:
            msg = await js.get_msg(stream, seq)
        except Exception:  # noqa: BLE001 - a discarded sequence
            continue
        out.append(json.loads(msg.data or b"{}"))
    return out
