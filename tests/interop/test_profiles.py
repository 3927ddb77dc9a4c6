"""Scenario 9 (and its 0.6.0 counterpart): the reference's own provisioning against our space.

The reference's `setupSpaceStreams` is create-if-matching: run on a space our `cotal-tui up`
provisioned, it succeeds only if every stream and bucket we created has exactly the reference's
config. With 0.9.0 it runs under its least-privilege `provisioner` profile (signed by our
account's signing key), which also adds 0.9.0's additive buckets (`cotal_membership_<space>`,
`cotal_manager_<space>`); a reference agent provisioned by that profile (`provisionAgent`) then
works on our space with our daemon."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from conftest import start_our_space
from refproc import Minted, provision

from cotal_tui.server.auth import load_space_auth
from waiting import wait_for


def _reference_auth_dir(ours: Any, folder: Path) -> Path:
    """Our trust chain in the reference's SpaceAuth shape, stripped to what `mintCreds` reads
    (`space`, `account.pub`, `account.signingSeed` — the reference's `stripSpaceAuth`)."""
    auth = load_space_auth(ours.state_dir, ours.space)
    folder.mkdir(mode=0o700)
    stripped = {
        "space": ours.space,
        "operator": {"seed": "", "jwt": ""},
        "account": {
            "pub": auth.account.key.public,
            "seed": "",
            "jwt": "",
            "signingSeed": auth.account.signing.seed,
            "signingPub": auth.account.signing.public,
        },
        "sys": {"pub": "", "jwt": ""},
    }
    path = folder / "auth.json"
    path.write_text(json.dumps(stripped))
    os.chmod(path, 0o600)
    return folder


async def test_reference_setup_accepts_our_space(
    ref_build: str, tmp_path: Path, clis: list[Any], our_agents: Any, ref_agents: Any
) -> None:
    ours = await start_our_space(tmp_path, clis)
    folder = _reference_auth_dir(ours, tmp_path / "refauth")
    profile = "manager" if ref_build.endswith("0.6.0") else "provisioner"
    await provision(ref_build, "mint", dir=str(folder), profile=profile, name=profile)
    # create-if-matching over every stream and bucket `up` made: any config delta fails here
    await provision(ref_build, "setup", dir=str(folder), server=ours.url)

    got = await provision(
        ref_build,
        "agent",
        dir=str(folder),
        server=ours.url,
        name="bob",
        subscribe=["general"],
        allowPublish=["general"],
    )
    bob_c = Minted(got["id"], Path(got["creds"]))
    alice_c = await ours.mint("alice", "--subscribe", "general", "--allow-publish", "general")
    bob = await ref_agents(
        ref_build, ours.url, ours.space, "bob", creds=bob_c.creds, channels=["general"]
    )

    async def active() -> bool:
        return (await bob.call("health"))["channels"].get("general") == "active"

    await wait_for(
        active, what="the reference-provisioned agent's backstop via our daemon", timeout=30
    )
    alice = await our_agents(
        ours.url, ours.space, "alice", creds=alice_c.creds, channels=["general"]
    )
    await alice.ep.send("general", "hello-bob")
    await wait_for(
        lambda: "hello-bob" in bob.texts(channel="general"),
        what="our message at the reference-provisioned agent",
        timeout=30,
    )
    await alice.ep.send_dm(bob.id, "dm")
    await wait_for(
        lambda: "dm" in bob.texts(to=bob.id),
        what="our DM in the DM durable the reference provisioned",
        timeout=30,
    )
