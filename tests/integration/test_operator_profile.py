"""The project's own `operator` profile against a real nats-server (issue 12 item 5).

What the console's identity needs and nothing more: an agent on every channel plus read-only
monitoring of the delivery pipeline. Every grant has a positive control on the same connection
and every refusal is paired with one, so no test passes because the cred can do nothing.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from auth_client import Identity, connect_as, next_msg
from plane3_support import connect, request_delivery
from spaces import AuthSpace

from cotal_tui.agent.identity import load_cred_card
from cotal_tui.delivery.daemon import DeliveryDaemon
from cotal_tui.protocol.consumers import bucket_specs, stream_specs
from cotal_tui.protocol.names import lease_key

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
async def serving(auth_space: AuthSpace) -> AsyncIterator[dict[str, Any]]:
    """A delivery daemon serving on its own cred, an operator, an agent bob (the other)."""
    delivery = await auth_space.mint("delivery", "delivery")
    dconn = await connect(auth_space.url, delivery.public_key, str(delivery.path))
    daemon = DeliveryDaemon(dconn, auth_space.space, delivery.public_key)
    await daemon.start()
    op_minted = await auth_space.mint("ops", "operator")
    bob_minted = await auth_space.mint("bob", subscribe=["general"], allow_publish=["general"])
    op = await connect_as(auth_space.url, op_minted.path, op_minted.public_key)
    bob = await connect_as(auth_space.url, bob_minted.path, bob_minted.public_key)
    opconn = await connect(auth_space.url, op_minted.public_key, str(op_minted.path))
    try:
        yield {"op": op, "bob": bob, "opconn": opconn, "minted": op_minted}
    finally:
        for ident in (op, bob):
            await ident.close()
        await opconn.close()
        await daemon.stop()
        await dconn.close()


async def test_operator_is_a_participant_on_every_channel(
    auth_space: AuthSpace, serving: dict[str, Any]
) -> None:
    s = auth_space.space
    op: Identity = serving["op"]
    bob: Identity = serving["bob"]
    card = load_cred_card(str(serving["minted"].path), s)
    assert card.profile == "operator" and card.is_agent and card.name == "ops"
    # Reads and posts every channel, deep ones too, as itself only.
    tap = await op.sub_accepted(f"cotal.{s}.chat.*.>")
    assert await bob.js_publish(f"cotal.{s}.chat.{bob.id}.general", b"hi") >= 1
    assert (await next_msg(tap)).data == b"hi"
    assert await op.js_publish(f"cotal.{s}.chat.{op.id}.any.deep.channel") >= 1
    await op.js_publish_denied(f"cotal.{s}.chat.{bob.id}.general")  # spoofed sender
    # Its own presence key, its own DM and DLV durables (provisioned like an agent's).
    assert await op.js_publish(f"$KV.cotal_presence_{s}.{op.id}") >= 1
    await op.js_publish_denied(f"$KV.cotal_presence_{s}.{bob.id}")
    await op.request(f"$JS.API.CONSUMER.INFO.DM_{s}.dm_{op.id}")
    await op.request(f"$JS.API.CONSUMER.INFO.DLV_{s}.dlv_{op.id}")
    assert await op.js_publish(f"cotal.{s}.inst.{bob.id}.{op.id}") >= 1
    await op.js_publish_denied(f"cotal.{s}.inst.{op.id}.{bob.id}")


async def test_operator_reads_the_lease_probes_the_daemon_and_reads_the_pipeline(
    auth_space: AuthSpace, serving: dict[str, Any]
) -> None:
    s = auth_space.space
    op: Identity = serving["op"]
    bob: Identity = serving["bob"]
    # The lease, read-only.
    await op.request(f"$JS.API.STREAM.INFO.KV_cotal_delivery_{s}")
    lease = await op.request(
        f"$JS.API.STREAM.MSG.GET.KV_cotal_delivery_{s}",
        {"last_by_subj": f"$KV.cotal_delivery_{s}.{lease_key(0)}"},
    )
    assert lease["message"]["subject"].endswith(lease_key(0))
    await op.js_publish_denied(f"$KV.cotal_delivery_{s}.{lease_key(0)}")
    # The ctl.delivery probe is answered by the serving daemon.
    answer = await request_delivery(serving["opconn"], s, serving["minted"].public_key,
                                    "listMemberships", {})  # fmt: skip
    assert answer["ok"] is True, answer
    # STREAM.INFO of every stream and bucket of the space.
    names = [spec.name for spec in stream_specs(s)]
    names += [spec.stream_spec().name for spec in bucket_specs(s)]
    for name in names:
        info = await op.request(f"$JS.API.STREAM.INFO.{name}")
        assert info["config"]["name"] == name
    # CONSUMER.INFO of the daemon's two durables; never their messages.
    for stream, durable in ((f"CHAT_{s}", "fanout"), (f"INBOX_{s}", "reader")):
        info = await op.request(f"$JS.API.CONSUMER.INFO.{stream}.{durable}")
        assert info["name"] == durable
        await op.request_denied(
            f"$JS.API.CONSUMER.MSG.NEXT.{stream}.{durable}", {"batch": 1, "no_wait": True}
        )
        await op.request_denied(f"$JS.API.CONSUMER.DELETE.{stream}.{durable}")
    # The 0.9.0 broker feed bucket: read-only (absent on our space: answered, not refused).
    feed = f"KV_cotal_membership_{s}"
    for verb, body in (("STREAM.INFO", b""), ("STREAM.MSG.GET", b'{"seq": 1}')):
        answer = await op.nc.request(f"$JS.API.{verb}.{feed}", body, timeout=2)
        assert b"stream not found" in answer.data, answer.data
    await op.js_publish_denied(f"$KV.cotal_membership_{s}.general")
    # The dead-letter store (the project's own), read-only.
    dead = f"COTALTUI_DEAD_{s}"
    assert (await op.request(f"$JS.API.STREAM.INFO.{dead}"))["config"]["name"] == dead
    gone = await op.nc.request(f"$JS.API.STREAM.MSG.GET.{dead}", b'{"seq": 1}', timeout=2)
    assert b"no message found" in gone.data, gone.data  # answered (empty store), not refused
    await op.js_publish_denied(f"cotaltui.{s}.dead.delivery-failed")
    # The oldest unrouted post's time: STREAM.MSG.GET on CHAT (channel posts only).
    seq = await bob.js_publish(f"cotal.{s}.chat.{bob.id}.general", b'{"x":1}')
    got = await op.request(f"$JS.API.STREAM.MSG.GET.CHAT_{s}", {"seq": seq})
    assert got["message"]["seq"] == seq


async def test_operator_never_reads_another_agents_messages(
    auth_space: AuthSpace, serving: dict[str, Any]
) -> None:
    s = auth_space.space
    op: Identity = serving["op"]
    bob: Identity = serving["bob"]
    await op.request(f"$JS.API.CONSUMER.INFO.DM_{s}.dm_{op.id}")  # positive control
    for stream, durable in ((f"DM_{s}", f"dm_{bob.id}"), (f"DLV_{s}", f"dlv_{bob.id}")):
        await op.request_denied(f"$JS.API.CONSUMER.INFO.{stream}.{durable}")
        await op.request_denied(
            f"$JS.API.CONSUMER.MSG.NEXT.{stream}.{durable}", {"batch": 1, "expires": 100_000_000}
        )
    # No message read on the streams that carry direct messages (STREAM.INFO only).
    for stream in (f"DM_{s}", f"DLV_{s}", f"INBOX_{s}", f"TASK_{s}"):
        await op.request(f"$JS.API.STREAM.INFO.{stream}")
        await op.request_denied(f"$JS.API.STREAM.MSG.GET.{stream}", {"seq": 1})
        await op.request_denied(f"$JS.API.DIRECT.GET.{stream}", {"seq": 1})
    # Nor the members and ACL rows.
    for bucket in (f"cotal_members_{s}", f"cotal_acl_{s}"):
        await op.request_denied(
            f"$JS.API.STREAM.MSG.GET.KV_{bucket}", {"last_by_subj": f"$KV.{bucket}.{bob.id}"}
        )
        await op.js_publish_denied(f"$KV.{bucket}.{op.id}")
    # No native subscription on DMs, dinbox, DLV or the whole space.
    await op.sub_accepted(f"cotal.{s}.chat.*.general")
    for subject in (f"cotal.{s}.inst.>", f"cotal.{s}.dinbox.>", f"cotal.{s}.dlv.>",
                    f"cotal.{s}.>", ">"):  # fmt: skip
        await op.sub_refused(subject)


async def test_operator_creates_no_consumer_on_others_streams_and_publishes_no_wildcard(
    auth_space: AuthSpace, serving: dict[str, Any]
) -> None:
    s = auth_space.space
    op: Identity = serving["op"]
    # Positive control: its own history consumer on CHAT.
    hist, filt = f"chathist_{op.id}", f"cotal.{s}.chat.*.>"
    body = {
        "stream_name": f"CHAT_{s}",
        "config": {"name": hist, "filter_subject": filt, "ack_policy": "none", "mem_storage": True},
    }
    await op.request(f"$JS.API.CONSUMER.CREATE.CHAT_{s}.{hist}.{filt}", body)
    await op.request(f"$JS.API.CONSUMER.DELETE.CHAT_{s}.{hist}")
    # No other consumer on CHAT (not a bare one, not under another name).
    await op.request_denied(f"$JS.API.CONSUMER.CREATE.CHAT_{s}", body)
    await op.request_denied(f"$JS.API.CONSUMER.CREATE.CHAT_{s}.mine.{filt}", body)
    await op.request_denied(f"$JS.API.CONSUMER.DURABLE.CREATE.CHAT_{s}.mine", body)
    for stream, filt in (
        (f"DM_{s}", f"cotal.{s}.inst.*.*"),
        (f"TASK_{s}", f"cotal.{s}.svc.*.*"),
        (f"DLV_{s}", f"cotal.{s}.dlv.*"),
        (f"INBOX_{s}", f"cotal.{s}.dinbox.*"),
    ):
        req = {"stream_name": stream, "config": {"durable_name": "mine", "filter_subject": filt}}
        await op.request_denied(f"$JS.API.CONSUMER.CREATE.{stream}", req)
        await op.request_denied(f"$JS.API.CONSUMER.CREATE.{stream}.mine.{filt}", req)
        await op.request_denied(f"$JS.API.CONSUMER.DURABLE.CREATE.{stream}.mine", req)
    # Not allow-all: no publish outside its grants, no stream administration.
    for subject in (
        "anything",
        f"cotal.{s}.dinbox.{op.id}",
        f"cotal.{s}.dlv.{op.id}",
        f"cotal.{s}.ctl.delivery.someone",
        f"cotal.{s}.ctl.manager.{op.id}",
    ):
        await op.js_publish_denied(subject)
    await op.request_denied(f"$JS.API.STREAM.PURGE.CHAT_{s}")
    await op.request_denied(f"$JS.API.STREAM.DELETE.CHAT_{s}")
    await op.request_denied(f"$JS.API.STREAM.CREATE.X_{s}", {"name": f"X_{s}"})
    await op.request_denied("$JS.API.STREAM.LIST")
