"""The harness: a server starts, answers, restarts on the same port, and leaves no process."""

from __future__ import annotations

import os

import nats
import pytest

from cotal_tui.server.process import EmbeddedServer, PortInUse, StoreDirNotWritable
from waiting import wait_for, wait_for_sync


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


async def test_server_starts_with_jetstream_and_stops_by_pid(tmp_path):
    server = EmbeddedServer(store_dir=str(tmp_path)).start()
    pid = server.pid
    assert pid is not None
    nc = await nats.connect(server.url)
    info = await nc.jetstream().account_info()
    assert info is not None
    await nc.close()
    server.close()
    await wait_for(lambda: not _alive(pid), what=f"nats-server pid {pid} to be gone")


async def test_restart_keeps_port_and_store(nats_server):
    nc = await nats.connect(nats_server.url)
    js = nc.jetstream()
    await js.add_stream(name="KEEP", subjects=["keep.>"])
    await js.publish("keep.a", b"1")
    await nc.close()
    port = nats_server.port
    nats_server.restart()
    assert nats_server.port == port
    nc = await nats.connect(nats_server.url)
    info = await nc.jetstream().stream_info("KEEP")
    assert info.state.messages == 1
    await nc.close()


def test_port_in_use_is_named(nats_server, tmp_path):
    other = EmbeddedServer(port=nats_server.port, store_dir=str(tmp_path / "other"))
    with pytest.raises(PortInUse, match=str(nats_server.port)):
        other.start()


def test_unwritable_store_is_named(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(StoreDirNotWritable, match="store dir"):
        EmbeddedServer(store_dir=str(blocker / "sub")).start()


def test_server_dies_with_its_parent(tmp_path):
    """A parent killed with SIGKILL leaves no orphaned nats-server behind."""
    import subprocess
    import sys
    import textwrap

    script = textwrap.dedent(
        f"""
        import sys, time
        from cotal_tui.server.process import EmbeddedServer
        s = EmbeddedServer(store_dir={str(tmp_path / "store")!r}).start()
        print(s.pid, flush=True)
        time.sleep(600)
        """
    )
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert parent.stdout is not None
        child = int(parent.stdout.readline())
        assert _alive(child)
        parent.kill()
        parent.wait()
        wait_for_sync(lambda: not _alive(child), what=f"orphaned nats-server {child} to exit")
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()
