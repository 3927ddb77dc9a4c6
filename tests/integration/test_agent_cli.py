"""`cotal-tui agent` as real processes on one auth-mode space with the delivery daemon (a real
`cotal-tui daemon` process): hello, boot self-join, join/leave/send/dm/status replies, the
tombstone of a durable leave, garbage lines, EOF/SIGTERM exits, and the offline backlog."""

from __future__ import annotations

import json

import pytest
from agent_process import AgentProcess
from cli_process import CliProcess
from plane3_support import connect, dlv_messages

from cotal_tui.delivery.members import read_member
from cotal_tui.mesh.kv import KvBucket
from cotal_tui.protocol.names import dlv_durable, dlv_stream, members_bucket
from waiting import wait_for

pytestmark = pytest.mark.timeout(180)


async def _space_with_daemon(auth_space, procs, tmp_path):
    cred = await auth_space.mint("delivery", "delivery")
    daemon = CliProcess(
        [
            "daemon",
            "--server",
            auth_space.url,
            "--space",
            auth_space.space,
            "--creds",
            str(cred.path),
        ],
        cwd=tmp_path,
    )
    procs.append(daemon)
    daemon.wait_line(r"serving space", timeout=30)
    return daemon


def _agent(auth_space, minted, tmp_path, procs, *extra: str) -> AgentProcess:
    agent = AgentProcess(
        [
            "--creds",
            str(minted.path),
            "--server",
            auth_space.url,
            "--space",
            auth_space.space,
            *extra,
        ],
        cwd=tmp_path,
    )
    procs.append(agent)
    return agent


def _hello(agent: AgentProcess) -> dict:
    hello = agent.wait(lambda o: o.get("event") == "hello", what="the hello event")
    assert agent.objects()[0] is hello or agent.objects()[0] == hello, "hello is not first"
    return hello


def _only_json(agent: AgentProcess) -> None:
    raw = [o for o in agent.objects() if "_raw" in o]
    assert not raw, f"stdout carried non-JSON lines: {raw}"


async def test_agent_session_end_to_end(auth_space, procs, tmp_path):
    chans = ["general", "review"]
    alice_c = await auth_space.mint(
        "alice", subscribe=["general"], allow_subscribe=chans, allow_publish=chans
    )
    bob_c = await auth_space.mint(
        "bob", subscribe=["general"], allow_publish=chans, allow_subscribe=chans
    )
    await _space_with_daemon(auth_space, procs, tmp_path)
    admin = await connect(auth_space.url, "manager", str(auth_space.manager_creds))
    members = KvBucket(admin, members_bucket(auth_space.space))
    alice = _agent(auth_space, alice_c, tmp_path, procs)
    bob = _agent(auth_space, bob_c, tmp_path, procs)
    try:
        hello = _hello(alice)
        assert hello["protocol"] == "cotal-tui-agent" and hello["version"] == 1
        assert hello["agent"] == {
            "id": alice_c.public_key,
            "name": "alice",
            "role": None,
            "kind": "agent",
        }
        assert hello["boot"] == ["general"]
        assert hello["acl"] == {"read": chans, "post": chans}
        _hello(bob)

        # boot channel joined durably at start: the event, and the daemon's members record
        alice.wait(
            lambda o: (
                o.get("event") == "joined"
                and o.get("channel") == "general"
                and o.get("durable") is True
            ),
            what="alice's boot join of #general, durable",
        )
        bob.wait(
            lambda o: (
                o.get("event") == "joined"
                and o.get("channel") == "general"
                and o.get("durable") is True
            ),
            what="bob's boot join of #general, durable",
        )
        rec = await read_member(members, "general", alice_c.public_key)
        assert rec is not None and rec.record.leave_cursor is None

        # each command replied to, with its id
        join = alice.call("join", channel="review")
        assert join["ok"] and join["reply"] == "join" and join["durable"] is True, join
        again = alice.call("join", channel="review")
        assert again["ok"] and again["joined"] is False and again["already"] is True
        bob.wait(
            lambda o: o.get("event") == "presence" and o.get("name") == "alice",
            what="bob sees alice on the roster",
        )
        sent = alice.call("send", channel="general", text="hello bob")
        assert sent["ok"] and isinstance(sent["seq"], int) and sent["seq"] > 0, sent
        got = bob.wait(
            lambda o: o.get("event") == "message" and o.get("text") == "hello bob",
            what="bob gets alice's message",
        )
        assert got["from"]["name"] == "alice" and got["channel"] == "general"
        assert got["id"] == sent["msgId"] and got["kind"] == "channel"
        assert got["via"] in ("live", "durable")
        dm = alice.call("dm", to="bob", text="psst")
        assert dm["ok"] and dm["to"] == bob_c.public_key and dm["toName"] == "bob", dm
        got = bob.wait(
            lambda o: o.get("event") == "message" and o.get("kind") == "dm", what="bob gets the DM"
        )
        assert got["text"] == "psst" and got["from"]["id"] == alice_c.public_key
        st = alice.call("status", status="working", activity="reviewing")
        assert st["ok"] and st["status"] == "working", st
        bob.wait(
            lambda o: (
                o.get("event") == "presence"
                and o.get("name") == "alice"
                and o.get("status") == "working"
                and o.get("activity") == "reviewing"
            ),
            what="bob sees alice working",
        )
        roster = alice.call("roster")
        assert {r["name"] for r in roster["roster"]} >= {"alice", "bob"}
        chans_reply = alice.call("channels")
        rows = {r["channel"]: r for r in chans_reply["channels"]}
        assert rows["review"]["joined"] and rows["review"]["durable"], rows
        health = alice.call("health")
        assert health["ok"] and health["lease"]["verdict"] == "serving", health

        # errors in words; the agent keeps running
        alice.send_raw("this is not json")
        alice.send_raw('{"op":"fly","id":"g2"}')
        alice.send_raw('{"op":"send","id":"g3","channel":"general"}')
        alice.send_raw("[1,2]")
        bad = alice.wait(
            lambda o: (
                o.get("reply") is None and o.get("ok") is False and "not JSON" in o.get("error", "")
            ),
            what="the not-JSON error",
        )
        assert bad["id"] is None
        assert "unknown op" in alice.reply("g2")["error"]
        assert '"text" is missing' in alice.reply("g3")["error"]
        alice.wait(
            lambda o: "JSON object" in (o.get("error") or ""), what="the not-an-object error"
        )
        denied = alice.call("send", channel="ops", text="x")
        assert not denied["ok"] and "may not post on #ops" in denied["error"]
        nobody = alice.call("dm", to="carol", text="x")
        assert not nobody["ok"] and 'no peer "carol"' in nobody["error"]
        assert alice.call("roster")["ok"]  # still answering

        # leave of a durable membership tombstones it; no later copy arrives
        left = alice.call("leave", channel="review")
        assert left["ok"] and left["left"] and left["tombstoned"] is True, left
        rec = await read_member(members, "review", alice_c.public_key)
        assert rec is not None and rec.record.leave_cursor is not None, rec
        assert bob.call("send", channel="review", text="after leave")["ok"]
        marker = bob.call("send", channel="general", text="marker")
        alice.wait(
            lambda o: o.get("event") == "message" and o.get("text") == "marker",
            what="alice gets the marker",
        )
        dlv = [
            json.loads(m.data)
            for m in await dlv_messages(admin, auth_space.space, alice_c.public_key)
        ]
        await wait_for(
            lambda: _has_dlv(admin, auth_space.space, alice_c.public_key, marker["msgId"]),
            what="the marker's durable copy in alice's DLV",
            timeout=30,
        )
        dlv = [
            json.loads(m.data)
            for m in await dlv_messages(admin, auth_space.space, alice_c.public_key)
        ]
        texts = [d["parts"][0]["text"] for d in dlv]
        assert "after leave" not in texts, texts
        assert not alice.events("message", text="after leave")

        # "hello bob" reached bob live and through his dlv_ too: written once, the copy acked
        await wait_for(
            lambda: _dlv_settled(admin, auth_space.space, bob_c.public_key, sent["msgId"]),
            what="bob's durable copy of 'hello bob' delivered and acked",
            timeout=30,
        )
        assert len(bob.events("message", id=sent["msgId"])) == 1

        # bob leaves by EOF: exit 0, and alice's roster shows him offline
        bob.close_stdin()
        assert bob.wait_exit() == 0, bob.describe()
        alice.wait(
            lambda o: (
                o.get("event") == "presence"
                and o.get("name") == "bob"
                and o.get("status") == "offline"
            ),
            what="alice sees bob offline",
        )
        row = [r for r in alice.call("roster")["roster"] if r["name"] == "bob"]
        assert row and row[0]["status"] == "offline", row
        _only_json(bob)

        # a message sent while bob is stopped arrives once on restart, as backlog
        away = alice.call("send", channel="general", text="while you were out")
        await wait_for(
            lambda: _has_dlv(admin, auth_space.space, bob_c.public_key, away["msgId"]),
            what="the offline message's durable copy in bob's DLV",
            timeout=30,
        )
        bob2 = _agent(auth_space, bob_c, tmp_path, procs)
        _hello(bob2)
        got = bob2.wait(
            lambda o: o.get("event") == "message" and o.get("id") == away["msgId"],
            what="bob gets the offline message on restart",
        )
        assert got["via"] == "backlog" and got["text"] == "while you were out", got
        after = alice.call("send", channel="general", text="welcome back")
        bob2.wait(
            lambda o: o.get("event") == "message" and o.get("id") == after["msgId"],
            what="bob gets the next message",
        )
        assert len(bob2.events("message", id=away["msgId"])) == 1
        assert len(bob2.events("message", id=after["msgId"])) == 1

        # SIGTERM: the same graceful leave, exit 0
        assert bob2.terminate() == 0, bob2.describe()
        alice.call("quit")
        assert alice.wait_exit() == 0, alice.describe()
        _only_json(alice)
        _only_json(bob2)
    finally:
        await admin.close()


async def _dlv_settled(conn, space, owner, msg_id) -> bool:
    """The copy is in the owner's DLV and its dlv_ consumer has nothing pending or unacked."""
    if not await _has_dlv(conn, space, owner, msg_id):
        return False
    info = await conn.js.consumer_info(dlv_stream(space), dlv_durable(owner))
    return info.num_pending == 0 and info.num_ack_pending == 0


async def _has_dlv(conn, space, owner, msg_id) -> bool:
    return any(json.loads(m.data)["id"] == msg_id for m in await dlv_messages(conn, space, owner))


async def test_agent_refuses_a_cred_it_cannot_use(auth_space, procs, tmp_path):
    observer = await auth_space.mint("watcher", "observer")
    agent = _agent(auth_space, observer, tmp_path, procs)
    assert agent.wait_exit() == 2
    assert any("observer cred" in line for line in agent.err), agent.describe()
    assert agent.objects() == []
    missing = _agent(auth_space, observer, tmp_path, procs)
    missing.proc.kill()
    bad = AgentProcess(["--creds", str(tmp_path / "nope.creds")], cwd=tmp_path)
    procs.append(bad)
    assert bad.wait_exit() == 2
    assert any("nope.creds" in line and "cannot read" in line for line in bad.err), bad.describe()


async def test_agent_boot_join_pending_until_daemon_then_resumed_after_restart(
    auth_space, procs, tmp_path
):
    carol_c = await auth_space.mint(
        "carol", subscribe=["general"], allow_subscribe=["general", "review"]
    )
    admin = await connect(auth_space.url, "manager", str(auth_space.manager_creds))
    members = KvBucket(admin, members_bucket(auth_space.space))
    carol = _agent(auth_space, carol_c, tmp_path, procs)
    try:
        _hello(carol)
        joined = carol.wait(lambda o: o.get("event") == "joined", what="the boot join event")
        assert joined["channel"] == "general" and joined["durable"] is False, joined
        pending = carol.wait(
            lambda o: o.get("event") == "pending" and "nextRetryAt" in o,
            what="a pending boot join with its next try",
        )
        assert pending["channel"] == "general" and pending["operation"] == "durableJoin"
        assert isinstance(pending["nextRetryAt"], int) and pending["attempt"] == 0, pending

        await _space_with_daemon(auth_space, procs, tmp_path)
        settled = carol.wait(
            lambda o: o.get("event") == "joined" and o.get("settled") is True,
            what="the reconcile loop making #general durable",
        )
        assert settled["channel"] == "general" and settled["durable"] is True, settled
        # A health event can catch the lease serving before the join settled (then #general is
        # honestly degraded); once both hold, the channel reads active.
        active = [{"channel": "general", "deliveryHealth": "active", "durableUnclosed": False}]
        carol.wait(
            lambda o: (
                o.get("event") == "health"
                and o["lease"]["verdict"] == "serving"
                and o["channels"] == active
            ),
            what="a health event with the daemon serving and #general active",
        )
        assert carol.call("join", channel="review")["durable"] is True
        assert carol.call("quit")["ok"]
        assert carol.wait_exit() == 0

        # restarted: the runtime-joined durable membership is joined again, shown durable
        carol2 = _agent(auth_space, carol_c, tmp_path, procs)
        _hello(carol2)
        resumed = carol2.wait(
            lambda o: o.get("event") == "joined" and o.get("channel") == "review",
            what="the durable membership of #review resumed",
        )
        assert resumed["durable"] is True and resumed["resumed"] is True, resumed
        left = carol2.call("leave", channel="review")
        assert left["ok"] and left["tombstoned"] is True, left
        rec = await read_member(members, "review", carol_c.public_key)
        assert rec is not None and rec.record.leave_cursor is not None
        carol2.close_stdin()
        assert carol2.wait_exit() == 0
    finally:
        await admin.close()
