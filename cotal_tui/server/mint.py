"""Mint a standard NATS .creds file for one identity of a space, by profile.

For the `agent` and `operator` profiles the channel lists are validated first
(`subscribe ⊆ allowSubscribe`), then, unless told not to, the agent is provisioned on the server
(its DM/role/DLV durables and its ACL row) with the space's allow-all manager cred, and only then
are the creds written. The
identity's id is the user nkey's public key (`U…`). An agent's JWT also carries its card as tags
(name, role, boot channels: protocol/cred_card.py), so `agent`/`console --creds` know who they are.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import nats

from cotal_tui.mesh.connection import server_list
from cotal_tui.protocol.cred_card import card_tags
from cotal_tui.protocol.permissions import (
    OPERATOR_CHANNELS,
    PROFILES,
    agent_permissions,
    operator_permissions,
    profile_permissions,
    resolve_agent_channels,
)
from cotal_tui.server.agents import AgentProvision, provision_agent
from cotal_tui.server.auth import SpaceAuth, load_space_auth, write_creds
from cotal_tui.server.nats_jwt import Nkey

DEFAULT_SERVER = "nats://127.0.0.1:4222"
AGENT_PROFILES = ("agent", "operator")
"""Profiles that are participants: provisioned like an agent, their card in the JWT tags."""


class MintError(RuntimeError):
    """The identity could not be minted; nothing was written."""


@dataclass(frozen=True)
class Minted:
    path: Path
    public_key: str
    profile: str
    provisioned: AgentProvision | None = None


def creds_path(state_dir: str | Path, name: str, out: str | Path | None = None) -> Path:
    if out:
        return Path(out)
    if not name or "/" in name or name in (".", ".."):
        raise MintError(f"name {name!r} cannot be a file name; pass --out FILE")
    return Path(state_dir) / f"{name}.creds"


async def mint(
    name: str,
    *,
    profile: str,
    space: str = "main",
    state_dir: str | Path = ".cotal",
    server: str | None = DEFAULT_SERVER,
    role: str | None = None,
    subscribe: Sequence[str] | None = None,
    allow_subscribe: Sequence[str] | None = None,
    allow_publish: Sequence[str] | None = None,
    spawn: bool = False,
    out: str | Path | None = None,
    auth: SpaceAuth | None = None,
) -> Minted:
    """Mint (and for agents provision, when `server` is given) one identity's creds."""
    if profile not in PROFILES:
        raise MintError(f"unknown profile {profile!r}; expected one of {', '.join(PROFILES)}")
    path = creds_path(state_dir, name, out)
    auth = auth or load_space_auth(state_dir, space)
    user = Nkey.create("user")
    ident = user.public
    provisioned: AgentProvision | None = None
    tags: list[str] | None = None
    if profile in AGENT_PROFILES:
        if profile == "operator":  # every channel, by definition of the profile
            allow_subscribe = allow_publish = OPERATOR_CHANNELS
        channels = resolve_agent_channels(subscribe, allow_subscribe, allow_publish)
        if profile == "operator":
            permissions = operator_permissions(space, ident, role=role)
        else:
            permissions = agent_permissions(
                space,
                ident,
                allow_subscribe=channels.allow_subscribe,
                allow_publish=channels.allow_publish,
                role=role,
                spawn=spawn,
            )
        tags = card_tags(name, role, channels.subscribe)
        if server:
            provisioned = await _provision(
                auth, server, space, ident, role, channels.subscribe, channels.allow_subscribe
            )
    else:
        permissions = profile_permissions(profile, space, ident)
    creds = auth.mint_user(profile, permissions, user, tags)
    write_creds(path, creds)
    return Minted(path=path, public_key=ident, profile=profile, provisioned=provisioned)


async def _provision(
    auth: SpaceAuth,
    server: str,
    space: str,
    ident: str,
    role: str | None,
    subscribe: Sequence[str],
    allow_subscribe: Sequence[str],
) -> AgentProvision:
    async def quiet(exc: Exception) -> None:
        return None

    try:
        nc = await nats.connect(
            server_list(server),
            user_credentials=str(auth.manager_creds_path()),
            error_cb=quiet,
            allow_reconnect=False,
            connect_timeout=3,
            max_reconnect_attempts=1,  # 0 would mean "retry forever" in nats-py
        )
    except Exception as exc:  # noqa: BLE001 - reported with the fix
        raise MintError(
            f"cannot reach {server} to provision the agent ({exc}); start it with "
            "`cotal-tui up`, pass --server URL, or --no-provision to only write the creds"
        ) from exc
    try:
        return await provision_agent(
            nc, space, ident, role=role, subscribe=subscribe, allow_subscribe=allow_subscribe
        )
    finally:
        await nc.close()
