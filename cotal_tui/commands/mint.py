"""`cotal-tui mint NAME --profile P`: write a NATS .creds file for one identity of a space."""

from __future__ import annotations

import argparse
import asyncio
import sys

from cotal_tui.protocol.errors import ProtocolError
from cotal_tui.protocol.permissions import PROFILES
from cotal_tui.server.auth import AuthError
from cotal_tui.server.mint import DEFAULT_SERVER, MintError, mint


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "mint",
        help="mint a .creds file for an identity (agent, observer, admin, delivery, manager)",
        description=(
            "Mint a standard NATS .creds file signed by the space's account signing key. An "
            "agent is also provisioned on the server: its dm_/svc_/dlv_ durables and its ACL row."
        ),
    )
    parser.add_argument("name", help="identity name; the default file is <state-dir>/NAME.creds")
    parser.add_argument("--profile", required=True, choices=PROFILES)
    parser.add_argument("--space", default="main", help="space name (default: main)")
    parser.add_argument(
        "--state-dir", default=".cotal", help="trust chain folder (default: .cotal)"
    )
    parser.add_argument(
        "--server",
        default=DEFAULT_SERVER,
        help=f"server to provision on (default: {DEFAULT_SERVER})",
    )
    parser.add_argument(
        "--no-provision", action="store_true", help="agent: only write the creds, provision nothing"
    )
    parser.add_argument("--role", help="agent role: binds the shared svc_<role> task durable")
    parser.add_argument("--spawn", action="store_true", help="agent may ask the manager to spawn")
    parser.add_argument(
        "--subscribe", nargs="+", metavar="CH", help="boot channels (default: general)"
    )
    parser.add_argument(
        "--allow-subscribe",
        nargs="+",
        metavar="CH",
        help="read ACL, patterns allowed (default: the --subscribe list)",
    )
    parser.add_argument(
        "--allow-publish", nargs="+", metavar="CH", help="channels it may post on (default: none)"
    )
    parser.add_argument(
        "--out", metavar="FILE", help="creds path (default: <state-dir>/NAME.creds)"
    )
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    try:
        minted = asyncio.run(
            mint(
                args.name,
                profile=args.profile,
                space=args.space,
                state_dir=args.state_dir,
                server=None if args.no_provision else args.server,
                role=args.role,
                subscribe=args.subscribe,
                allow_subscribe=args.allow_subscribe,
                allow_publish=args.allow_publish,
                spawn=args.spawn,
                out=args.out,
            )
        )
    except (MintError, AuthError, ProtocolError) as exc:
        print(f"✗ {exc}", file=sys.stderr)
        return 2
    print(f"✓ {minted.profile} creds written to {minted.path} (mode 0600)")
    if minted.provisioned is not None:
        durables = ", ".join(minted.provisioned.durables.values())
        print(f"✓ provisioned {durables}; ACL revision {minted.provisioned.acl_revision}")
    print(minted.public_key)
    return 0
