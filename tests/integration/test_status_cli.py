"""`cotal-tui status` as a subprocess against a space written by plain nats-py clients using the
reference's record bodies (tests/vectors/records.json)."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time

import nats
from plane3_support import connect
from spaces import VECTORS, SpaceHandle

from cotal_tui.delivery.daemon import DeliveryDaemon
from cotal_tui.mesh.lease import read_lease
from cotal_tui.server.process import free_port


def status(*args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cotal_tui", "status", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


async def populate(url: str, space: str) -> dict[str, object]:
    vectors = json.loads((VECTORS / "records.json").read_text())
    now = int(time.time() * 1000)
    nc = await nats.connect(url)
    js = nc.jetstream()
    try:

        async def put(key: str, body: str, *, subject_of: str) -> None:
            tail = vectors[subject_of]["subject"].split(".", 2)[2]  # after $KV.<bucket>.
            bucket = vectors[subject_of]["subject"].split(".")[1].replace("_main", f"_{space}")
            await js.publish(f"$KV.{bucket}.{tail}", body.encode())

        bob = json.loads(vectors["presence.live.full"]["body"])
        bob["ts"] = now
        await put("bob", json.dumps(bob), subject_of="presence.live.full")
        await put(
            "alice",
            vectors["presence.offline.minimal"]["body"],
            subject_of="presence.offline.minimal",
        )
        for key in ("channels.defaults", "channels.review.seeded", "channels.lounge"):
            await put(key, vectors[key]["body"], subject_of=key)
        lease = json.loads(vectors["lease.ready"]["body"])
        lease["since"] = now
        await put("lease", json.dumps(lease), subject_of="lease.ready")
        for key in (
            "chat.text",
            "chat.mentions",
            "chat.dataPart",
            "chat.beforeJoin",
            "chat.liveMention",
        ):
            v = vectors[key]
            subject = v["subject"].replace("cotal.main.", f"cotal.{space}.")
            await js.publish(subject, v["body"].encode())
    finally:
        await nc.close()
    return {"bob": bob, "lease": lease}


async def test_status_json_reflects_reference_records(open_space: SpaceHandle) -> None:
    written = await populate(open_space.url, open_space.space)
    proc = await asyncio.to_thread(
        status, "--server", open_space.url, "--space", open_space.space, "--json"
    )
    assert proc.returncode == 0, proc.stderr
    snap = json.loads(proc.stdout)
    assert snap["schema"] == "cotal-tui/status/1"
    assert snap["space"] == open_space.space and snap["server"] == open_space.url
    assert snap["connection"]["state"] == "connected" and snap["connection"]["mode"] == "open"
    assert snap["roster"]["view"] == "current"
    entries = {e["name"]: e for e in snap["roster"]["entries"]}
    assert set(entries) == {"alice", "bob"}  # the status tool registers no presence
    bob = entries["bob"]
    assert bob["status"] == "working" and bob["activity"] == "reviewing PR #42"
    assert bob["role"] == "reviewer" and bob["kind"] == "agent"
    assert bob["id"] == written["bob"]["card"]["id"] and bob["ts"] == written["bob"]["ts"]
    assert 0 <= bob["ageMs"] < 30_000
    assert entries["alice"]["status"] == "offline" and entries["alice"]["role"] == "planner"
    channels = {c["channel"]: c for c in snap["channels"]}
    assert set(channels) == {"general", "review", "lounge"}
    assert channels["review"]["messages"] == 3 and channels["general"]["messages"] == 1
    assert channels["review"]["deliveryClass"] == "durable" and channels["review"]["replay"]
    assert channels["review"]["description"] == "Code review requests"
    assert channels["lounge"]["deliveryClass"] == "live" and channels["lounge"]["messages"] == 1
    assert channels["general"]["deliveryClass"] == "durable"  # from =defaults
    assert all(not c["joined"] and c["deliveryHealth"] is None for c in channels.values())
    lease = snap["lease"]
    assert lease["holder"] == written["lease"]["holder"] and lease["ready"] is True
    assert lease["since"] == written["lease"]["since"] and lease["revision"] > 0
    # a fresh ready lease that nobody serves: the probe gets 503, never a false green
    assert lease["verdict"] == "no-responder" and lease["green"] is False
    assert "no responder" in lease["responder"] and lease["responderMs"] is None
    assert "fail" in lease["consequence"]
    assert snap["pendingBootJoins"] == [] and snap["pendingLeaves"] == []

    text = await asyncio.to_thread(status, "--server", open_space.url, "--space", open_space.space)
    assert text.returncode == 0, text.stderr
    assert "roster: current" in text.stdout and "bob (reviewer) — reviewing PR #42" in text.stdout
    assert "#review — Code review requests (durable, replay on, 3 retained)" in text.stdout


async def test_status_unreachable_exits_nonzero_with_one_line() -> None:
    url = f"nats://127.0.0.1:{free_port()}"
    proc = await asyncio.to_thread(status, "--server", url, "--space", "x", "--timeout", "1.5")
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "cannot reach NATS" in lines[0] and url in lines[0]
    assert proc.stdout == ""


async def test_status_missing_space_says_so(open_space: SpaceHandle) -> None:
    proc = await asyncio.to_thread(
        status, "--server", open_space.url, "--space", "nosuchspace", "--timeout", "2"
    )
    assert proc.returncode == 1
    assert "not found" in proc.stderr and "nosuchspace" in proc.stderr


async def test_status_lease_verdict_serving_then_no_lease(open_space: SpaceHandle) -> None:
    args = ("--server", open_space.url, "--space", open_space.space, "--json")
    conn = await connect(open_space.url, "DSTATUS")
    daemon = DeliveryDaemon(conn, open_space.space, "DSTATUS")
    await daemon.start()
    try:
        proc = await asyncio.to_thread(status, *args)
        assert proc.returncode == 0, proc.stderr
        lease = json.loads(proc.stdout)["lease"]
        assert lease["holder"] == "DSTATUS" and lease["ready"] is True
        assert lease["verdict"] == "serving" and lease["green"] is True
        assert lease["responder"] == "answered" and lease["responderMs"] >= 0
        assert "serving" in lease["consequence"]
        text = await asyncio.to_thread(status, *args[:-1])
        assert "delivery: serving — a delivery daemon is serving" in text.stdout
    finally:
        await daemon.stop()
    try:
        assert await read_lease(daemon.ctx.lease) is None  # released on the clean stop
    finally:
        await conn.close()
    proc = await asyncio.to_thread(status, *args)
    assert proc.returncode == 0, proc.stderr
    snap = json.loads(proc.stdout)
    lease = snap["lease"]
    assert snap["leaseRead"] == {"known": True, "error": None}
    assert lease["verdict"] == "no-lease" and lease["green"] is False
    assert lease["holder"] is None and lease["revision"] is None and lease["ageMs"] is None
    assert "no delivery daemon" in lease["consequence"]
