"""`cotal-tui mint NAME --profile P`: write a NATS .creds file for one identity of a space."""

from __future__ import annotations

import argparse
import asyncio
import sys

from cotal_tui.commands.common import (
    UsageError,
    add_server_arg,
    add_space_arg,
    add_state_dir_arg,
    resolve_target,
)
from cotal_tui.protocol.errors import InvalidName, ProtocolError
from cotal_tui.protocol.operator_input import check_identity_name
from cotal_tui.protocol.permissions import PROFILES
from cotal_tui.server.auth import AuthError
from cotal_tui.server.mint import MintError, mint


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "mint",
        help="mint a .creds file for an identity (agent, operator, observer, admin, delivery, "
        "manager)",
        description=(
            "Mint a standard NATS .creds file signed by the space's account signing key. An "
            "agent is also provisioned on the server: its direct-message, role and durable "
            "inbox consumers and its channel access row. An operator (this project's own "
            "profile, what the console runs as) is an agent on every channel that may also read "
            "the delivery pipeline's state (stream and daemon consumer figures, dead letters), "
            "never other agents' direct messages."
        ),
        epilog="example: cotal-tui mint alice --allow-publish general   (an agent, the default)",
    )
    parser.add_argument(
        "name",
        help="identity name (letters, digits, _ and -); the default file is <state-dir>/NAME.creds",
    )
    parser.add_argument(
        "--profile",
        default="agent",
        choices=PROFILES,
        help="permission profile (default: agent)",
    )
    add_space_arg(parser)
    add_state_dir_arg(parser, "trust chain folder")
    add_server_arg(parser, "; where an agent is provisioned")
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
        check_identity_name(args.name)
    except InvalidName as exc:
        raise UsageError(f"{exc}; it names the identity and its file") from None
    if args.profile == "operator":
        flags = (
            ("--allow-subscribe", args.allow_subscribe),
            ("--allow-publish", args.allow_publish),
            ("--spawn", args.spawn),
        )
        given = [flag for flag, value in flags if value]
        if given:
            raise UsageError(
                f"{', '.join(given)}: not for the operator profile (it reads and posts every "
                "channel and never spawns); mint an agent for narrower access"
            )
    target = resolve_target(args)
    try:
        minted = asyncio.run(
            mint(
                args.name,
                profile=args.profile,
                space=target.space,
                state_dir=args.state_dir,
                server=None if args.no_provision else target.server,
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
