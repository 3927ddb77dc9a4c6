"""A delivery cred minted without ``STREAM.MSG.GET`` on CHAT and INBOX (before issue 11 granted
it, or by the reference's tooling): the daemon delivers as ever, says once that it cannot count
what a dead daemon left below the fan-out's floor, and reports that count as unknown — never 0.

Real processes: an auth-mode nats-server, `cotal-tui daemon` on the old cred, agents on their own
creds; the first daemon is SIGKILLed by pid and a successor on the same cred binds.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
from pathlib import Path
from typing import Any

import pytest
from cli_process import pid_alive
from hostile_support import DaemonProcess
from plane3_support import connect, dlv_messages, publish_chat, request_delivery

from cotal_tui.delivery.stages import STAGES_ENV
from cotal_tui.protocol.names import chat_stream, inbox_stream
from cotal_tui.protocol.permissions import Permissions, delivery_permissions
from cotal_tui.server.auth import write_creds
from cotal_tui.server.nats_jwt import Nkey
from waiting import wait_for

pytestmark = pytest.mark.timeout(120)

ONE_LINE = "cannot count"


def mint_old_delivery_cred(auth_space: Any, path: Path) -> tuple[Path, str, list[str]]:
    """The delivery profile as it was minted before issue 11: no single reads of CHAT/INBOX."""
    user = Nkey.create("user")
    perms = delivery_permissions(auth_space.space, user.public)
    missing = [
        f"$JS.API.STREAM.MSG.GET.{chat_stream(auth_space.space)}",
        f"$JS.API.STREAM.MSG.GET.{inbox_stream(auth_space.space)}",
    ]
    assert all(g in perms.pub_allow for g in missing)  # the current profile has them
    old = Permissions(
        pub_allow=tuple(g for g in perms.pub_allow if g not in missing),
        pub_deny=perms.pub_deny,
        sub_allow=perms.sub_allow,
        sub_deny=perms.sub_deny,
    )
    write_creds(path, auth_space.auth.mint_user("delivery", old, user))
    return path, user.public, missing


def below_floor_lines(daemon: DaemonProcess) -> list[str]:
    return [line for line in daemon.text.splitlines() if ONE_LINE in line]


def refused_lines(daemon: DaemonProcess) -> list[str]:
    return [line for line in daemon.text.splitlines() if "refused" in line]


@pytest.mark.parametrize("stages", ["inline", "processes"])
async def test_daemon_on_a_cred_without_msg_get_delivers_and_says_the_count_is_unknown(
    auth_space, tmp_path, procs, stages, monkeypatch
):
    monkeypatch.setenv(STAGES_ENV, stages)
    s = auth_space.space
    cred, daemon_id, missing = mint_old_delivery_cred(auth_space, tmp_path / "old-delivery.creds")
    bob = await auth_space.mint("bob", subscribe=["review"], allow_publish=["review"])
    alice = await auth_space.mint("alice", subscribe=["review"], allow_publish=["review"])
    state = tmp_path / "holder"
    state.mkdir()

    def spawn(name: str) -> DaemonProcess:
        d = DaemonProcess(auth_space.url, s, tmp_path, name, creds=cred, state_dir=state)
        procs.append(d)
        return d

    first = spawn("first")
    admin = await connect(auth_space.url, "manager", str(auth_space.manager_creds))
    bconn = await connect(auth_space.url, bob.public_key, str(bob.path))
    aconn = await connect(auth_space.url, alice.public_key, str(alice.path))
    try:
        await wait_for(first.serving, what=f"the first daemon serves; log:\n{first.text}")
        joined = await request_delivery(
            bconn, s, bob.public_key, "durableJoin", {"channel": "review"}
        )
        assert joined["ok"] is True, joined

        async def delivered(msg_id: str) -> bool:
            got = await dlv_messages(admin, s, bob.public_key)
            return any(m.headers["Nats-Msg-Id"].startswith(f"{msg_id}:") for m in got)

        before, _ = await publish_chat(aconn, s, alice.public_key, "review", "before the crash")
        await wait_for(lambda: delivered(before), what="bob's DLV holds the first message")
        await wait_for(
            lambda: below_floor_lines(first),
            what=f"the daemon says it cannot count below the floor; log:\n{first.text}",
        )
        await _assert_unknown(admin, s, bob.public_key, first, missing)

        # SIGKILL by pid; the successor (same cred, same --state-dir) takes the lease over at once
        pids = first.pids()
        for pid in pids:  # a stage may already be gone: it dies with its parent (PDEATHSIG)
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        first.proc.wait(10)
        await wait_for(
            lambda: not any(pid_alive(p) for p in pids), what=f"every process of {pids} to end"
        )
        during, _ = await publish_chat(aconn, s, alice.public_key, "review", "while none serves")
        successor = spawn("successor")
        await wait_for(successor.serving, what=f"the successor serves; log:\n{successor.text}")
        await wait_for(lambda: delivered(during), what="the message sent while none served")
        after, _ = await publish_chat(aconn, s, alice.public_key, "review", "after the bind")
        await wait_for(lambda: delivered(after), what="bob's DLV holds the message after bind")
        await wait_for(
            lambda: below_floor_lines(successor),
            what=f"the successor says it cannot count; log:\n{successor.text}",
        )
        await _assert_unknown(admin, s, bob.public_key, successor, missing)
        assert successor.proc.poll() is None, successor.text
        if stages == "inline":  # what an operator reads (the same figures either way)
            await _assert_status_says_unknown(auth_space, missing)
    finally:
        for c in (admin, bconn, aconn):
            await c.close()


async def _assert_unknown(
    admin: Any, space: str, asker: str, daemon: DaemonProcess, missing: list[str]
) -> None:
    lines = below_floor_lines(daemon)
    assert len(lines) == 1, daemon.text  # one line, not one per refused read
    assert all(grant in lines[0] for grant in missing), lines[0]
    assert refused_lines(daemon) == [], daemon.text  # no stray "broker refused" per request
    reply = await request_delivery(admin, space, asker, "deliveryStats", {})
    assert reply["ok"] is True, reply
    stats = reply["data"]
    assert stats["belowFloorAtBind"] is None, stats  # never a count of 0
    why = stats["belowFloorAtBindUnknown"]
    assert isinstance(why, str) and all(grant in why for grant in missing), stats


async def _status(auth_space: Any, *extra: str) -> str:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "cotal_tui", "status", "--server", auth_space.url,
        "--space", auth_space.space, "--creds", str(auth_space.manager_creds), *extra,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    out, _ = await asyncio.wait_for(proc.communicate(), 60)
    return out.decode()


async def _assert_status_says_unknown(auth_space: Any, missing: list[str]) -> None:
    snap = json.loads(await _status(auth_space, "--json"))
    d = snap["delivery"]
    assert d["belowFloorAtBind"] is None, d
    assert all(grant in d["belowFloorAtBindUnknown"] for grant in missing), d
    text = await _status(auth_space)
    line = [ln for ln in text.splitlines() if "below the floor at bind" in ln]
    assert len(line) == 1 and ": unknown — this credential lacks" in line[0], text


async def test_daemon_on_the_current_delivery_cred_counts_below_the_floor(
    auth_space, tmp_path, procs
):
    """The control: the profile as minted now may read CHAT and INBOX, so the count is made (no
    gap at a fresh bind: nothing counted, no line) and nothing is said to be unknown."""
    cred = await auth_space.mint("delivery", "delivery")
    daemon = DaemonProcess(auth_space.url, auth_space.space, tmp_path, "daemon", creds=cred.path)
    procs.append(daemon)
    admin = await connect(auth_space.url, "manager", str(auth_space.manager_creds))
    try:
        await wait_for(daemon.serving, what=f"the daemon serves; log:\n{daemon.text}")

        async def counted() -> dict[str, Any] | None:
            reply = await request_delivery(admin, auth_space.space, "x", "deliveryStats", {})
            stats = reply["data"]
            return stats if stats["belowFloorAtBindUnknown"] is None else None

        stats = await wait_for(counted, what="the daemon to finish its count at bind")
        assert stats["belowFloorAtBind"] is None, stats  # a fresh bind: the floor passed nothing
        assert below_floor_lines(daemon) == [] and refused_lines(daemon) == [], daemon.text
    finally:
        await admin.close()
