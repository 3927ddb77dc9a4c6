"""Batched publishes, batched acks and direct subscriptions (issue 16) on a real server.

The daemon hands nats-py ready-made ``HPUB``/``PUB`` commands in a few buffers instead of one
``publish()``/``ack()`` call each, and handles PubAcks and pulled messages as they are parsed.
These tests show the server sees the same thing either way: the same headers, payloads and
replies as ``publish(headers=...)`` (JetStream dedups on the header), acks that settle the
consumer, and every message of a direct subscription handled once, in order.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import nats
import pytest
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js.api import AckPolicy, ConsumerConfig, StreamConfig

from cotal_tui.mesh.batch_send import ack_many, hpub_with_msg_id, send_commands
from cotal_tui.mesh.direct_sub import subscribe_direct
from cotal_tui.mesh.fast_parser import FastParser
from cotal_tui.mesh.pull import status_of
from waiting import wait_for

IDS = ["plain:U1:3", "  padded  ", "cr\rlf\nin:it", "ünïcode:x:1"]


@pytest.fixture
async def nc(nats_server) -> AsyncIterator[Client]:
    client = await nats.connect(nats_server.url)
    try:
        yield client
    finally:
        await client.close()


async def test_batched_hpub_is_what_publish_sends(nc: Client) -> None:
    got: list[tuple[str, str, bytes, dict[str, str] | None]] = []

    async def on(msg) -> None:  # noqa: ANN001
        got.append((msg.subject, msg.reply, msg.data, msg.headers))

    await nc.subscribe("bs.>", cb=on)
    for i, mid in enumerate(IDS):
        await nc.publish(
            f"bs.one.{i}", b"payload %d" % i, reply="r.x", headers={"Nats-Msg-Id": mid}
        )
    await send_commands(
        nc,
        [
            hpub_with_msg_id(f"bs.two.{i}", "r.x", mid, b"payload %d" % i)
            for i, mid in enumerate(IDS)
        ],
        messages=len(IDS),
    )
    await wait_for(lambda: len(got) == 2 * len(IDS), what="both sets of messages delivered")
    one = [(s.replace("bs.one.", ""), r, d, h) for s, r, d, h in got if s.startswith("bs.one.")]
    two = [(s.replace("bs.two.", ""), r, d, h) for s, r, d, h in got if s.startswith("bs.two.")]
    assert two == one


async def test_batched_publishes_dedup_and_batched_acks_settle(nc: Client) -> None:
    js = nc.jetstream()
    await js.add_stream(StreamConfig(name="BS", subjects=["bsj.>"]))
    acks: list[dict] = []

    async def on_ack(msg) -> None:  # noqa: ANN001
        acks.append(json.loads(msg.data))

    await nc.subscribe("bsack.*", cb=on_ack)
    for n in range(2):  # the second batch repeats the ids: JetStream drops it by the header
        await send_commands(
            nc,
            [hpub_with_msg_id("bsj.a", f"bsack.{n}", mid, b"x") for mid in IDS],
            messages=len(IDS),
        )
    await wait_for(lambda: len(acks) == 2 * len(IDS), what="a PubAck for every publish")
    assert [a.get("duplicate", False) for a in acks] == [False] * 4 + [True] * 4
    assert (await js.stream_info("BS")).state.messages == len(IDS)

    await js.add_consumer("BS", ConsumerConfig(durable_name="c", ack_policy=AckPolicy.EXPLICIT))
    sub = await js.pull_subscribe_bind("c", stream="BS")
    msgs = await sub.fetch(len(IDS), timeout=5)
    assert len(msgs) == len(IDS)
    await ack_many(nc, msgs)
    assert all(m.is_acked for m in msgs)
    await ack_many(nc, msgs)  # already acked: nothing sent twice, nothing raised

    async def settled() -> bool:
        info = await js.consumer_info("BS", "c")
        return info.num_ack_pending == 0 and info.ack_floor.stream_seq == len(IDS)

    await wait_for(settled, what="the consumer's ack floor at the last message")


async def test_direct_subscription_handles_each_message_once_in_order(nc: Client) -> None:
    seen: list[bytes] = []
    sub = await subscribe_direct(nc, "ds.x", lambda m: seen.append(m.data))
    await send_commands(nc, [b"PUB ds.x  %d\r\n%d\r\n" % (len(str(i)), i) for i in range(500)])
    await wait_for(lambda: len(seen) == 500, what="500 messages handled")
    assert seen == [str(i).encode() for i in range(500)]
    assert sub._pending_size == 0 and sub.pending_msgs == 0
    await sub.unsubscribe()
    await nc.publish("ds.x", b"after")
    await nc.flush()
    assert len(seen) == 500


async def test_direct_subscription_runs_on_the_fast_parser(nc: Client, nats_server) -> None:
    """subscribe_direct puts the client on mesh/fast_parser.py: its messages reach the handler
    as parsed (counted as nats-py counts them), a 503 no-responders status is seen as before,
    and the client's other subscriptions, requests and JetStream calls work as they did."""
    seen: list[tuple[str, bytes, str | None, dict[str, str] | None]] = []

    def on(msg) -> None:  # noqa: ANN001
        seen.append((msg.subject, msg.data, status_of(msg), msg.headers))

    others: list[bytes] = []

    async def other(msg) -> None:  # noqa: ANN001
        others.append(msg.data)

    await nc.subscribe("fp.other", cb=other)
    before = nc.stats["in_msgs"]
    sub = await subscribe_direct(nc, "fp.in.*", on)
    assert isinstance(nc._ps, FastParser) and sub._id in nc._ps.direct
    await send_commands(nc, [b"PUB fp.in.a  %d\r\n%d\r\n" % (len(str(i)), i) for i in range(300)])
    await nc.publish("fp.in.h", b"with headers", headers={"Nats-Msg-Id": "m-1", "X": "y"})
    await nc.publish("fp.nobody", b"", reply="fp.in.reply")  # the server answers 503
    await nc.publish("fp.other", b"o")
    await wait_for(lambda: len(seen) == 302 and others == [b"o"], what="every message handled")
    assert [d for s, d, _, _ in seen[:300]] == [str(i).encode() for i in range(300)]
    assert seen[300] == ("fp.in.h", b"with headers", None, {"Nats-Msg-Id": "m-1", "X": "y"})
    assert seen[301][0] == "fp.in.reply" and seen[301][2] == "503"
    plain_client = await nats.connect(nats_server.url)  # nats-py's own parser, for comparison
    try:
        plain: list[Msg] = []

        async def on_plain(msg: Msg) -> None:
            plain.append(msg)

        await plain_client.subscribe("fp.in.reply", cb=on_plain)
        await plain_client.publish("fp.nobody", b"", reply="fp.in.reply")
        await wait_for(lambda: len(plain) == 1, what="the 503 on a plain nats-py client")
    finally:
        await plain_client.close()
    assert seen[301][3] == plain[0].headers
    assert plain[0].headers and plain[0].headers["Status"] == "503"
    assert sub._received == 302 and sub._pending_size == 0
    assert nc.stats["in_msgs"] - before == 303
    with pytest.raises(nats.errors.NoRespondersError):
        await nc.request("fp.nobody.either", b"", timeout=5)
    js = nc.jetstream()
    await js.add_stream(StreamConfig(name="FP", subjects=["fpj.>"]))
    ack = await js.publish("fpj.a", b"stored")
    assert ack.seq == 1
