"""Shared fixtures: real nats-server processes on loopback, free ports, temp stores."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import nats
import pytest
from nats.aio.client import Client
from spaces import AuthSpace, SpaceHandle, unique_space

from cotal_tui.server.process import EmbeddedServer


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


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--slow", action="store_true", help="also run tests marked slow (or select them: -m slow)"
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked slow run only with --slow, COTAL_SLOW=1, or a -m expression naming slow."""
    import os

    if config.getoption("--slow") or os.environ.get("COTAL_SLOW") == "1":
        return
    if "slow" in (config.getoption("markexpr") or ""):
        return
    skip = pytest.mark.skip(reason="slow: run with --slow, COTAL_SLOW=1 or -m slow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


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


# --- provisioned spaces (server/provision.py) ------------------------------------------------


@pytest.fixture
async def open_space(nats_server: EmbeddedServer) -> AsyncIterator[SpaceHandle]:
    """An open-mode server (`nats_server`) with a freshly provisioned, uniquely named space."""
    from cotal_tui.server.provision import provision_space

    space = unique_space()
    client = await nats.connect(nats_server.url, error_cb=_errors_ignored)
    try:
        await provision_space(client, space)
    finally:
        await client.close()
    yield SpaceHandle(server=nats_server, space=space)


# --- auth-mode spaces (server/auth.py, server/mint.py) ---------------------------------------


@pytest.fixture
async def auth_space(tmp_path: Path) -> AsyncIterator[AuthSpace]:
    """A fresh auth-mode server (operator/account/SYS trust chain, MEMORY resolver) with a
    provisioned, uniquely named space; killed by pid in teardown."""
    from cotal_tui.server.auth import ensure_space_auth
    from cotal_tui.server.process import free_port
    from cotal_tui.server.provision import provision_space

    space = unique_space("a")
    state_dir = tmp_path / "state"
    auth = ensure_space_auth(state_dir, space)
    port = free_port()
    store = tmp_path / "store"
    config = auth.render_server_config("127.0.0.1", port, store)
    server = EmbeddedServer(port=port, store_dir=str(store), config_file=str(config)).start()
    try:
        client = await nats.connect(
            server.url, user_credentials=str(auth.manager_creds_path()), error_cb=_errors_ignored
        )
        try:
            await provision_space(client, space)
        finally:
            await client.close()
        yield AuthSpace(server=server, space=space, state_dir=state_dir, auth=auth)
    finally:
        server.close()


@pytest.fixture
def procs() -> Iterator[list[Any]]:
    """Subprocess wrappers a test started (anything with ``kill()``), killed in teardown."""
    started: list[Any] = []
    try:
        yield started
    finally:
        for proc in started:
            proc.kill()
