"""Issue 13's interop "done means": our headless agent (`cotal-tui agent`, a real process) and a
reference `CotalEndpoint` (drivers/endpoint.mjs) on one auth space with a delivery daemon.

(a) a reference-provisioned space with the reference daemon: our agent runs on the reference's
    `provisionAgent` cred, which carries no name tags, so it gets `--name`; it joins the durable
    channel itself (the cred names no boot channels).
(b) our space (`cotal-tui up`) with our daemon: our agent on our `mint` cred (boot channel from
    its tags), the reference agent on another of our creds.

Each side sees the other's channel posts and DMs; a message the reference agent sends while our
agent is stopped arrives once on restart with `via: "backlog"`; our agent's leave tombstones its
membership record the way the reference registry expects (`live-confirmed` + `leaveCursor`,
same generation), and the reference agent's post after that leave reaches ours no more.
"""

from __future__ import annotations

from collections.abc import Awaitable
from pathlib import Path
from typing import Any

import pytest
from agent_process import AgentProcess
from conftest import OurSpace, RefSpace, start_our_space, start_ref_daemon
from refproc import NodeProcess, read_kv
from test_acl import Wire

from cotal_tui.mesh.endpoint import creds_identity
from waiting import wait_for

pytestmark = pytest.mark.timeout(240)

OPS = {"channels": {"ops": {"deliveryClass": "durable", "replay": False}}}
REF_AGENT = {"subscribe": ["ops"], "allowPublish": ["ops"]}
OUR_AGENT_ARGS = ("--subscribe", "ops", "--allow-publish", "ops")


def _agent(
    clis: list[Any], cwd: Path, url: str, space: str, creds: Path, *extra: str
) -> AgentProcess:
    proc = AgentProcess(["--creds", str(creds), "--server", url, "--space", space, *extra], cwd=cwd)
    clis.append(proc)
    return proc


def _hello(agent: AgentProcess) -> dict[str, Any]:
    return agent.wait(lambda o: o.get("event") == "hello", what="our agent's hello event")


def _msg(agent: AgentProcess, text: str) -> dict[str, Any]:
    return agent.wait(
        lambda o: o.get("event") == "message" and o.get("text") == text,
        what=f"our agent to get {text!r}",
    )


async def _more(count: Awaitable[int], than: int) -> bool:
    return await count > than


async def _scenario(
    *,
    build: str,
    url: str,
    space: str,
    cwd: Path,
    clis: list[Any],
    ref_agents: Any,
    ours_creds: Path,
    ours_extra: tuple[str, ...],
    bob_creds: Path,
    registry_creds: Path,
    registry_id: str,
    wire_creds: Path,
    boot_join: bool,
) -> None:
    bob = await ref_agents(build, url, space, "bob", creds=bob_creds, channels=["ops"])
    alice = _agent(clis, cwd, url, space, ours_creds, *ours_extra)
    hello = _hello(alice)
    me = hello["agent"]["id"]
    assert hello["agent"]["name"] == "alice", hello

    # durable membership of ops through the space's daemon
    if boot_join:
        assert hello["boot"] == ["ops"], hello
        alice.wait(
            lambda o: (
                o.get("event") == "joined"
                and o.get("channel") == "ops"
                and o.get("durable") is True
            ),
            what="our agent's boot join of ops, durable",
        )
    else:
        assert hello["boot"] == [], hello
        join = alice.call("join", channel="ops")
        assert join["ok"] and join["durable"] is True, join
    record = await read_kv(url, registry_creds, registry_id, f"cotal_members_{space}", f"ops/{me}")
    assert record is not None and record["state"] == "durable-active", record
    generation = record["generation"]

    # presence both ways
    alice.wait(
        lambda o: o.get("event") == "presence" and o.get("name") == "bob",
        what="our agent to see the reference agent's presence",
    )
    await wait_for(
        lambda: bool(bob.presence_of(me)),
        what="the reference agent to see our agent's presence",
        timeout=30,
    )

    # channel posts both ways
    sent = alice.call("send", channel="ops", text="from-ours")
    assert sent["ok"], sent
    await wait_for(
        lambda: "from-ours" in bob.texts(channel="ops"),
        what="the reference agent to get our agent's channel post",
        timeout=30,
    )
    assert bob.messages(channel="ops")[0]["msg"]["id"] == sent["msgId"]
    await bob.call("multicast", channel="ops", text="from-ref")
    got = _msg(alice, "from-ref")
    assert got["kind"] == "channel" and got["channel"] == "ops" and got["from"]["id"] == bob.id
    assert got["via"] in ("live", "durable"), got

    # DMs both ways (ours addresses the reference agent by its roster name)
    dm = alice.call("dm", to="bob", text="dm-from-ours")
    assert dm["ok"] and dm["to"] == bob.id, dm
    await wait_for(
        lambda: "dm-from-ours" in bob.texts(to=bob.id),
        what="the reference agent to get our agent's DM",
        timeout=30,
    )
    await bob.call("unicast", to=me, text="dm-from-ref")
    got = _msg(alice, "dm-from-ref")
    assert got["kind"] == "dm" and got["from"]["id"] == bob.id, got

    # stopped: the reference agent's post arrives once on restart, as backlog
    assert alice.call("quit")["ok"]
    assert alice.wait_exit() == 0, alice.describe()
    wire = Wire(url, space, wire_creds)
    before = await wire.dlv_count(me)
    await bob.call("multicast", channel="ops", text="while-you-were-out")
    # backlog is what waits in dlv_ when the agent binds: let the daemon copy it there first
    await wait_for(
        lambda: _more(wire.dlv_count(me), before),
        what="the daemon to copy the offline post into our agent's DLV",
        timeout=30,
    )
    back = _agent(clis, cwd, url, space, ours_creds, *ours_extra)
    _hello(back)
    got = _msg(back, "while-you-were-out")
    assert got["via"] == "backlog" and got["from"]["id"] == bob.id, got
    await bob.call("multicast", channel="ops", text="welcome-back")
    _msg(back, "welcome-back")
    assert len(back.events("message", text="while-you-were-out")) == 1, back.describe()

    # leave: tombstoned in the members registry as the reference expects; no later copy
    left = back.call("leave", channel="ops")
    assert left["ok"] and left["tombstoned"] is True, left
    record = await read_kv(url, registry_creds, registry_id, f"cotal_members_{space}", f"ops/{me}")
    assert record is not None and record["state"] == "live-confirmed", record
    assert isinstance(record.get("leaveCursor"), int) and record["generation"] == generation
    await bob.call("multicast", channel="ops", text="after-leave")
    await bob.call("unicast", to=me, text="marker")
    _msg(back, "marker")
    assert not back.events("message", text="after-leave"), back.describe()
    back.close_stdin()
    assert back.wait_exit() == 0, back.describe()
    raw = [o for o in back.objects() + alice.objects() if "_raw" in o]
    assert not raw, f"our agent's stdout carried non-JSON lines: {raw}"


async def test_agent_process_with_reference_agent_on_reference_space(
    ref_space: RefSpace,
    nodes: list[NodeProcess],
    clis: list[Any],
    ref_agents: Any,
    tmp_path: Path,
) -> None:
    """(a): reference daemon; our agent on a reference-minted cred (no tags: `--name`)."""
    await ref_space.channels(OPS)
    daemon = await start_ref_daemon(
        nodes, ref_space.build, ref_space.url, ref_space.space, ref_space.delivery.creds
    )
    await daemon.wait_line(r"✓ delivery daemon up", timeout=30)
    alice_c = await ref_space.agent("alice", **REF_AGENT)
    bob_c = await ref_space.agent("bob", **REF_AGENT)
    await _scenario(
        build=ref_space.build,
        url=ref_space.url,
        space=ref_space.space,
        cwd=tmp_path,
        clis=clis,
        ref_agents=ref_agents,
        ours_creds=alice_c.creds,
        ours_extra=("--name", "alice"),
        bob_creds=bob_c.creds,
        registry_creds=ref_space.delivery.creds,
        registry_id=ref_space.delivery.id,
        wire_creds=ref_space.delivery.creds,
        boot_join=False,
    )


async def test_agent_process_with_reference_agent_on_our_space(
    ref_build: str,
    clis: list[Any],
    ref_agents: Any,
    tmp_path: Path,
) -> None:
    """(b): our daemon; our agent on our `mint` cred (boot channel from its tags)."""
    ours: OurSpace = await start_our_space(tmp_path, clis, channels=OPS)
    alice_c = await ours.mint("alice", *OUR_AGENT_ARGS)
    bob_c = await ours.mint("bob", *OUR_AGENT_ARGS)
    await _scenario(
        build=ref_build,
        url=ours.url,
        space=ours.space,
        cwd=tmp_path,
        clis=clis,
        ref_agents=ref_agents,
        ours_creds=alice_c.creds,
        ours_extra=(),
        bob_creds=bob_c.creds,
        registry_creds=ours.manager_creds,
        registry_id=creds_identity(str(ours.manager_creds)),
        wire_creds=ours.delivery_creds,
        boot_join=True,
    )


async def test_console_as_agent_on_a_reference_cred(
    ref_space: RefSpace,
    nodes: list[NodeProcess],
    ref_agents: Any,
    tmp_path: Path,
) -> None:
    """(a), the console as the agent (Pilot): a reference-minted cred names nobody, so `--name`
    names it; the header shows the ACL read from the reference's JWT; the durable join goes
    through the reference daemon; posts and DMs both ways with a reference agent."""
    from tui.tui_helpers import screen_text

    from cotal_tui.console.commands import Dispatcher, Dm, Join, Post
    from cotal_tui.console.model import ConsoleModel
    from cotal_tui.console.session import ConsoleSession, SessionOptions
    from cotal_tui.tui.app import ConsoleApp

    await ref_space.channels(OPS)
    daemon = await start_ref_daemon(
        nodes, ref_space.build, ref_space.url, ref_space.space, ref_space.delivery.creds
    )
    await daemon.wait_line(r"✓ delivery daemon up", timeout=30)
    alice_c = await ref_space.agent("alice", **REF_AGENT)
    bob_c = await ref_space.agent("bob", **REF_AGENT)
    bob = await ref_agents(
        ref_space.build, ref_space.url, ref_space.space, "bob", creds=bob_c.creds, channels=["ops"]
    )

    session = ConsoleSession(
        SessionOptions(
            server=ref_space.url,
            space=ref_space.space,
            creds=str(alice_c.creds),
            name="alice",
            state_dir=str(tmp_path / ".cotal"),
        )
    )
    model = ConsoleModel(session.source)
    dispatcher = Dispatcher(session.source)
    app = ConsoleApp(model, dispatcher, on_start=lambda: session.start(), on_stop=session.stop)
    async with app.run_test(size=(160, 44)) as pilot:
        text = await wait_for(
            lambda: "as alice (agent)" in (t := screen_text(app)) and t,
            what="the console header naming the agent",
            timeout=30,
        )
        assert "as alice (agent) · read #ops · post #ops" in text, text
        await wait_for(
            lambda: any(r.name == "bob" for r in model.tick().roster.rows),
            what="the reference agent on the console's roster",
            timeout=30,
        )
        await wait_for(session._started, what="the console session to finish starting", timeout=30)
        joined = await dispatcher.run(Join("ops"), model.tick())
        assert joined.text == "Joined #ops (durable backstop active).", joined.text
        await wait_for(
            lambda: any(
                c.name == "ops" and c.joined and c.health == "active"
                for c in model.tick().channels.rows
            ),
            what="#ops joined with the reference daemon's backstop active",
            timeout=30,
        )

        await bob.call("multicast", channel="ops", text="hi console")
        entry = await wait_for(
            lambda: next((e for e in model.tick().feed.entries if e.text == "hi console"), None),
            what="the reference agent's post in the console feed",
            timeout=30,
        )
        assert entry.sender_name == "bob" and not entry.backlog
        posted = await dispatcher.run(Post("ops", "hi bob"), model.tick())
        assert posted.ok, posted.text
        await wait_for(
            lambda: "hi bob" in bob.texts(channel="ops"),
            what="the console's post at the reference agent",
            timeout=30,
        )
        dm = await dispatcher.run(Dm("bob", "just you"), model.tick())
        assert dm.ok, dm.text
        await wait_for(
            lambda: "just you" in bob.texts(to=bob.id),
            what="the console's DM at the reference agent",
            timeout=30,
        )
        roster = await bob.call("roster")
        me = [p for p in roster if p["card"]["name"] == "alice"]
        assert me and me[0]["card"]["id"] == alice_c.id and me[0]["card"]["kind"] == "agent", me
        await pilot.press("q")
