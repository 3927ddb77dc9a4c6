"""The two daemons against the other side's space and against each other.

- Scenario 8: the reference's provisioned `delivery` creds run our daemon on a reference space;
  our minted `delivery` creds run the reference daemon on our space.
- Scenario 3 across: agents of the other implementation get their durable copies through it.
- Scenario 6 (d): lease contention and hand-over between implementations — SIGTERM releases
  `lease.0` at once; after SIGKILL the successor binds only once the bucket TTL (30 s) expired it.
"""

from __future__ import annotations

import signal
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import RefSpace, start_our_daemon, start_our_space, start_ref_daemon, wait_cli_line
from refproc import NodeProcess, read_kv

from waiting import wait_for

OPS = {"channels": {"ops": {"deliveryClass": "durable", "replay": False}}}
REF_AGENT = {"subscribe": ["ops"], "allowPublish": ["ops"]}
SERVING_OURS = r"✓ delivery: serving space"
SERVING_REF = r"✓ delivery daemon up"


async def _lease(url: str, creds: Path, ident: str, space: str) -> dict[str, Any] | None:
    return await read_kv(url, creds, ident, f"cotal_delivery_{space}", "lease.0")


async def test_our_daemon_on_reference_space(
    ref_space: RefSpace,
    nodes: list[NodeProcess],
    clis: list[Any],
    tmp_path: Path,
    ref_agents: Any,
) -> None:
    """Scenario 8: the reference-provisioned delivery cred runs our daemon; reference agents get
    their boot membership and offline copies through it."""
    await ref_space.channels(OPS)
    url, space = ref_space.url, ref_space.space
    ours = await start_our_daemon(clis, tmp_path, url, space, ref_space.delivery.creds)
    await wait_cli_line(ours, SERVING_OURS, timeout=30)
    lease = await _lease(url, ref_space.delivery.creds, ref_space.delivery.id, space)
    assert lease is not None and lease["holder"] == ref_space.delivery.id and lease["ready"]

    bob_c = await ref_space.agent("bob", **REF_AGENT)
    carol_c = await ref_space.agent("carol", **REF_AGENT)
    bob = await ref_agents(ref_space.build, url, space, "bob", creds=bob_c.creds, channels=["ops"])

    async def member() -> Any:
        got = await bob.call("memberships")
        return got and [m for m in got if m["channel"] == "ops" and m["activated"]]

    await wait_for(member, what="the reference agent's ops membership via our daemon", timeout=30)
    await bob.call("stop")
    bob.kill()
    carol = await ref_agents(
        ref_space.build, url, space, "carol", creds=carol_c.creds, channels=["ops"]
    )
    for i in range(3):
        await carol.call("multicast", channel="ops", text=f"m{i}")
    back = await ref_agents(ref_space.build, url, space, "bob", creds=bob_c.creds, channels=["ops"])
    await wait_for(
        lambda: back.texts(channel="ops") == ["m0", "m1", "m2"],
        what="offline copies through our daemon at the reference agent",
        timeout=30,
    )


async def test_reference_daemon_on_our_space(
    ref_build: str,
    tmp_path: Path,
    clis: list[Any],
    nodes: list[NodeProcess],
    our_agents: Any,
) -> None:
    """Scenario 8: our minted delivery cred runs the reference daemon; our agents get their boot
    membership and offline copies through it."""
    ours = await start_our_space(tmp_path, clis, daemon=False, channels=OPS)
    cred = await ours.mint("refdaemon", profile="delivery")
    daemon = await start_ref_daemon(nodes, ref_build, ours.url, ours.space, cred.creds)
    await daemon.wait_line(SERVING_REF, timeout=30)
    alice_c = await ours.mint("alice", "--subscribe", "ops", "--allow-publish", "ops")
    dave_c = await ours.mint("dave", "--subscribe", "ops", "--allow-publish", "ops")

    alice = await our_agents(ours.url, ours.space, "alice", creds=alice_c.creds, channels=["ops"])
    await wait_for(
        lambda: alice.ep.has_durable_membership("ops"),
        what="our boot self-join through the reference daemon",
        timeout=30,
    )
    await alice.ep.stop()
    dave = await our_agents(ours.url, ours.space, "dave", creds=dave_c.creds, channels=["ops"])
    for i in range(3):
        await dave.ep.send("ops", f"m{i}")
    back = await our_agents(ours.url, ours.space, "alice", creds=alice_c.creds, channels=["ops"])
    await wait_for(
        lambda: back.texts(channel="ops") == ["m0", "m1", "m2"],
        what="offline copies through the reference daemon at our agent",
        timeout=30,
    )


async def test_lease_contention_and_sigterm_handover(
    ref_space: RefSpace, nodes: list[NodeProcess], clis: list[Any], tmp_path: Path
) -> None:
    """Scenario 6 (d), SIGTERM: whoever holds lease.0, the other implementation refuses to bind;
    a SIGTERM releases the lease and the other binds at once (well inside the 30 s TTL)."""
    url, space = ref_space.url, ref_space.space
    second = await ref_space.mint("delivery", "delivery2")

    ref = await start_ref_daemon(nodes, ref_space.build, url, space, ref_space.delivery.creds)
    await ref.wait_line(SERVING_REF, timeout=30)
    refused = await start_our_daemon(clis, tmp_path, url, space, second.creds)
    await wait_cli_line(refused, r"live lease already exists", timeout=30)
    assert await _exit_code(refused) == 1
    assert refused.count(ref_space.delivery.id) >= 1, refused.output  # the holder is named

    ref.signal(signal.SIGTERM)
    assert await ref.exited() == 0
    t0 = time.monotonic()
    ours = await start_our_daemon(clis, tmp_path, url, space, second.creds)
    await wait_cli_line(ours, SERVING_OURS, timeout=30)
    assert time.monotonic() - t0 < 25, "bound only after the TTL: the SIGTERM did not release"
    lease = await _lease(url, second.creds, second.id, space)
    assert lease is not None and lease["holder"] == second.id and lease["ready"] is True

    ref2 = await start_ref_daemon(nodes, ref_space.build, url, space, ref_space.delivery.creds)
    await ref2.wait_line(r"a live lease already exists", timeout=30)
    assert await ref2.exited() == 1

    ours.proc.send_signal(signal.SIGTERM)
    assert await _exit_code(ours) == 0
    ref3 = await start_ref_daemon(nodes, ref_space.build, url, space, ref_space.delivery.creds)
    await ref3.wait_line(SERVING_REF, timeout=25)


@pytest.mark.interop_full
async def test_lease_sigkill_handover_waits_for_ttl(
    ref_space: RefSpace, nodes: list[NodeProcess], clis: list[Any], tmp_path: Path
) -> None:
    """Scenario 6 (d), SIGKILL → TTL, both directions: the killed holder's lease.0 stays until the
    bucket max_age (30 s) expires it; only then does the other implementation bind."""
    url, space = ref_space.url, ref_space.space
    second = await ref_space.mint("delivery", "delivery2")

    ours = await start_our_daemon(clis, tmp_path, url, space, second.creds)
    await wait_cli_line(ours, SERVING_OURS, timeout=30)
    ours.proc.kill()
    ours.proc.wait()
    killed_at = time.monotonic()
    early = await start_ref_daemon(nodes, ref_space.build, url, space, ref_space.delivery.creds)
    await early.wait_line(r"a live lease already exists", timeout=30)
    await wait_for(
        lambda: _gone(url, second, space),
        what="the killed holder's lease.0 to expire (bucket TTL)",
        timeout=45,
        interval=0.5,
    )
    expired_after = time.monotonic() - killed_at
    ref = await start_ref_daemon(nodes, ref_space.build, url, space, ref_space.delivery.creds)
    await ref.wait_line(SERVING_REF, timeout=30)
    print(
        f"\n[interop {ref_space.build}] our daemon SIGKILLed: lease.0 expired after "
        f"{expired_after:.1f}s; reference daemon bound after it"
    )
    assert expired_after > 15, "a killed holder's lease must live until the TTL"

    ref.signal(signal.SIGKILL)
    await ref.exited()
    killed_at = time.monotonic()
    early2 = await start_our_daemon(clis, tmp_path, url, space, second.creds)
    await wait_cli_line(early2, r"live lease already exists", timeout=30)
    await wait_for(
        lambda: _gone(url, second, space),
        what="the killed reference holder's lease.0 to expire",
        timeout=45,
        interval=0.5,
    )
    expired_after = time.monotonic() - killed_at
    ours2 = await start_our_daemon(clis, tmp_path, url, space, second.creds)
    await wait_cli_line(ours2, SERVING_OURS, timeout=30)
    print(
        f"[interop {ref_space.build}] reference daemon SIGKILLed: lease.0 expired after "
        f"{expired_after:.1f}s; our daemon bound after it"
    )
    assert expired_after > 15


async def _gone(url: str, cred: Any, space: str) -> bool:
    return await _lease(url, cred.creds, cred.id, space) is None


async def _exit_code(cli: Any) -> int:
    await wait_for(lambda: cli.proc.poll() is not None, what="cotal-tui daemon to exit", timeout=20)
    return int(cli.proc.returncode)


async def test_lease_contention_on_our_space(
    ref_build: str, tmp_path: Path, clis: list[Any], nodes: list[NodeProcess]
) -> None:
    """Scenario 6 (d) on our space (`up --no-daemon`): the same refusals and SIGTERM hand-over,
    with creds from our `mint --profile delivery`."""
    ours_space = await start_our_space(tmp_path, clis, daemon=False)
    url, space = ours_space.url, ours_space.space
    a = await ours_space.mint("d1", profile="delivery")
    b = await ours_space.mint("d2", profile="delivery")

    ours = await start_our_daemon(clis, tmp_path, url, space, a.creds)
    await wait_cli_line(ours, SERVING_OURS, timeout=30)
    ref = await start_ref_daemon(nodes, ref_build, url, space, b.creds)
    await ref.wait_line(r"a live lease already exists", timeout=30)
    assert await ref.exited() == 1
    ours.proc.send_signal(signal.SIGTERM)
    assert await _exit_code(ours) == 0
    ref = await start_ref_daemon(nodes, ref_build, url, space, b.creds)
    await ref.wait_line(SERVING_REF, timeout=25)
    lease = await _lease(url, b.creds, b.id, space)
    assert lease is not None and lease["holder"] == b.id and lease["ready"] is True
    refused = await start_our_daemon(clis, tmp_path, url, space, a.creds)
    await wait_cli_line(refused, r"live lease already exists", timeout=30)
    assert await _exit_code(refused) == 1
