"""Interop fixtures: reference processes (Node drivers) and our side (CLI processes and
`cotal_tui.mesh.endpoint.Endpoint`) on real nats-servers, parametrized over both reference builds.

Where `../shared/reference/<build>` (or `node`) is missing the tests skip with a reason naming
the folder; with `CI=true` they fail instead, so CI can never go green without running them.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from cli_process import CliProcess
from refproc import BUILDS, REFERENCE, Minted, NodeProcess, RefEndpoint, node_binary, provision
from spaces import unique_space

from cotal_tui.mesh.endpoint import Endpoint
from cotal_tui.mesh.events import MessageReceived
from cotal_tui.server.process import EmbeddedServer, free_port
from waiting import wait_for


def _missing(build: str) -> str | None:
    folder = REFERENCE / build
    if not (folder / "packages" / "core" / "dist" / "index.js").is_file():
        return f"reference build not found: {folder} (expected ../shared/reference/{build})"
    if node_binary() is None:
        return "node (Node.js 20) is not on PATH; the reference drivers need it"
    return None


@pytest.fixture(params=BUILDS, ids=[b.removeprefix("cotal-") for b in BUILDS])
def ref_build(request: pytest.FixtureRequest) -> str:
    build = str(request.param)
    reason = _missing(build)
    if reason:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{reason} — CI=true: the interop suite must run, not skip")
        pytest.skip(reason)
    return build


# --- processes ------------------------------------------------------------------------------


@pytest.fixture
def nodes() -> Iterator[list[NodeProcess]]:
    """Every reference driver process a test started; killed by pid in teardown."""
    started: list[NodeProcess] = []
    try:
        yield started
    finally:
        for proc in reversed(started):
            proc.kill()


@pytest.fixture
def clis() -> Iterator[list[CliProcess]]:
    """Every `cotal-tui` process a test started; SIGTERMed (then killed) in teardown."""
    started: list[CliProcess] = []
    try:
        yield started
    finally:
        for proc in reversed(started):
            try:
                proc.terminate(timeout=10)
            except Exception:  # noqa: BLE001 - kill below
                pass
            proc.kill()


async def wait_cli_line(cli: CliProcess, pattern: str, timeout: float = 30.0) -> re.Match[str]:
    rx = re.compile(pattern)

    def seen() -> re.Match[str] | None:
        for line in list(cli.lines):
            if m := rx.search(line):
                return m
        if cli.proc.poll() is not None:
            raise AssertionError(
                f"cotal-tui {' '.join(cli.args)} exited {cli.proc.returncode}; "
                f"output:\n{cli.output}"
            )
        return None

    return await wait_for(seen, what=f"cotal-tui line /{pattern}/", timeout=timeout)


# --- the reference-provisioned space (pairing a) --------------------------------------------


@dataclass
class RefSpace:
    """A space provisioned the reference way: createSpaceAuth + serverConfig + setupSpaceStreams
    on a nats-server, plus the privileged (0.6.0 `manager` / 0.9.0 `provisioner`) and `delivery`
    creds the reference minted."""

    build: str
    dir: Path
    server: EmbeddedServer
    space: str
    privileged: Minted
    delivery: Minted
    account: str
    feed_root: Path | None = None
    """0.9.0: a folder whose `.cotal/` holds the membership feed's creds; a reference daemon
    started there (`start_ref_daemon(cwd=…)`) also runs the feed."""

    @property
    def url(self) -> str:
        return self.server.url

    async def agent(self, name: str, **opts: Any) -> Minted:
        """`provisionAgent` (DM/DLV/TASK durables + ACL row) and its agent creds."""
        data = await provision(
            self.build, "agent", dir=str(self.dir), server=self.url, name=name, **opts
        )
        return Minted(data["id"], Path(data["creds"]))

    async def channels(self, file: dict[str, Any]) -> None:
        """`seedChannelRegistry` with the privileged cred: `{defaults?, channels?}`."""
        await provision(self.build, "channels", dir=str(self.dir), server=self.url, file=file)

    async def commit_acl(self, owner: str, allow_subscribe: list[str]) -> None:
        """`commitAcl` through the privileged endpoint (the reader's authorization row)."""
        await provision(
            self.build,
            "acl",
            dir=str(self.dir),
            server=self.url,
            owner=owner,
            allowSubscribe=allow_subscribe,
        )

    async def mint(self, profile: str, name: str) -> Minted:
        data = await provision(self.build, "mint", dir=str(self.dir), profile=profile, name=name)
        return Minted(data["id"], Path(data["creds"]))


@pytest.fixture
async def ref_space(ref_build: str, tmp_path: Path) -> AsyncIterator[RefSpace]:
    space = unique_space("r")
    folder = tmp_path / "refauth"
    port = free_port()
    store = tmp_path / "refstore"
    init = await provision(
        ref_build, "init", dir=str(folder), space=space, port=port, storeDir=str(store)
    )
    server = EmbeddedServer(port=port, store_dir=str(store), config_file=init["config"]).start()
    try:
        await provision(ref_build, "setup", dir=str(folder), server=server.url)
        yield RefSpace(
            build=ref_build,
            dir=folder,
            server=server,
            space=space,
            privileged=Minted(init["privileged"]["id"], Path(init["privileged"]["creds"])),
            delivery=Minted(init["delivery"]["id"], Path(init["delivery"]["creds"])),
            account=init["account"],
            feed_root=Path(init["feedRoot"]) if init.get("feedRoot") else None,
        )
    finally:
        server.close()


# --- our space (pairing b): `cotal-tui up` ---------------------------------------------------


@dataclass
class OurSpace:
    cwd: Path
    space: str
    url: str
    up: CliProcess
    state_dir: Path
    clis: list[CliProcess] = field(default_factory=list)

    async def mint(self, name: str, *args: str, profile: str = "agent") -> Minted:
        cmd = [
            sys.executable,
            "-m",
            "cotal_tui",
            "mint",
            name,
            "--profile",
            profile,
            "--space",
            self.space,
            "--state-dir",
            str(self.state_dir),
            *args,
        ]
        if profile == "agent":
            cmd += ["--server", self.url]
        proc = await asyncio.create_subprocess_exec(
            *cmd, cwd=self.cwd, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
        )
        out, err = await asyncio.wait_for(proc.communicate(), 60)
        assert proc.returncode == 0, f"cotal-tui mint {name} failed: {err.decode()}"
        return Minted(out.decode().strip().splitlines()[-1], self.state_dir / f"{name}.creds")

    @property
    def manager_creds(self) -> Path:
        return self.state_dir / "auth" / f"manager.{self.space}.creds"

    @property
    def delivery_creds(self) -> Path:
        return self.state_dir / "auth" / f"delivery.{self.space}.creds"


async def start_our_space(
    tmp_path: Path,
    clis: list[CliProcess],
    *,
    daemon: bool = True,
    open_mode: bool = False,
    channels: dict[str, Any] | None = None,
) -> OurSpace:
    space = unique_space("o")
    port = free_port()
    state = tmp_path / ".cotal"
    args = ["up", "--space", space, "--port", str(port), "--state-dir", str(state)]
    if channels is not None:
        seed = tmp_path / "channels.json"
        seed.write_text(json.dumps(channels))
        args += ["--channels", str(seed)]
    if open_mode:
        args.append("--open")
    elif not daemon:
        args.append("--no-daemon")
    up = CliProcess(args, cwd=tmp_path)
    clis.append(up)
    url = (await wait_cli_line(up, r"^url: (\S+)$", timeout=60)).group(1)
    if daemon and not open_mode:
        await wait_cli_line(up, r"delivery daemon serving space", timeout=60)
    return OurSpace(cwd=tmp_path, space=space, url=url, up=up, state_dir=state, clis=clis)


@pytest.fixture
async def our_space(tmp_path: Path, clis: list[CliProcess]) -> OurSpace:
    return await start_our_space(tmp_path, clis)


async def start_our_daemon(
    clis: list[CliProcess], cwd: Path, url: str, space: str, creds: Path | None
) -> CliProcess:
    args = ["daemon", "--server", url, "--space", space]
    if creds is not None:
        args += ["--creds", str(creds)]
    proc = CliProcess(args, cwd=cwd)
    clis.append(proc)
    return proc


# --- endpoints ----------------------------------------------------------------------------


@dataclass
class OurAgent:
    """Our `Endpoint` plus everything it received."""

    ep: Endpoint
    received: list[MessageReceived] = field(default_factory=list)

    @property
    def id(self) -> str:
        return self.ep.id

    def texts(self, **match: Any) -> list[str]:
        out = []
        for ev in self.received:
            m = ev.inbound.message
            if all(getattr(m, k) == v for k, v in match.items()):
                out.append(m.text)
        return out

    def inbound(self, **match: Any) -> list[Any]:
        return [
            ev.inbound
            for ev in self.received
            if all(getattr(ev.inbound.message, k) == v for k, v in match.items())
        ]


@pytest.fixture
async def our_agents() -> AsyncIterator[Callable[..., Awaitable[OurAgent]]]:
    started: list[Endpoint] = []

    async def make(
        url: str, space: str, name: str, *, creds: Path | None = None, **kwargs: Any
    ) -> OurAgent:
        ep = Endpoint(url, space, name=name, creds=str(creds) if creds else None, **kwargs)
        agent = OurAgent(ep)

        def listen(ev: Any) -> None:
            if isinstance(ev, MessageReceived):
                agent.received.append(ev)

        ep.on_event(listen)
        started.append(ep)
        await ep.start()
        return agent

    try:
        yield make
    finally:
        for ep in reversed(started):
            try:
                await asyncio.wait_for(ep.stop(), 10)
            except Exception:  # noqa: BLE001 - teardown goes on
                pass


@pytest.fixture
async def ref_agents(nodes: list[NodeProcess]) -> Callable[..., Awaitable[RefEndpoint]]:
    async def make(
        build: str, url: str, space: str, name: str, *, creds: Path | None = None, **args: Any
    ) -> RefEndpoint:
        ep = RefEndpoint(build)
        nodes.append(ep)
        opts: dict[str, Any] = {"space": space, "server": url, "name": name, **args}
        if creds is not None:
            opts["creds"] = str(creds)
        await ep.start(**opts)
        return ep

    return make


async def start_ref_daemon(
    nodes: list[NodeProcess],
    build: str,
    url: str,
    space: str,
    creds: Path | None,
    *,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
) -> NodeProcess:
    args = ["--space", space, "--server", url]
    if creds is not None:
        args += ["--creds", str(creds)]
    proc = NodeProcess(build, "delivery.mjs", *args, cwd=cwd, env=env)
    nodes.append(proc)
    return proc
