"""The reference side of the interop suite: Node processes running the project's own drivers
(`drivers/*.mjs`) against a reference build in `../shared/reference/<build>`.

Every process is started by a fixture and stopped by pid in its teardown. The drivers import the
reference by absolute path (COTAL_REF); nothing of the reference is copied into this repository.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import re
import shutil
import signal
import subprocess
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from waiting import wait_for

ROOT = Path(__file__).resolve().parents[2]
# `../shared/reference` from the project root (the README of that folder names this path);
# COTAL_REFERENCE overrides it (e.g. to check the skip/fail behaviour when it is missing).
REFERENCE = Path(
    os.environ.get("COTAL_REFERENCE") or (ROOT / ".." / "shared" / "reference")
).resolve()
BUILDS = ("cotal-0.6.0", "cotal-0.9.0")
DRIVERS = Path(__file__).resolve().parent / "drivers"
RESOLVE_HOOK = DRIVERS / "ref-resolve.mjs"


def node_binary() -> str | None:
    return shutil.which("node")


def ref_env(build: str) -> dict[str, str]:
    return {**os.environ, "COTAL_REF": str(REFERENCE / build)}


def node_cmd(script: str, *args: str) -> list[str]:
    node = node_binary() or "node"
    return [node, "--import", str(RESOLVE_HOOK), str(DRIVERS / script), *args]


class NodeProcess:
    """A driver process, its stdout/stderr collected line by line (as `cli_process.CliProcess`)."""

    def __init__(
        self,
        build: str,
        script: str,
        *args: str,
        stdin: bool = False,
        cwd: Path | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        self.build = build
        self.lines: list[str] = []
        self._lock = threading.Lock()
        self.proc = subprocess.Popen(
            node_cmd(script, *args),
            stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env={**ref_env(build), **(env or {})},
            cwd=cwd,
            start_new_session=True,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    @property
    def pid(self) -> int:
        return self.proc.pid

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._on_line(line.rstrip("\n"))

    def _on_line(self, line: str) -> None:
        with self._lock:
            self.lines.append(line)

    @property
    def output(self) -> str:
        with self._lock:
            return "\n".join(self.lines)

    def has_line(self, pattern: str) -> bool:
        rx = re.compile(pattern)
        with self._lock:
            return any(rx.search(line) for line in self.lines)

    async def wait_line(self, pattern: str, *, timeout: float = 30.0) -> None:
        def seen() -> bool:
            if self.has_line(pattern):
                return True
            if self.proc.poll() is not None:
                self._reader.join(timeout=2)
                if self.has_line(pattern):
                    return True
                raise AssertionError(
                    f"{self.build} driver exited with {self.proc.returncode} before /{pattern}/;"
                    f" output:\n{self.output}"
                )
            return False

        await wait_for(seen, what=f"{self.build} driver line /{pattern}/", timeout=timeout)

    def signal(self, sig: int) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, sig)

    async def exited(self, timeout: float = 15.0) -> int:
        await wait_for(
            lambda: self.proc.poll() is not None,
            what=f"{self.build} driver pid {self.pid} to exit",
            timeout=timeout,
        )
        return int(self.proc.returncode)

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)
        self._reader.join(timeout=2)


class RefEndpoint(NodeProcess):
    """A reference `CotalEndpoint` (drivers/endpoint.mjs): JSON-line commands in, events out."""

    def __init__(self, build: str) -> None:
        self._ids = itertools.count(1)
        self.replies: dict[int, dict[str, Any]] = {}
        self.events: list[dict[str, Any]] = []
        self.id = ""
        super().__init__(build, "endpoint.mjs", stdin=True)

    def _on_line(self, line: str) -> None:
        try:
            obj = json.loads(line)
        except ValueError:
            super()._on_line(line)
            return
        with self._lock:
            self.lines.append(line)
            if "reply" in obj:
                self.replies[int(obj["reply"])] = obj
            else:
                self.events.append(obj)

    async def call(self, op: str, *, timeout: float = 30.0, **args: Any) -> Any:
        """Run one command; its `data`, or AssertionError with the reference's error text."""
        reply = await self.try_call(op, timeout=timeout, **args)
        if not reply["ok"]:
            raise AssertionError(f"reference {self.build} {op} failed: {reply['error']}")
        return reply["data"]

    async def try_call(self, op: str, *, timeout: float = 30.0, **args: Any) -> dict[str, Any]:
        n = next(self._ids)
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps({"seq": n, "op": op, **args}) + "\n")
        self.proc.stdin.flush()

        def answered() -> dict[str, Any] | None:
            with self._lock:
                got = self.replies.pop(n, None)
            if got is None and self.proc.poll() is not None:
                raise AssertionError(f"reference endpoint exited; output:\n{self.output}")
            return got

        what = f"reference {self.build} reply to {op}"
        return await wait_for(answered, what=what, timeout=timeout)

    async def start(self, **args: Any) -> str:
        data = await self.call("start", **args)
        self.id = data["id"]
        return self.id

    def copies(self, **match: Any) -> list[dict[str, Any]]:
        """Every `message` event (live, backfill and durable copies alike) whose msg fields equal
        `match` (e.g. channel=…, to=…)."""
        with self._lock:
            events = list(self.events)
        return [
            e
            for e in events
            if e.get("event") == "message" and all(e["msg"].get(k) == v for k, v in match.items())
        ]

    def messages(self, **match: Any) -> list[dict[str, Any]]:
        """What the reference connector surfaces: the first copy of each id (its
        `MeshAgent.ingest` dedupes by id across the live, backfill and durable copies; the bare
        endpoint emits every copy)."""
        seen: set[str] = set()
        out = []
        for e in self.copies(**match):
            if e["msg"]["id"] not in seen:
                seen.add(e["msg"]["id"])
                out.append(e)
        return out

    def texts(self, **match: Any) -> list[str]:
        return [e["msg"]["parts"][0].get("text", "") for e in self.messages(**match)]

    def presence_of(self, ident: str) -> list[dict[str, Any]]:
        with self._lock:
            return [
                e
                for e in self.events
                if e.get("event") == "presence" and e["presence"]["card"]["id"] == ident
            ]

    def errors(self) -> list[str]:
        with self._lock:
            return [e["error"] for e in self.events if e.get("event") == "error"]

    def kill(self) -> None:
        if self.proc.poll() is None and self.proc.stdin is not None:
            try:
                self.proc.stdin.close()  # the driver stops its endpoint and exits
                self.proc.wait(timeout=5)
            except (OSError, subprocess.TimeoutExpired):
                pass
        super().kill()


def run_provision(build: str, step: str, **args: Any) -> dict[str, Any]:
    """One `drivers/provision.mjs` step (blocking; call it via `asyncio.to_thread`)."""
    done = subprocess.run(
        node_cmd("provision.mjs", json.dumps({"step": step, **args})),
        env=ref_env(build),
        capture_output=True,
        text=True,
        timeout=60,
    )
    try:
        out = json.loads(done.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        raise AssertionError(
            f"provision.mjs {step} ({build}) printed no result: {done.stdout}{done.stderr}"
        ) from None
    if not out["ok"]:
        raise AssertionError(f"provision.mjs {step} ({build}) failed: {out['error']}")
    return dict(out["data"])


@dataclass
class Minted:
    id: str
    creds: Path


async def provision(build: str, step: str, **args: Any) -> dict[str, Any]:
    return await asyncio.to_thread(run_provision, build, step, **args)


async def read_kv(
    url: str, creds: Path, ident: str, bucket: str, key: str
) -> dict[str, Any] | None:
    """One KV value through `$JS.API.STREAM.MSG.GET` (the verb the scoped profiles hold), read with
    a plain nats-py client: None when the key is absent or deleted."""
    import base64

    import nats

    async def quiet(exc: Exception) -> None:
        return None

    nc = await nats.connect(
        url,
        user_credentials=str(creds),
        inbox_prefix=f"_INBOX_{ident}",
        error_cb=quiet,
        allow_reconnect=False,
    )
    try:
        body = json.dumps({"last_by_subj": f"$KV.{bucket}.{key}"}).encode()
        msg = await nc.request(f"$JS.API.STREAM.MSG.GET.KV_{bucket}", body, timeout=5)
        reply = json.loads(msg.data)
        if "error" in reply:
            return None
        data = reply["message"].get("data")
        return json.loads(base64.b64decode(data)) if data else None
    finally:
        await nc.close()


async def js_api(
    url: str, creds: Path, ident: str, subject: str, body: dict[str, Any] | None = None
) -> dict[str, Any]:
    """One JetStream API request with a plain nats-py client (inbox prefix of the identity)."""
    import nats

    async def quiet(exc: Exception) -> None:
        return None

    nc = await nats.connect(
        url,
        user_credentials=str(creds),
        inbox_prefix=f"_INBOX_{ident}",
        error_cb=quiet,
        allow_reconnect=False,
    )
    try:
        msg = await nc.request(subject, json.dumps(body or {}).encode(), timeout=5)
        return dict(json.loads(msg.data))
    finally:
        await nc.close()
