"""The trust chain's content (PROTOCOL §8.2, §8.3), its reuse, and one state dir for two spaces."""

from __future__ import annotations

import json
import re
from pathlib import Path

import nats
import pytest

from cotal_tui.protocol.permissions import agent_permissions, manager_permissions
from cotal_tui.server.auth import AuthError, AuthNotFound, ensure_space_auth, load_space_auth
from cotal_tui.server.nats_jwt import decode_jwt, public_kind
from cotal_tui.server.process import EmbeddedServer, free_port
from cotal_tui.server.provision import provision_space


async def _quiet(exc: Exception) -> None:
    return None


def _preload(conf: str) -> dict[str, str]:
    block = conf[conf.index("resolver_preload: {") : conf.rindex("}")]
    return dict(re.findall(r"^\s+([A-Z0-9]{56}): \"([^\"]+)\"$", block, re.M))


def test_trust_chain_claims_follow_the_protocol(tmp_path: Path) -> None:
    auth = ensure_space_auth(tmp_path / "state", "prod.eu")
    conf = auth.render_server_config("127.0.0.1", 4222, tmp_path / "store").read_text()
    assert 'host: "127.0.0.1"' in conf and "port: 4222" in conf
    assert "max_control_line: 65536" in conf
    assert f'store_dir: "{tmp_path / "store"}"' in conf
    assert "resolver: MEMORY" in conf
    assert f'system_account: "{auth.system.public}"' in conf

    operator = decode_jwt(re.search(r'^operator: "([^"]+)"$', conf, re.M).group(1))  # type: ignore[union-attr]
    assert operator["name"] == "cotal-prod_eu"
    assert operator["iss"] == operator["sub"] == auth.operator.public
    assert public_kind(auth.operator.public) == "operator"
    assert operator["nats"] == {
        "type": "operator",
        "system_account": auth.system.public,
        "version": 2,
    }

    preload = _preload(conf)
    assert set(preload) == {auth.system.public, auth.account_public}
    account = decode_jwt(preload[auth.account_public])
    assert account["name"] == "prod_eu"
    assert account["iss"] == auth.operator.public
    assert account["nats"]["limits"] == {
        "subs": -1,
        "conn": -1,
        "leaf": -1,
        "imports": -1,
        "exports": -1,
        "data": -1,
        "payload": -1,
        "wildcards": True,
        "mem_storage": -1,
        "disk_storage": -1,
        "consumer": 10_000,  # issue 10: a bound on what a hostile agent can leave behind
    }
    signing = account["nats"]["signing_keys"]
    assert signing == [auth.account.signing.public] and signing[0] != auth.account_public
    system = decode_jwt(preload[auth.system.public])
    assert system["name"] == "SYS"
    assert system["nats"]["limits"]["mem_storage"] == 0
    assert system["nats"]["limits"]["disk_storage"] == 0

    creds = auth.mint_user(
        "agent", agent_permissions("prod.eu", "U1", allow_subscribe=["g"], allow_publish=[])
    )
    user = creds.claims
    assert user["name"] == "agent"
    assert user["sub"] == creds.public and public_kind(creds.public) == "user"
    assert user["iss"] == auth.account.signing.public
    assert user["nats"]["issuer_account"] == auth.account_public
    assert user["nats"]["type"] == "user" and "exp" not in user
    assert user["nats"]["sub"]["allow"][-1] == "cotal.prod_eu.chat.*.g"
    manager = auth.mint_user("manager", manager_permissions()).claims
    assert "pub" not in manager["nats"] and "sub" not in manager["nats"]


def test_trust_chain_is_created_once_and_reused(tmp_path: Path) -> None:
    state = tmp_path / "state"
    first = ensure_space_auth(state, "main")
    again = ensure_space_auth(state, "main")
    assert again.operator.seed == first.operator.seed
    assert again.account.key.seed == first.account.key.seed
    assert again.account.signing.seed == first.account.signing.seed
    assert again.system.seed == first.system.seed
    assert load_space_auth(state, "main").account_public == first.account_public
    with pytest.raises(AuthNotFound, match="cotal-tui up --space other"):
        load_space_auth(state, "other")


def test_a_damaged_trust_chain_is_reported_with_the_fix(tmp_path: Path) -> None:
    state = tmp_path / "state"
    ensure_space_auth(state, "main")
    auth_json = state / "auth" / "auth.json"
    data = json.loads(auth_json.read_text())
    data["operator"]["seed"] = "not-a-seed"
    auth_json.write_text(json.dumps(data))
    with pytest.raises(AuthError, match="damaged.*move it away"):
        ensure_space_auth(state, "main")


async def test_two_spaces_share_a_state_dir_and_stay_isolated(tmp_path: Path) -> None:
    state = tmp_path / "state"
    ensure_space_auth(state, "alpha")
    beta = ensure_space_auth(state, "beta")
    alpha = load_space_auth(state, "alpha")
    assert alpha.operator.public == beta.operator.public
    assert alpha.account_public != beta.account_public
    port = free_port()
    conf = beta.render_server_config("127.0.0.1", port, tmp_path / "store")
    assert set(_preload(conf.read_text())) == {
        alpha.system.public,
        alpha.account_public,
        beta.account_public,
    }
    server = EmbeddedServer(port=port, store_dir=str(tmp_path / "store"), config_file=str(conf))
    server.start()
    try:
        clients = {}
        for name, auth in (("alpha", alpha), ("beta", beta)):
            nc = await nats.connect(
                server.url, user_credentials=str(auth.manager_creds_path()), error_cb=_quiet
            )
            clients[name] = nc
            await provision_space(nc, name)
        # Each space is its own account: its JetStream sees only its own streams.
        for name, nc in clients.items():
            names = sorted(await nc.jetstream().streams_info(), key=lambda s: s.config.name)
            assert {s.config.name for s in names} == {
                f"CHAT_{name}",
                f"DM_{name}",
                f"TASK_{name}",
                f"INBOX_{name}",
                f"DLV_{name}",
                f"KV_cotal_presence_{name}",
                f"KV_cotal_channels_{name}",
                f"KV_cotal_members_{name}",
                f"KV_cotal_acl_{name}",
                f"KV_cotal_delivery_{name}",
                f"COTALTUI_DEAD_{name}",  # the daemon's dead-letter store (issue 10)
            }
        for nc in clients.values():
            await nc.close()
    finally:
        server.close()
