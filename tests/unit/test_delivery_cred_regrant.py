"""`up`'s own delivery cred (minted once into the state dir and reused, so its daemon keeps one
identity) gets the profile's later grants: minted before issue 11 it lacked STREAM.MSG.GET on
CHAT and INBOX, and its daemon could not count what a dead daemon left below the floor."""

from __future__ import annotations

from pathlib import Path

from cotal_tui.protocol.permissions import Permissions, delivery_permissions
from cotal_tui.server.auth import ensure_space_auth, write_creds
from cotal_tui.server.nats_jwt import Nkey, parse_creds

GRANTS = ("$JS.API.STREAM.MSG.GET.CHAT_rg", "$JS.API.STREAM.MSG.GET.INBOX_rg")


def _allowed(path: Path) -> tuple[str, set[str]]:
    creds = parse_creds(path.read_text())
    return creds.public, set(creds.claims["nats"]["pub"]["allow"])


def test_a_delivery_cred_minted_before_a_grant_is_minted_again_for_the_same_key(tmp_path):
    auth = ensure_space_auth(tmp_path, "rg")
    user = Nkey.create("user")
    now = delivery_permissions("rg", user.public)
    old = Permissions(
        pub_allow=tuple(g for g in now.pub_allow if g not in GRANTS), sub_allow=now.sub_allow
    )
    path = auth.dir / "delivery.rg.creds"
    write_creds(path, auth.mint_user("delivery", old, user))
    assert not set(GRANTS) & _allowed(path)[1]

    assert auth.delivery_creds_path() == path
    ident, allowed = _allowed(path)
    assert ident == user.public  # the same identity (the lease and holder file name it)
    assert set(now.pub_allow) <= allowed
    before = path.read_text()
    auth.delivery_creds_path()
    assert path.read_text() == before  # current: left as it is


def test_a_delivery_cred_this_chain_did_not_mint_is_left_alone(tmp_path):
    auth = ensure_space_auth(tmp_path, "rg")
    other = ensure_space_auth(tmp_path / "elsewhere", "rg")
    user = Nkey.create("user")
    now = delivery_permissions("rg", user.public)
    old = Permissions(
        pub_allow=tuple(g for g in now.pub_allow if g not in GRANTS), sub_allow=now.sub_allow
    )
    path = auth.dir / "delivery.rg.creds"
    write_creds(path, other.mint_user("delivery", old, user))
    before = path.read_text()
    auth.delivery_creds_path()
    assert path.read_text() == before
