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


# --- provisioned spaces (server/provision.py) ------------------------------------------------

import itertools  # noqa: E402
import os  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from typing import Any  # noqa: E402

_space_ids = itertools.count(1)


def unique_space(prefix: str = "t") -> str:
    """A space name no other test in this run uses (safe on a shared module server)."""
    return f"{prefix}{os.getpid()}_{next(_space_ids)}"


@dataclass
class SpaceHandle:
    """A provisioned space on a running server: `url` to connect to, `space` its name."""

    server: EmbeddedServer
    space: str

    @property
    def url(self) -> str:
        return self.server.url


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

from typing import TYPE_CHECKING  # noqa: E402

if TYPE_CHECKING:  # imported lazily so a broken server module cannot break every test's setup
    from cotal_tui.server.auth import SpaceAuth
    from cotal_tui.server.mint import Minted


@dataclass
class AuthSpace:
    """An auth-mode server with a provisioned space and the trust chain that signs its creds.

    `await mint(name, profile, ...)` writes `<state_dir>/<name>.creds` and returns the
    `cotal_tui.server.mint.Minted` (`.path`, `.public_key` = the identity's id); agents are
    provisioned (durables + ACL row) unless `provision=False`. `manager_creds` is allow-all.
    """

    server: EmbeddedServer
    space: str
    state_dir: Path
    auth: SpaceAuth

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def manager_creds(self) -> Path:
        return self.auth.manager_creds_path()

    async def mint(
        self,
        name: str,
        profile: str = "agent",
        *,
        provision: bool = True,
        **kwargs: Any,
    ) -> Minted:
        from cotal_tui.server.mint import mint

        return await mint(
            name,
            profile=profile,
            space=self.space,
            state_dir=self.state_dir,
            server=self.url if provision else None,
            auth=self.auth,
            **kwargs,
        )


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
