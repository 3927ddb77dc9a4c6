"""Issue 10, "What was seen": each hostile input against a real server with `cotal-tui daemon`
serving. After the poison, ordinary messages on the same and on another durable channel reach an
offline member within 5 s, the daemon goes back to idle, and the poison sits in the dead-letter
store with its reason — once, not in a loop."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from hostile_support import DaemonProcess, dead_letters, deep_body
from plane3_support import (
    chat_message,
    connect,
    dlv_ids,
    dlv_messages,
    publish_chat,
    request_delivery,
    set_acl,
)

from cotal_tui.commands.status import take_snapshot
from cotal_tui.mesh.connection import Connection
from cotal_tui.protocol.pipeline import CONSUMER_FLOOR, STALL_AFTER_MS
from cotal_tui.protocol.subjects import chat_subject, unicast_subject
from waiting import wait_for

pytestmark = pytest.mark.timeout(180)

BOB = "UBOB" + "B" * 52
ALICE = "UALICE" + "A" * 50
FLOW_S = 5.0  # the bound for ordinary messages after the poison


class World:
    def __init__(self, url: str, space: str, tools: Connection, daemon: DaemonProcess) -> None:
        self.url, self.space, self.tools, self.daemon = url, space, tools, daemon

    async def post(self, channel: str, text: str, sender: str = ALICE) -> str:
        msg_id, _ = await publish_chat(self.tools, self.space, sender, channel, text)
        return msg_id

    async def raw(self, subject: str, body: bytes, *, msg_id: bool = True) -> int:
        headers = {"Nats-Msg-Id": str(uuid.uuid4())} if msg_id else None
        ack = await self.tools.js.publish(subject, body, headers=headers)
        return int(ack.seq)

    async def bob_has(self, *ids: str) -> bool:
        got = set(await dlv_ids(self.tools, self.space, BOB))
        return set(ids) <= got

    async def flows(self, tag: str) -> None:
        """An ordinary post on `dur` and on `dur2` reaches offline bob within FLOW_S."""
        a = await self.post("dur", f"after {tag} (same channel)")
        b = await self.post("dur2", f"after {tag} (other channel)")
        await wait_for(
            lambda: self.bob_has(a, b),
            what=f"bob's DLV holds the ordinary posts after the {tag}",
            timeout=FLOW_S,
        )

    async def dead(self) -> list[dict[str, Any]]:
        return await dead_letters(self.tools.nc, self.space)

    async def idle(self) -> None:
        await wait_for(
            lambda: asyncio.to_thread(self.daemon.idle_over),
            what="the daemon back to idle (< 20% of a core over 2 s)",
            timeout=30,
        )


@pytest.fixture
async def world(open_space, tmp_path: Path):
    space = open_space.space
    tools = await connect(open_space.url, "agent-tools")
    daemon = DaemonProcess(open_space.url, space, tmp_path)
    try:
        await wait_for(daemon.serving, what="the daemon serves", timeout=30)
        await set_acl(tools, space, BOB, ["dur", "dur2", "exec"])
        for ch in ("dur", "dur2", "exec"):
            reply = await request_delivery(tools, space, BOB, "durableJoin", {"channel": ch})
            assert reply["ok"], reply
        yield World(open_space.url, space, tools, daemon)
    finally:
        daemon.kill()
        await tools.close()


# --- case 1: deep nesting ---------------------------------------------------------------------


async def test_deep_chat_message_is_dead_lettered_and_fanout_keeps_flowing(world, tmp_path):
    seq = await world.raw(
        chat_subject(world.space, ALICE, "dur"), deep_body(world.space, ALICE, "dur")
    )
    await world.flows("3,000-deep message")
    dead = await world.dead()
    assert [(d["reason"], d["seq"], d["stream"]) for d in dead] == [
        ("too-deep", seq, f"CHAT_{world.space}")
    ]
    assert dead[0]["subject"] == chat_subject(world.space, ALICE, "dur")
    await world.idle()
    assert world.daemon.error_lines() < 5, world.daemon.text  # no retry loop in the log
    # Across a restart nothing comes back: the poison was acked out once.
    world.daemon.stop()
    world.daemon = DaemonProcess(world.url, world.space, tmp_path, name="daemon2")
    await wait_for(world.daemon.serving, what="the restarted daemon serves", timeout=30)
    await world.flows("restart")
    assert len(await world.dead()) == 1
    await world.idle()


async def test_deep_ctl_delivery_request_gets_an_error_reply_and_service_goes_on(world):
    nc = world.tools.nc
    subject = f"cotal.{world.space}.ctl.delivery.{BOB}"
    reply = f"{subject}.reply.{uuid.uuid4()}"
    sub = await nc.subscribe(reply, max_msgs=1)
    deep = '{"op":"listMemberships","args":{"x":' + "[" * 3000 + "]" * 3000 + '},"from":{"id":"'
    await nc.publish(subject, (deep + BOB + '","name":"b"}}').encode(), reply=reply)
    answer = json.loads((await sub.next_msg(timeout=10)).data)
    assert answer["ok"] is False and "too-deep" in answer["error"]
    listed = await request_delivery(world.tools, world.space, BOB, "listMemberships")
    assert listed["ok"] and len(listed["data"]["memberships"]) == 3
    await world.flows("deep request")


async def test_deep_registry_value_is_read_as_unset_without_a_cpu_loop(world):
    kv = await world.tools.nc.jetstream().key_value(f"cotal_channels_{world.space}")
    await kv.put(
        "dur", ('{"deliveryClass":"durable","x":' + "[" * 3000 + "]" * 3000 + "}").encode()
    )
    # The reference reads an undecodable value as unset (§3.3: default class `durable`).
    await world.flows("deep registry value")
    await world.idle()


async def test_deep_dm_is_terminated_once(open_space):
    from cotal_tui.mesh.endpoint import Endpoint

    space = open_space.space
    bob = Endpoint(open_space.url, space, name="bob")
    await bob.start()
    tools = await connect(open_space.url, "dm-tools")
    try:
        body = deep_body(space, ALICE, "x").replace(
            b'"channel":"x"', b'"to":"' + bob.id.encode() + b'"'
        )
        ack = await tools.js.publish(unicast_subject(space, bob.id, ALICE), body)
        dm = f"dm_{bob.id}"

        async def settled() -> bool:
            info = await tools.js.consumer_info(f"DM_{space}", dm)
            return info.ack_floor.stream_seq >= ack.seq and info.num_ack_pending == 0

        await wait_for(settled, what="the deep DM terminated (acked out of dm_<id>)", timeout=15)
        info = await tools.js.consumer_info(f"DM_{space}", dm)
        assert info.delivered.consumer_seq == 1 and info.num_redelivered == 0
    finally:
        await bob.stop()
        await tools.close()


# --- case 2: a message that fits max_payload whose dinbox entry does not -----------------------


SIZE = 1_048_540  # the message: under the server's 1 MiB max_payload, without headers


async def test_message_whose_entry_exceeds_max_payload_is_dead_lettered_once(world):
    base = chat_message(world.space, ALICE, "dur", "")[1]
    pad = SIZE - len(base)
    body = base.replace(b'"text": ""', b'"text": "' + b"x" * pad + b'"')
    assert len(body) == SIZE
    seq = await world.raw(chat_subject(world.space, ALICE, "dur"), body, msg_id=False)
    await world.flows("1 MB message")
    dead = await world.dead()
    assert [(d["reason"], d["seq"]) for d in dead] == [("entry-oversized", seq)]
    assert dead[0]["size"] == len(body)
    await world.idle()
    assert world.daemon.error_lines() < 5, world.daemon.text


# --- case 4: spoofing -------------------------------------------------------------------------


async def test_body_channel_other_than_the_subject_is_dead_lettered_not_relabelled(world):
    subject, body, msg_id = chat_message(world.space, ALICE, "exec", "pretends to be #exec")
    seq = await world.raw(chat_subject(world.space, ALICE, "dur"), body)  # posted on #dur
    await world.flows("relabelled post")
    assert msg_id not in await dlv_ids(world.tools, world.space, BOB)
    assert [(d["reason"], d["seq"]) for d in await world.dead()] == [("channel-mismatch", seq)]


async def test_spoofed_sender_is_dead_lettered(world):
    _s, body, msg_id = chat_message(world.space, BOB, "dur", "i am bob, honest")
    seq = await world.raw(chat_subject(world.space, ALICE, "dur"), body)
    await world.flows("spoofed sender")
    assert [(d["reason"], d["seq"]) for d in await world.dead()] == [("spoofed-sender", seq)]


MALFORMED: list[tuple[str, bytes]] = [
    (
        "NaN ts",
        b'{"id":"m1","ts":NaN,"space":"S","from":{"id":"A","name":"a"},"channel":"dur","parts":[]}',
    ),
    (
        "ts a string",
        b'{"id":"m2","ts":"1","space":"S","from":{"id":"A","name":"a"},"channel":"dur","parts":[]}',
    ),
    ("no parts", b'{"id":"m3","ts":1,"space":"S","from":{"id":"A","name":"a"},"channel":"dur"}'),
    (
        "parts not a list",
        b'{"id":"m4","ts":1,"space":"S","from":{"id":"A","name":"a"},"channel":"dur","parts":{}}',
    ),
    (
        "id a number",
        b'{"id":5,"ts":1,"space":"S","from":{"id":"A","name":"a"},"channel":"dur","parts":[]}',
    ),
    ("no space", b'{"id":"m6","ts":1,"from":{"id":"A","name":"a"},"channel":"dur","parts":[]}'),
    (
        "from without name",
        b'{"id":"m7","ts":1,"space":"S","from":{"id":"A"},"channel":"dur","parts":[]}',
    ),
    ("not JSON", b'{"id":"m8",'),
    ("array", b"[1,2,3]"),
    (
        "Infinity",
        b'{"id":"m10","ts":Infinity,"space":"S","from":{"id":"A","name":"a"},"channel":"dur","parts":[]}',
    ),
]


async def test_malformed_bodies_are_dead_lettered_never_forwarded(world):
    sent = []
    for _name, raw in MALFORMED:
        body = raw.replace(b'"S"', json.dumps(world.space).encode()).replace(
            b'"A"', json.dumps(ALICE).encode()
        )
        sent.append(await world.raw(chat_subject(world.space, ALICE, "dur"), body))
    await world.flows("malformed bodies")
    msgs = await dlv_messages(world.tools, world.space, BOB)
    assert all(json.loads(m.data)["parts"] for m in msgs)  # only the ordinary posts
    dead = await world.dead()
    assert sorted(d["seq"] for d in dead) == sent
    reasons = {d["reason"] for d in dead}
    assert reasons <= {"invalid-record", "non-finite-number", "not-json", "not-an-object"}
    assert "non-finite-number" in reasons and "invalid-record" in reasons


# --- case 5: an unknown delivery class --------------------------------------------------------


async def test_unknown_delivery_class_reads_as_the_reference_does(world):
    kv = await world.tools.nc.jetstream().key_value(f"cotal_channels_{world.space}")
    await kv.put("dur2", b'{"deliveryClass":5}')
    # The reference: `effectiveDeliveryClass` returns 5, which is not "durable": no copy.
    live = await world.post("dur2", "on a channel whose class is 5")
    marker = await world.post("dur", "marker after it")
    await wait_for(lambda: world.bob_has(marker), what="the marker reached bob", timeout=FLOW_S)
    assert live not in await dlv_ids(world.tools, world.space, BOB)
    # Not silent: the daemon says so once, and status shows the bad value on the channel row.
    await world.post("dur2", "again")
    later = await world.post("dur", "a marker after the second post")  # routed in order
    await wait_for(lambda: world.bob_has(later), what="the second marker", timeout=FLOW_S)
    assert "channel registry #dur2: deliveryClass 5" in world.daemon.text
    assert world.daemon.text.count("channel registry #dur2") == 1
    snap = await take_snapshot(world.url, world.space)
    row = next(c for c in snap["channels"] if c["channel"] == "dur2")
    assert row["deliveryClass"] == "live"
    assert "deliveryClass 5 is neither" in row["deliveryClassProblem"]


# --- health that sees a stall ------------------------------------------------------------------


def _check_cli(url: str, space: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cotal_tui", "check", "--server", url, "--space", space],
        capture_output=True,
        text=True,
        timeout=60,
    )


async def test_check_names_the_dead_letter(world):
    await world.raw(chat_subject(world.space, ALICE, "dur"), deep_body(world.space, ALICE, "dur"))
    await world.flows("deep message")
    result = await asyncio.to_thread(_check_cli, world.url, world.space)
    assert result.returncode == 1, result.stdout + result.stderr
    line = result.stdout.strip()
    assert line.startswith("DEGRADED: ") and "delivery=dead-letters" in line, line
    assert "1 dead-lettered (too-deep 1)" in line and "dead-letters=1" in line, line


async def test_stalled_pipeline_is_never_green(world):
    """The daemon serves and answers, but fan-out cannot write INBOX (deleted behind its back):
    messages stay unrouted past the threshold, and status/check say so."""
    await world.tools.js.delete_stream(f"INBOX_{world.space}")
    await world.post("dur", "unroutable for now")

    async def stalled() -> dict[str, Any] | None:
        snap = await take_snapshot(world.url, world.space)
        oldest = snap["delivery"]["fanoutOldestMs"]
        return snap if oldest is not None and oldest > STALL_AFTER_MS else None

    snap = await wait_for(stalled, what="status to see the unrouted message stall", timeout=60)
    assert snap["lease"]["green"] is False and snap["lease"]["verdict"] == "not-moving", snap
    assert snap["lease"]["consequence"].startswith("serving, but not moving: oldest unrouted")
    assert snap["delivery"]["fanoutPending"] >= 1 and snap["delivery"]["moving"] is False
    result = await asyncio.to_thread(_check_cli, world.url, world.space)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "delivery=not-moving" in result.stdout and "serving, but not moving" in result.stdout
    await world.idle()  # retries back off: no hot loop while stalled


async def test_consumer_flood_on_presence_is_warned(world):
    """Case 6: consumers on the presence stream far beyond what the roster explains."""
    stream = f"KV_cotal_presence_{world.space}"
    for n in range(CONSUMER_FLOOR + 5):
        body = {
            "stream_name": stream,
            "config": {"durable_name": f"flood{n}", "ack_policy": "none"},
        }
        msg = await world.tools.nc.request(
            f"$JS.API.CONSUMER.CREATE.{stream}.flood{n}", json.dumps(body).encode(), timeout=5
        )
        assert b'"error"' not in msg.data, msg.data
    snap = await take_snapshot(world.url, world.space)
    assert snap["delivery"]["consumers"][stream] >= CONSUMER_FLOOR + 5
    assert snap["lease"]["verdict"] == "consumer-excess" and snap["lease"]["green"] is False
    result = await asyncio.to_thread(_check_cli, world.url, world.space)
    assert result.returncode == 1 and "consumer excess" in result.stdout, result.stdout


async def test_status_counts_a_presence_record_under_another_key(world):
    kv = await world.tools.nc.jetstream().key_value(f"cotal_presence_{world.space}")
    forged = {
        "card": {"id": BOB, "name": "vic-IMPOSTOR", "kind": "agent"},
        "status": "offline",
        "ts": int(time.time() * 1000),
    }
    await kv.put("UMALLORY", json.dumps(forged).encode())
    snap = await take_snapshot(world.url, world.space)
    assert snap["roster"]["refused"] == 1
    assert not any(e["name"] == "vic-IMPOSTOR" for e in snap["roster"]["entries"])


async def test_without_a_dead_letter_store_poison_is_still_acked_out(world):
    """A space provisioned before the store existed (or a cred without its grant): the
    record is lost, said once, and nothing else stops."""
    await world.tools.js.delete_stream(f"COTALTUI_DEAD_{world.space}")
    for _ in range(3):
        await world.raw(
            chat_subject(world.space, ALICE, "dur"), deep_body(world.space, ALICE, "dur")
        )
    await world.flows("poison with no dead-letter store")
    assert world.daemon.text.count("could not be recorded") == 1, world.daemon.text
    await world.idle()
