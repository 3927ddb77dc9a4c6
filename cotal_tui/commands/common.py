"""What every command shares: where the space's server is, the environment fallbacks, and the
checks that turn bad input into one line (never a traceback).

Where to connect, first match wins:
  1. --server URL
  2. $COTAL_SERVER
  3. the record a running `cotal-tui up` keeps in <state-dir>/up.json (ignored once its pid is
     gone)
  4. nats://127.0.0.1:4222
The space is --space, else $COTAL_SPACE, else `main`; the creds are --creds, else $COTAL_CREDS.
"""

from __future__ import annotations

import argparse
import os
import re
from dataclasses import dataclass
from pathlib import Path

from cotal_tui.mesh.creds_claims import creds_claims
from cotal_tui.mesh.endpoint import creds_identity
from cotal_tui.protocol.errors import InvalidName
from cotal_tui.protocol.operator_input import check_space_name
from cotal_tui.protocol.subjects import token
from cotal_tui.server.state import UpRecord, read_record

DEFAULT_SERVER = "nats://127.0.0.1:4222"
DEFAULT_SPACE = "main"
DEFAULT_STATE_DIR = ".cotal"
ENV_SERVER = "COTAL_SERVER"
ENV_SPACE = "COTAL_SPACE"
ENV_CREDS = "COTAL_CREDS"
LOCAL_HOSTS = {"127.0.0.1", "0.0.0.0", "localhost", "::", "::1"}


class UsageError(Exception):
    """A flag or file that cannot work; the text names it and the rule (exit code 2)."""


@dataclass(frozen=True)
class Target:
    server: str
    space: str
    creds: str | None
    record: UpRecord | None
    """The running `up` of --state-dir, when the server came from (or matches) it."""
    explicit_server: bool
    """--server or $COTAL_SERVER named the server."""

    @property
    def local(self) -> bool:
        """The server is the state dir's own (its trust chain may supply default creds)."""
        return self.record is not None or not self.explicit_server


def add_server_arg(p: argparse.ArgumentParser, extra: str = "") -> None:
    p.add_argument(
        "--server",
        metavar="URL",
        help="NATS URL (default: $COTAL_SERVER, else where cotal-tui up on --state-dir "
        f"listens, else {DEFAULT_SERVER}){extra}",
    )


def add_space_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--space", help="space name (default: $COTAL_SPACE, else main)")


def add_state_dir_arg(p: argparse.ArgumentParser, what: str = "trust chain and store") -> None:
    p.add_argument(
        "--state-dir",
        default=DEFAULT_STATE_DIR,
        metavar="DIR",
        help=f"{what} (default: {DEFAULT_STATE_DIR})",
    )


def plain_help(text: str) -> str:
    """Help text for a terminal: no markdown backticks."""
    return text.replace("`", "")


def resolve_space(flag: str | None) -> str:
    space = flag if flag is not None else os.environ.get(ENV_SPACE) or DEFAULT_SPACE
    try:
        return check_space_name(space)
    except InvalidName as exc:
        raise UsageError(str(exc)) from None


def resolve_target(args: argparse.Namespace) -> Target:
    """Server, space and creds from the flags, the environment and the state dir's record."""
    space = resolve_space(getattr(args, "space", None))
    state_dir = getattr(args, "state_dir", None) or DEFAULT_STATE_DIR
    flag = getattr(args, "server", None)
    env = os.environ.get(ENV_SERVER) or None
    record = read_record(state_dir) if Path(state_dir).is_dir() else None
    if flag or env:
        server = flag or env or DEFAULT_SERVER
        mine = record if record is not None and record.url == server else None
        target = Target(server, space, None, mine, explicit_server=True)
    elif record is not None:
        target = Target(record.url, space, None, record, explicit_server=False)
    else:
        target = Target(DEFAULT_SERVER, space, None, None, explicit_server=False)
    creds = getattr(args, "creds", None) or os.environ.get(ENV_CREDS) or None
    if creds is not None:
        flag_name = "--creds" if getattr(args, "creds", None) else f"${ENV_CREDS}"
        check_creds_file(creds, flag_name)
        other = creds_spaces(creds)
        if other and token(space) not in other:
            raise UsageError(
                f"{flag_name} {creds}: minted for space {', '.join(sorted(other))}, not "
                f"{space!r}; pass --space {sorted(other)[0]} or a cred of space {space!r}"
            )
    return Target(target.server, space, creds, target.record, target.explicit_server)


_SPACE_SUBJECT = re.compile(r"^cotal\.([A-Za-z0-9_-]+)\.")


def creds_spaces(path: str) -> set[str]:
    """The spaces a restricted cred's permissions name (empty for allow-all or unreadable)."""
    claims = creds_claims(path) or {}
    subjects = [
        *((claims.get("pub") or {}).get("allow") or []),
        *((claims.get("sub") or {}).get("allow") or []),
    ]
    found = set()
    for subject in subjects:
        m = _SPACE_SUBJECT.match(str(subject))
        if m and m.group(1) not in ("*", ">"):
            found.add(m.group(1))
    return found


def check_creds_file(path: str, flag: str = "--creds") -> str:
    """The identity of a readable .creds file; UsageError (one line) for anything else."""
    p = Path(path)
    if not p.exists():
        raise UsageError(f"{flag} {path}: no such file; pass a .creds file (`cotal-tui mint`)")
    if p.is_dir():
        raise UsageError(f"{flag} {path}: is a folder, not a .creds file")
    try:
        return creds_identity(path)
    except UnicodeDecodeError:
        problem = "not a text file"
    except OSError as exc:
        problem = exc.strerror or str(exc)
    except (ValueError, KeyError, IndexError, TypeError):
        problem = "holds no readable NATS user JWT"
    raise UsageError(
        f"{flag} {path}: {problem}; pass a .creds file minted for this space (`cotal-tui mint`)"
    )


def check_state_dir(path: str | Path, flag: str = "--state-dir") -> Path:
    """`path` when it is a folder, or could be created as one; UsageError otherwise. Creates
    nothing."""
    p = Path(path)
    if p.exists():
        if not p.is_dir():
            raise UsageError(f"{flag} {path}: exists and is not a folder")
        if not os.access(p, os.W_OK | os.X_OK):
            raise UsageError(f"{flag} {path}: the folder is not writable")
        return p
    parent = p.absolute().parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise UsageError(f"{flag} {path}: cannot be created ({parent} is not a folder)")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise UsageError(f"{flag} {path}: cannot be created ({parent} is not writable)")
    return p


def local_space_creds(state_dir: str, space: str) -> str | None:
    """The operator cred of the space's own trust chain under `state_dir` (what `status` and
    `check` default to: it reads the roster, the lease, the pipeline's state and may probe the
    daemon, but never another agent's messages; the allow-all manager is the in-process
    daemon's fallback only), minted on first use; None
    when the state dir has no trust chain (open mode). A trust chain without this space is the
    operator's mistake, said as such (UsageError)."""
    from cotal_tui.server.auth import AuthError, AuthNotFound, load_space_auth, trust_chain_spaces

    try:
        auth = load_space_auth(state_dir, space)
    except AuthNotFound:
        known = trust_chain_spaces(state_dir)
        if known:
            raise UsageError(
                f"space {space!r} not found: the trust chain in {state_dir} has no account for "
                f"it (it has: {', '.join(known)}); check --space, or create it with "
                f"`cotal-tui up --space {space}`"
            ) from None
        return None
    except AuthError as exc:
        raise UsageError(str(exc)) from None
    return str(auth.operator_creds_path())
