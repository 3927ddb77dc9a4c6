"""An in-process space for the demo and tests: embedded server + provisioning (+ trust chain).

`start_local_space` does what `cotal-tui up` does, without the foreground loop: it starts the
embedded nats-server (auth mode from the trust chain under `state_dir`, or open), provisions the
space and returns a `LocalSpace` to mint identities on and to stop. The caller owns it:

    space = await start_local_space("demo", state_dir=tmp / ".cotal")
    try:
        alice = await space.mint("alice", "agent", allow_publish=["general"])
        ...
    finally:
        space.stop()
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nats

from cotal_tui.server.auth import SpaceAuth, ensure_space_auth
from cotal_tui.server.mint import Minted, MintError, mint
from cotal_tui.server.process import EmbeddedServer, free_port
from cotal_tui.server.provision import ProvisionReport, provision_space
from cotal_tui.server.seed import ChannelSeed


@dataclass
class LocalSpace:
    server: EmbeddedServer
    space: str
    state_dir: Path
    auth: SpaceAuth | None
    report: ProvisionReport

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def manager_creds(self) -> Path | None:
        """The allow-all cred (auth mode); None in open mode, where no cred is needed."""
        return self.auth.manager_creds_path() if self.auth else None

    async def mint(
        self, name: str, profile: str = "agent", *, provision: bool = True, **kwargs: Any
    ) -> Minted:
        """Write `<state_dir>/<name>.creds` for a profile; agents are provisioned too."""
        if self.auth is None:
            raise MintError("an open-mode space has no trust chain; start it with auth=True")
        return await mint(
            name,
            profile=profile,
            space=self.space,
            state_dir=self.state_dir,
            server=self.url if provision else None,
            auth=self.auth,
            **kwargs,
        )

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL) and reap it."""
        self.server.close()


async def _quiet(exc: Exception) -> None:
    return None


async def start_local_space(
    space: str = "main",
    *,
    auth: bool = True,
    state_dir: str | Path = ".cotal",
    host: str = "127.0.0.1",
    port: int = 0,
    store_dir: str | Path | None = None,
    channels_seed: ChannelSeed | str | Path | dict[str, Any] | None = None,
) -> LocalSpace:
    """Start and provision a space; `port=0` picks a free port. Raises the server's or the
    provisioner's named errors; on a provisioning failure the server is stopped again."""
    root = Path(state_dir)
    trust = ensure_space_auth(root, space) if auth else None
    server = EmbeddedServer(host=host, port=port, store_dir=str(store_dir) if store_dir else None)
    if trust is not None:
        if server.port == 0:
            server.port = free_port(host)
        if server.store_dir is None:
            server.store_dir = str(root / "store")
        server.config_file = str(trust.render_server_config(host, server.port, server.store_dir))
    server.start()
    try:
        creds = str(trust.manager_creds_path()) if trust else None
        nc = await nats.connect(
            server.url,
            error_cb=_quiet,
            allow_reconnect=False,
            max_reconnect_attempts=1,
            **({"user_credentials": creds} if creds else {}),
        )
        try:
            report = await provision_space(nc, space, channels_seed=channels_seed)
        finally:
            await nc.close()
    except BaseException:
        server.close()
        raise
    return LocalSpace(server=server, space=space, state_dir=root, auth=trust, report=report)
