"""Shared fixtures: real nats-server processes on loopback, free ports, temp stores."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import nats
import pytest
from nats.aio.client import Client

from cotal_tui.server.process import EmbeddedServer

VECTORS = Path(__file__).parent / "vectors"


@pytest.fixture
def nats_server(tmp_path: Path) -> Iterator[EmbeddedServer]:
    """A fresh open-mode JetStream server per test, killed by pid in teardown."""
    server = EmbeddedServer(store_dir=str(tmp_path / "store")).start()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture(scope="module")
def module_nats_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedServer]:
    """One open-mode JetStream server shared by a module's tests (use distinct spaces)."""
    server = EmbeddedServer(store_dir=str(tmp_path_factory.mktemp("store"))).start()
    try:
        yield server
    finally:
        server.close()


async def _errors_ignored(exc: Exception) -> None:
    return None


@pytest.fixture
async def nc(nats_server: EmbeddedServer) -> AsyncIterator[Client]:
    """A plain nats-py client on the per-test server."""
    client = await nats.connect(
        nats_server.url, error_cb=_errors_ignored, max_reconnect_attempts=-1
    )
    try:
        yield client
    finally:
        await client.close()
