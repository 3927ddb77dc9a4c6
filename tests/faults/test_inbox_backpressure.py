"""INBOX backpressure reads the stream's real state (issue 11, cause 1).

A dead daemon leaves its reader's in-flight entries ack-pending in INBOX until their ack_wait
(60 s). A successor that counted only its own writes fanned out on top of them; INBOX keeps
1,000 entries per owner (discard old), so the dead daemon's unread entries were deleted before
their redelivery and those copies were lost without a trace. Here 900 entries for one member
are left ack-pending by a "predecessor" (a raw pull that never acks), then 300 messages are sent
to the member's durable channel: all 1,200 must be stored in the member's DLV (counted as they
are stored: DLV itself keeps only the newest 1,000 per member).
"""

from __future__ import annotations

import pytest
from harness import DlvObserver, full_suite
from plane3_support import (
    chat_message,
    connect,
    request_delivery,
    set_acl,
    set_channel_class,
)

from cotal_tui.delivery.daemon import DeliveryDaemon
from cotal_tui.delivery.daemon_context import entry_payload
from cotal_tui.protocol.names import inbox_stream
from cotal_tui.protocol.subjects import dinbox_subject

pytestmark = [pytest.mark.faults, pytest.mark.faults_full, pytest.mark.timeout(300)]

MEMBER = "UMEMBER" + "M" * 49
SENDER = "USENDER" + "S" * 49
CHANNEL = "pressure"
STUCK = 900
SENT = 300


async def test_successor_never_pushes_its_predecessors_unread_entries_out_of_inbox(
    open_space,
) -> None:
    assert full_suite()
    url, space = open_space.url, open_space.space
    tools = await connect(url, "pressure-tools")
    first_conn = await connect(url, "D-FIRST")
    first = DeliveryDaemon(first_conn, space, "D-FIRST")
    second_conn = await connect(url, "D-SECOND")
    second = DeliveryDaemon(second_conn, space, "D-SECOND")
    try:
        await first.start()
        await set_channel_class(tools, space, CHANNEL, "durable")
        for ident in (MEMBER, SENDER):
            await set_acl(tools, space, ident, [CHANNEL])
        reply = await request_delivery(tools, space, MEMBER, "durableJoin", {"channel": CHANNEL})
        assert reply["ok"] and reply["data"]["durable"], reply
        generation = reply["data"]["generation"]
        await first.stop()

        # the predecessor's in-flight entries: written, pulled by `reader`, never acked
        js = tools.js
        stuck: list[str] = []
        for i in range(STUCK):
            _, raw, mid = chat_message(space, SENDER, CHANNEL, f"stuck {i}")
            await js.publish(
                dinbox_subject(space, MEMBER),
                entry_payload(raw, CHANNEL, 10_000 + i, "durable-channel", generation),
                headers={"Nats-Msg-Id": f"{mid}:{MEMBER}:{generation}"},
            )
            stuck.append(mid)
        dead = await connect(url, "dead-reader")
        sub = await dead.js.pull_subscribe_bind("reader", stream=inbox_stream(space))
        taken = 0
        while taken < STUCK:
            taken += len(await sub.fetch(min(256, STUCK - taken), timeout=10))
        await dead.close()  # gone without acking: redelivered only after ack_wait

        # every copy ever stored (DLV itself keeps only the newest 1,000 per member)
        observer = DlvObserver(tools, space)
        await observer.start()
        await second.start()
        sent: list[str] = []
        for i in range(SENT):
            subject, data, mid = chat_message(space, SENDER, CHANNEL, f"after {i}")
            await js.publish(subject, data, headers={"Nats-Msg-Id": mid})
            sent.append(mid)
        want = set(stuck) | set(sent)

        await observer.settled(len(want), timeout=150)
        got = {mid for (_owner, mid) in observer.copies}
        missing = {"stuck": len(set(stuck) - got), "sent": len(set(sent) - got)}
        assert want <= got, f"copies never stored in DLV: {missing}"
        dups = [k for k, n in observer.copies.items() if n > 1]
        assert not dups, f"{len(dups)} copies stored twice"
        await observer.stop()
    finally:
        await second.stop()
        await first.stop()
        for c in (tools, first_conn, second_conn):
            await c.close()
