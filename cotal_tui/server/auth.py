"""The auth-mode trust chain (PROTOCOL §8.2, §8.3): operator → space account → users.

Created once under `<state-dir>/auth/` and reused on every run, so creds minted earlier stay
valid:

    <state-dir>/                 (0700)
      auth/                      (0700)
        auth.json                (0600) operator, SYS and per-space account seeds
        server.conf              (0600) rendered nats-server config (operator, MEMORY resolver)
        manager.<space>.creds    (0600) allow-all cred `up` provisions with
        delivery.<space>.creds   (0600) delivery-profile cred of the daemon `up` runs
        operator.<space>.creds   (0600) operator-profile cred `status` and `check` default to
      <name>.creds               (0600) what `cotal-tui mint` writes by default (the console's
                                 own, `<--name>.creds`, an operator cred)

The operator is named `cotal-<token(space)>` after the first space; each space is one account
named `token(space)` with its own signing key and the §8.3 limits; users are signed by that
signing key (`issuer_account` = the account). Creds have no expiry, as in the reference.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nkeys

from cotal_tui.protocol import token
from cotal_tui.protocol.permissions import (
    Permissions,
    delivery_permissions,
    manager_permissions,
    operator_permissions,
)
from cotal_tui.server.nats_jwt import Creds, JwtError, Nkey, encode_jwt, format_creds, parse_creds

AUTH_DIR = "auth"
AUTH_FILE = "auth.json"
SERVER_CONF = "server.conf"
MAX_CONTROL_LINE = 65536
SYS_ACCOUNT = "SYS"

# The space account's JetStream `consumer` limit (issue 10), which nats-server applies per
# stream. The agent profile's KV watch grant (`CONSUMER.CREATE.KV_cotal_presence_<s>.>`,
# PROTOCOL §8.4) lets any agent create durable consumers it can never delete; this bounds what
# a hostile agent can leave behind on one stream. Legitimate use is about one consumer per
# identity per stream (its watch, its dm_/dlv_ durable, a history reader), so the bound leaves
# room for thousands of agents.
ACCOUNT_CONSUMER_LIMIT = 10_000

DATA_ACCOUNT_LIMITS: dict[str, Any] = {
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
    "consumer": ACCOUNT_CONSUMER_LIMIT,
}
SYS_ACCOUNT_LIMITS: dict[str, Any] = {
    **DATA_ACCOUNT_LIMITS,
    "mem_storage": 0,
    "disk_storage": 0,
    "consumer": -1,
}
USER_LIMITS: dict[str, Any] = {"subs": -1, "data": -1, "payload": -1}


class AuthError(RuntimeError):
    """The trust chain under the state dir is missing or unusable."""


class AuthNotFound(AuthError):
    pass


def _write_private(path: Path, text: str) -> None:
    """Write `text` to `path` with mode 0600 from the first byte (no world-readable window)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


def _private_dir(path: Path) -> None:
    path.mkdir(parents=True, exist_ok=True)
    os.chmod(path, 0o700)


@dataclass(frozen=True)
class AccountKeys:
    name: str
    key: Nkey
    signing: Nkey


@dataclass
class SpaceAuth:
    """One space's trust material, loaded from (or just written to) `<state-dir>/auth/`."""

    state_dir: Path
    space: str
    operator_name: str
    operator: Nkey
    system: Nkey
    accounts: dict[str, AccountKeys]
    consumer_limit: int = ACCOUNT_CONSUMER_LIMIT

    @property
    def dir(self) -> Path:
        return self.state_dir / AUTH_DIR

    @property
    def account(self) -> AccountKeys:
        return self.accounts[token(self.space)]

    @property
    def account_public(self) -> str:
        return self.account.key.public

    # -- JWTs ---------------------------------------------------------------------------------
    def operator_jwt(self) -> str:
        return encode_jwt(
            issuer=self.operator,
            subject=self.operator.public,
            name=self.operator_name,
            nats={"type": "operator", "system_account": self.system.public},
        )

    def system_jwt(self) -> str:
        return encode_jwt(
            issuer=self.operator,
            subject=self.system.public,
            name=SYS_ACCOUNT,
            nats={"limits": dict(SYS_ACCOUNT_LIMITS), "type": "account"},
        )

    def account_jwt(self, account: AccountKeys | None = None) -> str:
        acct = account or self.account
        return encode_jwt(
            issuer=self.operator,
            subject=acct.key.public,
            name=acct.name,
            nats={
                "limits": {**DATA_ACCOUNT_LIMITS, "consumer": self.consumer_limit},
                "signing_keys": [acct.signing.public],
                "default_permissions": {"pub": {}, "sub": {}},
                "type": "account",
            },
        )

    def mint_user(
        self,
        name: str,
        permissions: Permissions,
        user: Nkey | None = None,
        tags: list[str] | None = None,
    ) -> Creds:
        """A user JWT named `name` (the profile name, by convention) with `permissions` and
        optional `tags` (an agent's card: protocol/cred_card.py)."""
        key = user or Nkey.create("user")
        jwt = encode_jwt(
            issuer=self.account.signing,
            subject=key.public,
            name=name,
            nats={
                **permissions.to_claims(),
                **USER_LIMITS,
                **({"tags": list(tags)} if tags else {}),
                "type": "user",
                "issuer_account": self.account_public,
            },
        )
        return Creds(jwt=jwt, seed=key.seed)

    def manager_creds_path(self) -> Path:
        """An allow-all cred for this space's provisioning, minted on first use."""
        path = self.dir / f"manager.{token(self.space)}.creds"
        if not path.exists():
            write_creds(path, self.mint_user("manager", manager_permissions()))
        return path

    def delivery_creds_path(self) -> Path:
        """A delivery-profile cred for the daemon `up` runs in-process, minted on first use
        (and reused, so the daemon keeps one identity across runs)."""
        path = self.dir / f"delivery.{token(self.space)}.creds"
        if not path.exists():
            user = Nkey.create("user")
            perms = delivery_permissions(self.space, user.public)
            write_creds(path, self.mint_user("delivery", perms, user))
        else:
            self.regrant_delivery(path)
        return path

    def regrant_delivery(self, path: Path) -> list[str]:
        """A delivery cred this trust chain minted before the profile gained a grant (e.g.
        STREAM.MSG.GET on CHAT and INBOX, issue 11) is minted again for the same user key: the
        daemon keeps its identity and gets what the profile allows now. Anything else (another
        issuer, a cred edited by hand, an unreadable file) is left as it is. The grants it
        lacked (empty: left as it is). `up` and `console --daemon` both apply it to the state
        dir's delivery cred."""
        try:
            creds = parse_creds(path.read_text(encoding="utf-8"))
            claims = creds.claims
        except (OSError, ValueError, JwtError):
            return []
        if claims.get("iss") != self.account.signing.public or claims.get("name") != "delivery":
            return []
        nats_claims = claims.get("nats") or {}
        perms = delivery_permissions(self.space, creds.public)
        had_pub = set((nats_claims.get("pub") or {}).get("allow") or [])
        had_sub = set((nats_claims.get("sub") or {}).get("allow") or [])
        lacked = [g for g in perms.pub_allow if g not in had_pub]
        lacked += [g for g in perms.sub_allow if g not in had_sub and g not in lacked]
        if not lacked:
            return []
        write_creds(path, self.mint_user("delivery", perms, Nkey(creds.seed)))
        return lacked

    def operator_creds_path(self) -> Path:
        """An ``operator``-profile cred (protocol/permissions.py) for `status` and `check` on
        this state dir, minted on first use and reused: what they read (roster, channels, the
        lease, the responder probe, the pipeline's state) without the allow-all manager. Not
        provisioned as a participant: they bind no consumer and write no presence."""
        path = self.dir / f"operator.{token(self.space)}.creds"
        if not path.exists():
            user = Nkey.create("user")
            perms = operator_permissions(self.space, user.public)
            write_creds(path, self.mint_user("operator", perms, user))
        return path

    # -- server config ------------------------------------------------------------------------
    def render_server_config(
        self,
        host: str,
        port: int,
        store_dir: str | Path,
        *,
        extra: list[str] | None = None,
        name: str = SERVER_CONF,
    ) -> Path:
        """Write `server.conf` (§8.2) with every account of the state dir preloaded.

        `extra` lines are appended (a cluster node's `server_name` and `cluster {}` block, see
        server/cluster.py), `name` is the file name under the auth dir."""
        preload = {self.system.public: self.system_jwt()}
        for acct in self.accounts.values():
            preload[acct.key.public] = self.account_jwt(acct)
        lines = [
            "# Rendered by `cotal-tui up` (auth mode); re-rendered on every start.",
            f"host: {json.dumps(host)}",
            f"port: {int(port)}",
            f"max_control_line: {MAX_CONTROL_LINE}",
            f"jetstream: {{ store_dir: {json.dumps(str(store_dir))} }}",
            f"operator: {json.dumps(self.operator_jwt())}",
            f"system_account: {json.dumps(self.system.public)}",
            "resolver: MEMORY",
            "resolver_preload: {",
            *(f"  {pub}: {json.dumps(jwt)}" for pub, jwt in preload.items()),
            "}",
            *(extra or []),
        ]
        path = self.dir / name
        _write_private(path, "\n".join(lines) + "\n")
        return path

    # -- persistence ---------------------------------------------------------------------------
    def _to_json(self) -> dict[str, Any]:
        return {
            "version": 1,
            "operator": {"name": self.operator_name, "seed": self.operator.seed},
            "system": {"name": SYS_ACCOUNT, "seed": self.system.seed},
            "accounts": {
                key: {"name": a.name, "seed": a.key.seed, "signingSeed": a.signing.seed}
                for key, a in self.accounts.items()
            },
        }

    def save(self) -> None:
        _private_dir(self.state_dir)
        _private_dir(self.dir)
        _write_private(self.dir / AUTH_FILE, json.dumps(self._to_json(), indent=2) + "\n")


def write_creds(path: str | Path, creds: Creds) -> Path:
    """Write a standard .creds file with mode 0600."""
    target = Path(path)
    _write_private(target, format_creds(creds.jwt, creds.seed))
    return target


def _load(state_dir: Path, space: str) -> SpaceAuth | None:
    path = state_dir / AUTH_DIR / AUTH_FILE
    if not path.exists():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        accounts = {
            key: AccountKeys(name=a["name"], key=Nkey(a["seed"]), signing=Nkey(a["signingSeed"]))
            for key, a in data["accounts"].items()
        }
        auth = SpaceAuth(
            state_dir=state_dir,
            space=space,
            operator_name=data["operator"]["name"],
            operator=Nkey(data["operator"]["seed"]),
            system=Nkey(data["system"]["seed"]),
            accounts=accounts,
        )
        _ = auth.operator.public, auth.system.public  # decode the seeds now
    except (OSError, ValueError, KeyError, TypeError, nkeys.NkeysError) as exc:
        raise AuthError(
            f"{path} is unreadable or damaged ({exc}); restore it, or move it away to create a "
            "new trust chain (creds minted from the old one will stop working)"
        ) from exc
    return auth


def load_space_auth(state_dir: str | Path, space: str) -> SpaceAuth:
    """The existing trust chain of `space`; raises `AuthNotFound` with the fix."""
    root = Path(state_dir)
    auth = _load(root, space)
    if auth is None or token(space) not in auth.accounts:
        raise AuthNotFound(
            f"no trust chain for space {space!r} under {root / AUTH_DIR}; run "
            f"`cotal-tui up --space {space} --state-dir {root}` first"
        )
    return auth


def ensure_space_auth(state_dir: str | Path, space: str) -> SpaceAuth:
    """Load the trust chain, adding this space's account if new; create it all on first run."""
    root = Path(state_dir)
    auth = _load(root, space)
    if auth is None:
        auth = SpaceAuth(
            state_dir=root,
            space=space,
            operator_name=f"cotal-{token(space)}",
            operator=Nkey.create("operator"),
            system=Nkey.create("account"),
            accounts={},
        )
    if token(space) not in auth.accounts:
        auth.accounts[token(space)] = AccountKeys(
            name=token(space), key=Nkey.create("account"), signing=Nkey.create("account")
        )
        auth.save()
    return auth


def trust_chain_spaces(state_dir: str | Path) -> list[str]:
    """The account names of the trust chain under `state_dir` (empty when there is none)."""
    try:
        auth = _load(Path(state_dir), "main")
    except AuthError:
        return []
    return sorted(a.name for a in auth.accounts.values()) if auth else []
