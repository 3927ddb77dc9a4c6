"""One hot sender: what CHAT evicts before routing is counted, exactly (issue 11, cause 2).

CHAT keeps 1,000 messages per sender-channel subject. While no daemon routes (a SIGKILLed
daemon's lease waiting out its 30 s, or a broker restart followed by the sender's retry burst),
one sender at 300 msg/s pushes unrouted messages out. Every copy must then be either delivered
or counted in ``evictedBeforeRouting``: copies stored in DLV + counted messages x members =
published messages x members, exactly.
"""

from __future__ import annotations

import asyncio

import pytest
from harness import (
    Daemons,
    DlvObserver,
    Load,
    account_messages,
    logged_evictions,
    setup_members,
    status_evictions,
)
from plane3_support import connect, request_delivery

from waiting import wait_for

# Full fault suite only (`make faults`), never `make test`: each takes 2-3 minutes.
pytestmark = [pytest.mark.faults, pytest.mark.faults_full, pytest.mark.timeout(400)]

MEMBERS = [f"UMEMBER{i:02d}" + "M" * 47 for i in range(10)]
SENDER = "UHOTSENDER" + "S" * 46
CHANNEL = "hot"
RATE = 300.0


async def test_daemon_sigkill_with_one_hot_sender_counts_every_evicted_message(
    open_space, tmp_path
) -> None:
    """The successor has no holder file: it waits out the dead daemon's lease (~30 s) while the
    sender goes on, as the issue measured (40 % of copies lost, nothing said)."""
    url, space = open_space.url, open_space.space
    total = 12_000
    tools = await connect(url, "hot-tools")
    daemons = Daemons(url, space, None, tmp_path)
    observer = DlvObserver(tools, space)
    try:
        first = await daemons.serving_one()
        await setup_members(tools, space, CHANNEL, MEMBERS, [SENDER])
        await observer.start()
        load = Load(tools, space, CHANNEL, [SENDER])
        publishing = asyncio.ensure_future(load.run(total, RATE))
        await wait_for(lambda: len(load.published) >= 2000, what="2,000 sent", timeout=60)
        first.sigkill()
        successor = await daemons.serving_one(timeout=90)
        await publishing
        await _check(url, space, tmp_path, load, observer, [first], successor)
    finally:
        await observer.stop()
        daemons.close()
        await tools.close()


async def test_broker_sigkill_and_restart_with_one_hot_sender_counts_every_evicted_message(
    open_space, tmp_path
) -> None:
    """The broker is SIGKILLed for 3 s; the sender retries what failed (same ids) once it is
    back; the daemon reconnects and goes on. A message the broker acknowledged and then lost
    (unsynced at the SIGKILL: its sequence acknowledged again for another id) is its own named
    category, never folded into the daemon's count."""
    server = open_space.server
    url, space = open_space.url, open_space.space
    total = 6_000
    tools = await connect(url, "hot-tools")
    daemons = Daemons(url, space, tmp_path / "state", tmp_path)
    observer = DlvObserver(tools, space)
    try:
        daemon = await daemons.serving_one()
        await setup_members(tools, space, CHANNEL, MEMBERS, [SENDER])
        await observer.start()
        load = Load(tools, space, CHANNEL, [SENDER])
        publishing = asyncio.ensure_future(load.run_retrying(total, RATE))
        await wait_for(lambda: len(load.published) >= 1500, what="1,500 sent", timeout=60)
        server.kill()
        await asyncio.sleep(3.0)  # the fault: the broker is down for 3 s
        server.start()
        await publishing
        assert not daemon.exited, daemon.proc.output
        await _check(url, space, tmp_path, load, observer, [], daemon)
    finally:
        await observer.stop()
        daemons.close()
        await tools.close()


async def _check(url, space, cwd, load, observer, dead, live) -> None:
    want = len(load.published) * len(MEMBERS)

    def counted() -> int:
        return sum(logged_evictions(d) for d in dead) + sum(
            (status_evictions(url, space, cwd) or {}).values()
        )

    # settle: copies stop arriving once the redeliveries (ack_wait 60 s) are through
    await observer.settled(want, timeout=100, quiet_s=8.0)
    acc = account_messages(load.published, MEMBERS, observer)
    evicted = counted()
    dups = [k for k, n in observer.copies.items() if n > 1]
    assert not dups, f"{len(dups)} copies stored twice"
    info = await observer.conn.js.consumer_info(f"CHAT_{space}", "fanout")
    stats = await request_delivery(observer.conn, space, MEMBERS[0], "deliveryStats", {})
    # DLV stores each copy once (its dedup ids); the stream's sequence counts every copy ever
    # stored, also those DLV's own per-member cap discarded since (the observer can miss those
    # when it lags more than 1,000 behind on a member, so it only names what went missing).
    stored = await observer.stored()
    got = observer.copies
    lost = [
        i for i, (_s, mid) in enumerate(load.published) if not any(got[(m, mid)] for m in MEMBERS)
    ]
    ranges: list[list[int]] = []
    for i in lost:
        if ranges and ranges[-1][1] == i - 1:
            ranges[-1][1] = i
        else:
            ranges.append([i, i])
    lost_by_broker = set(load.lost_by_broker())
    figures = (
        acc.describe(evicted)
        + f"; lost by the broker itself: {len(lost_by_broker)}"
        + f"; DLV stored {stored} copies, the observer saw {observer.seen} (missed "
        f"{observer.missed}); undelivered message indexes: {ranges[:20]}"
        f"; deliveryStats: {stats}; fanout consumer: ack floor {info.ack_floor.stream_seq}, "
        f"delivered {info.delivered.stream_seq}, ack pending {info.num_ack_pending}, pending "
        f"{info.num_pending}; live daemon log:\n"
        + "\n".join(line for line in live.proc.lines if "evicted" in line or "serving" in line)
    )
    print(f"\nFIGURES {figures.splitlines()[0]}")
    # never silent: every message that did not reach every member is counted (or the broker
    # itself is shown to have lost it)
    assert acc.partial + acc.none <= evicted + len(lost_by_broker), figures
    # exact: every copy delivered, or its message counted as evicted before routing
    assert stored + (evicted + len(lost_by_broker)) * len(MEMBERS) == want, figures
