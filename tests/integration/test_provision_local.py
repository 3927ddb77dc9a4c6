"""`start_local_space`: what `up` does, in-process, for the demo and tests."""

from __future__ import annotations

from pathlib import Path

import nats
import pytest
from auth_client import connect_as, next_msg
from cli_process import pid_alive
from space_checks import assert_space_streams

from cotal_tui.server.local import start_local_space
from cotal_tui.server.mint import MintError
from waiting import wait_for_sync


async def _quiet(exc: Exception) -> None:
    return None


async def test_auth_local_space_mints_working_identities(tmp_path: Path) -> None:
    space = await start_local_space(
        "demo", state_dir=tmp_path / ".cotal", channels_seed={"channels": {"general": {}}}
    )
    pid = space.server.pid
    try:
        assert space.report.channels_written == ["general"]
        assert space.manager_creds is not None
        nc = await nats.connect(
            space.url, user_credentials=str(space.manager_creds), error_cb=_quiet
        )
        try:
            await assert_space_streams(nc, "demo")
        finally:
            await nc.close()
        alice = await space.mint("alice", "agent", allow_publish=["general"])
        assert alice.provisioned is not None
        agent = await connect_as(space.url, alice.path, alice.public_key)
        try:
            live = await agent.sub_accepted("cotal.demo.chat.*.general")
            await agent.js_publish(f"cotal.demo.chat.{alice.public_key}.general", b"{}")
            assert (await next_msg(live)).data == b"{}"
            await agent.sub_refused("cotal.demo.chat.*.other")
        finally:
            await agent.close()
    finally:
        space.stop()
    assert pid is not None
    wait_for_sync(lambda: not pid_alive(pid), what=f"nats-server pid {pid} to exit")


async def test_open_local_space(tmp_path: Path) -> None:
    space = await start_local_space("o", auth=False, state_dir=tmp_path / ".cotal")
    try:
        assert space.manager_creds is None
        nc = await nats.connect(space.url, error_cb=_quiet)
        try:
            await assert_space_streams(nc, "o")
        finally:
            await nc.close()
        with pytest.raises(MintError, match="open-mode"):
            await space.mint("x", "observer")
    finally:
        space.stop()
