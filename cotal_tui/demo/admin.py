"""What an operator does to narrow an agent's read ACL on a running auth-mode space.

Three steps, each the real one:

1. commit the narrower ACL row (the daemon's authorization gate, PROTOCOL §3.5);
2. re-issue the agent's creds with the narrower broker grants, same nkey (same identity), into
   the same ``.creds`` file — nats-py re-reads that file on every reconnect;
3. kick the agent's connection through the system account (``$SYS.REQ.SERVER.<id>.KICK``), so it
   reconnects under the new grants and the broker refuses the re-sent subscription.

The system-account user is minted here, signed by the space's SYS account key, and used only to
find the server id and kick one client id.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import nats
from nats.aio.client import Client

from cotal_tui.protocol.permissions import agent_permissions
from cotal_tui.server.agents import commit_acl_row
from cotal_tui.server.auth import SpaceAuth, write_creds
from cotal_tui.server.nats_jwt import Nkey, encode_jwt, format_creds, parse_creds


class KickFailed(RuntimeError):
    """The system account did not disconnect the client (no answer, or an error reply)."""


async def _quiet(exc: Exception) -> None:
    return None


def mint_system_user(auth: SpaceAuth, path: Path) -> Path:
    """Write a creds file for a user of the SYS account (server requests such as KICK)."""
    user = Nkey.create("user")
    jwt = encode_jwt(
        issuer=auth.system,
        subject=user.public,
        name="cotal-demo-sys",
        nats={"pub": {}, "sub": {}, "subs": -1, "data": -1, "payload": -1, "type": "user"},
    )
    path.write_text(format_creds(jwt, user.seed))
    path.chmod(0o600)
    return path


class SpaceAdmin:
    """Manager (allow-all) and system connections of one local auth-mode space."""

    def __init__(self, url: str, space: str, auth: SpaceAuth, state_dir: Path) -> None:
        self.url = url
        self.space = space
        self.auth = auth
        self.state_dir = state_dir
        self._manager: Client | None = None
        self._system: Client | None = None
        self._server_id: str | None = None

    async def start(self) -> None:
        self._manager = await nats.connect(
            self.url,
            user_credentials=str(self.auth.manager_creds_path()),
            error_cb=_quiet,
            max_reconnect_attempts=-1,
            name="cotal:demo-manager",
        )
        sys_creds = mint_system_user(self.auth, self.state_dir / "demo-sys.creds")
        self._system = await nats.connect(
            self.url,
            user_credentials=str(sys_creds),
            error_cb=_quiet,
            max_reconnect_attempts=-1,
            name="cotal:demo-sys",
        )

    async def stop(self) -> None:
        for nc in (self._manager, self._system):
            if nc is not None and not nc.is_closed:
                try:
                    await nc.close()
                except Exception:  # noqa: BLE001 - closing anyway
                    pass
        self._manager = self._system = None

    @property
    def manager(self) -> Client:
        if self._manager is None:
            raise RuntimeError("SpaceAdmin.start() was not called")
        return self._manager

    async def commit_acl(self, owner: str, allow_subscribe: Sequence[str]) -> int:
        return await commit_acl_row(self.manager, self.space, owner, allow_subscribe)

    def reissue_agent_creds(
        self,
        creds_path: Path,
        owner: str,
        *,
        allow_subscribe: Sequence[str],
        allow_publish: Sequence[str],
        role: str | None,
    ) -> None:
        """Overwrite ``creds_path`` with the same identity and narrower grants."""
        old = parse_creds(creds_path.read_text())
        permissions = agent_permissions(
            self.space, owner, allow_subscribe=allow_subscribe, allow_publish=allow_publish,
            role=role,
        )  # fmt: skip
        write_creds(creds_path, self.auth.mint_user("agent", permissions, Nkey(old.seed)))

    async def kick(self, client_id: int) -> None:
        """Disconnect one client (by the broker's client id) through the system account."""
        if self._system is None:
            raise RuntimeError("SpaceAdmin.start() was not called")
        try:
            if self._server_id is None:
                reply = await self._system.request("$SYS.REQ.SERVER.PING", b"", timeout=2)
                self._server_id = json.loads(reply.data)["server"]["id"]
            reply = await self._system.request(
                f"$SYS.REQ.SERVER.{self._server_id}.KICK",
                json.dumps({"cid": client_id}).encode(),
                timeout=2,
            )
        except Exception as exc:  # noqa: BLE001 - reported as what it is
            raise KickFailed(f"kicking client {client_id} failed: {exc}") from exc
        body = json.loads(reply.data or b"{}")
        if "error" in body:
            raise KickFailed(f"kicking client {client_id} refused: {body['error']}")
