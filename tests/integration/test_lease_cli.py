"""The lease through the `cotal-tui daemon` process: refusal, clean handover, crash + TTL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from plane3_support import connect, request_delivery

from cotal_tui.mesh.kv import KvBucket
from cotal_tui.mesh.lease import read_lease
from cotal_tui.protocol.names import delivery_bucket
from waiting import wait_for

pytestmark = pytest.mark.timeout(150)


class DaemonProc:
    def __init__(self, url: str, space: str, creds: str | None, tmp: Path, name: str, env=None):
        self.log = tmp / f"{name}.log"
        args = [sys.executable, "-m", "cotal_tui", "daemon", "--server", url, "--space", space]
        if creds:
            args += ["--creds", creds]
        self.proc = subprocess.Popen(
            args,
            stdout=subprocess.DEVNULL,
            stderr=self.log.open("w"),
            env={**os.environ, **(env or {})},
        )

    @property
    def text(self) -> str:
        return self.log.read_text()

    def serving(self) -> bool:
        return "✓ delivery: serving" in self.text

    def exited(self) -> int | None:
        return self.proc.poll()

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


async def test_second_daemon_refused_clean_handover_and_crash_ttl(auth_space, tmp_path, procs):
    cred = await auth_space.mint("delivery", "delivery")
    url, space = auth_space.url, auth_space.space

    def spawn(name: str) -> DaemonProc:
        p = DaemonProc(url, space, str(cred.path), tmp_path, name)
        procs.append(p)
        return p

    first = spawn("first")
    await wait_for(first.serving, what="the first daemon serves", timeout=20)

    second = spawn("second")
    await wait_for(lambda: second.exited() is not None, what="the second daemon exits", timeout=20)
    assert second.exited() == 1
    assert "a live lease already exists" in second.text and cred.public_key in second.text
    assert "last written" in second.text and "Not binding" in second.text
    assert first.exited() is None  # the holder is untouched

    first.proc.send_signal(signal.SIGTERM)
    await wait_for(lambda: first.exited() is not None, what="the first daemon stops", timeout=10)
    assert first.exited() == 0
    t0 = time.monotonic()
    successor = spawn("successor")
    await wait_for(successor.serving, what="a successor binds at once after a clean stop")
    assert time.monotonic() - t0 < 10  # no TTL wait

    admin = await connect(url, "manager", str(auth_space.manager_creds))
    try:
        kv = KvBucket(admin, delivery_bucket(space))
        held = await read_lease(kv)
        assert held is not None and held.info.ready
        successor.kill()  # a crash: no release
        crashed_at_write = held.info.since / 1000
        early = spawn("early")
        await wait_for(lambda: early.exited() is not None, what="early successor exits")
        assert early.exited() == 1 and "a live lease already exists" in early.text

        async def gone() -> bool:
            return await read_lease(kv) is None

        await wait_for(gone, what="the crashed lease expires by TTL", timeout=45, interval=0.25)
        # expiry is by the bucket max_age: at least ~30 s after the lease's last write
        assert time.time() - crashed_at_write >= 29
        late = spawn("late")
        await wait_for(late.serving, what="a successor binds once the TTL passed", timeout=20)
    finally:
        await admin.close()


async def test_cli_exits_when_the_broker_is_gone(auth_space, tmp_path, procs):
    cred = await auth_space.mint("delivery", "delivery")
    p = DaemonProc(
        auth_space.url,
        auth_space.space,
        str(cred.path),
        tmp_path,
        "gone",
        env={"COTAL_DELIVERY_BROKER_GONE_MS": "2000"},
    )
    procs.append(p)
    await wait_for(p.serving, what="the daemon serves", timeout=20)
    auth_space.server.stop()
    await wait_for(lambda: p.exited() is not None, what="the daemon exits", timeout=20)
    assert p.exited() == 1 and "unreachable for 2s" in p.text


async def test_cli_reports_unreachable_and_open_mode(tmp_path, open_space, procs):
    bad = DaemonProc("nats://127.0.0.1:9", "x", None, tmp_path, "bad")
    procs.append(bad)
    await wait_for(lambda: bad.exited() is not None, what="unreachable exit", timeout=20)
    assert bad.exited() == 1 and "cannot reach NATS" in bad.text
    assert "SELF-ASSERTED" in bad.text
    ok = DaemonProc(open_space.url, open_space.space, None, tmp_path, "open")
    procs.append(ok)
    await wait_for(ok.serving, what="the open-mode daemon serves", timeout=20)
    assert "OPEN MODE" in ok.text and "self-asserted" in ok.text
    conn = await connect(open_space.url, "probe")
    try:
        listed = await request_delivery(conn, open_space.space, "UX", "listMemberships")
        assert listed == {"ok": True, "data": {"memberships": []}}
    finally:
        await conn.close()
    ok.proc.send_signal(signal.SIGINT)
    await wait_for(lambda: ok.exited() is not None, what="open daemon stops", timeout=10)
    assert ok.exited() == 0


async def test_cli_permission_denied_is_named(auth_space, tmp_path, procs):
    agent = await auth_space.mint("mallory", subscribe=["review"])
    p = DaemonProc(auth_space.url, auth_space.space, str(agent.path), tmp_path, "mallory")
    procs.append(p)
    await wait_for(lambda: p.exited() is not None, what="agent-cred daemon exits", timeout=30)
    assert p.exited() == 1 and "DaemonPermissionDenied" in p.text and "refused" in p.text
    assert "lease already exists" not in p.text


async def test_cli_exits_1_when_the_lease_is_lost(open_space, tmp_path, procs):
    p = DaemonProc(open_space.url, open_space.space, None, tmp_path, "loser")
    procs.append(p)
    await wait_for(p.serving, what="the daemon serves", timeout=20)
    other = await connect(open_space.url, "thief")
    try:
        kv = KvBucket(other, delivery_bucket(open_space.space))
        await kv.put("lease.0", b'{"holder":"THIEF","since":1,"ready":true}')
        # the next renew (every 15 s) fails its CAS: the process stops serving and exits 1
        await wait_for(lambda: p.exited() is not None, what="the daemon exits", timeout=25)
        assert p.exited() == 1 and "lost the lease" in p.text
        assert (await read_lease(kv)).info.holder == "THIEF"  # type: ignore[union-attr]
    finally:
        await other.close()
