"""Connection.close is bounded and cancellation-safe even when nats-py's close cannot finish.

A frozen (SIGSTOPped) broker stops reading: the client's unsent bytes stay in its socket
buffer, so nats-py's close blocks in the socket's flush / ``wait_closed`` for ever. The close
must give up after its timeout, drop the socket, and end ``Closed``; so must a cancelled closer.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
import uuid
from collections.abc import Iterator

import pytest

from cotal_tui.mesh.connection import Closed, Connection
from cotal_tui.server.process import EmbeddedServer
from waiting import wait_for

PAYLOAD = b"x" * (512 * 1024)


@pytest.fixture
def frozen(nats_server: EmbeddedServer) -> Iterator[EmbeddedServer]:
    """The per-test server; tests freeze it with ``os.kill(pid, SIGSTOP)``; thawed here."""
    try:
        yield nats_server
    finally:
        if nats_server.pid is not None:
            os.kill(nats_server.pid, signal.SIGCONT)


def _socket(conn: Connection) -> asyncio.Transport:
    return conn.nc._transport._io_writer.transport  # type: ignore[attr-defined,no-any-return]


async def _stuck_connection(server: EmbeddedServer) -> tuple[Connection, asyncio.Transport]:
    """A connection to a frozen server with megabytes it can no longer send."""
    conn = Connection(server.url, "closer", uuid.uuid4().hex, reconnect_time_wait=0.2)
    await conn.connect()
    sock = _socket(conn)
    assert server.pid is not None
    os.kill(server.pid, signal.SIGSTOP)

    async def filled() -> bool:
        if sock.get_write_buffer_size() > 0:
            return True
        await conn.nc.publish("closer.flood", PAYLOAD)  # the flusher moves it to the socket
        return False

    await wait_for(
        filled, what="unsent bytes queued in the client's socket buffer behind the frozen server"
    )
    return conn, sock


async def test_close_gives_up_on_a_stuck_nats_close_and_drops_the_socket(
    frozen: EmbeddedServer,
) -> None:
    conn, sock = await _stuck_connection(frozen)
    started = time.monotonic()
    async with asyncio.timeout(20):
        await conn.close(timeout=0.5)
    assert time.monotonic() - started < 5, "close outlived its timeout by far"
    assert isinstance(conn.state, Closed)
    await wait_for(sock.is_closing, what="the stuck socket dropped by close")
    assert sock.get_write_buffer_size() == 0, "the socket still holds unsent bytes (not aborted)"


async def test_a_cancelled_closer_ends_at_once_and_drops_the_socket(
    frozen: EmbeddedServer,
) -> None:
    conn, sock = await _stuck_connection(frozen)
    nc = conn.nc
    closer = asyncio.get_running_loop().create_task(conn.close(timeout=30))
    await wait_for(lambda: conn._closing, what="close started")
    # nats-py's close cancels its flusher just before its final, blocking drain: wait for that.
    await wait_for(
        lambda: nc.is_closed and (nc._flusher_task is None or nc._flusher_task.done()),
        what="nats-py's close to pass its flusher and reach the final drain",
    )
    closer.cancel()
    started = time.monotonic()
    done, _ = await asyncio.wait({closer}, timeout=5)
    assert done, "the cancelled close is still running (the cancellation was swallowed)"
    assert time.monotonic() - started < 2
    assert closer.cancelled()
    assert isinstance(conn.state, Closed)
    assert sock.get_write_buffer_size() == 0, "the socket still holds unsent bytes (not aborted)"
