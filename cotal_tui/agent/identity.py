"""Read a ``.creds`` file's card and ACL (the agent's name, role, boot channels, read/post)."""

from __future__ import annotations

from pathlib import Path

from cotal_tui.protocol.cred_card import CredCard, cred_card
from cotal_tui.server.nats_jwt import JwtError, decode_jwt, parse_creds


class CredsUnreadable(ValueError):
    """The file is not a NATS .creds file; the message names the file and why."""


def load_cred_card(path: str, space: str) -> CredCard:
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise CredsUnreadable(f"{path}: cannot read it ({exc.strerror or exc})") from None
    try:
        claims = decode_jwt(parse_creds(text).jwt, verify=False)
    except JwtError as exc:
        raise CredsUnreadable(f"{path}: {exc}; pass a .creds file minted for this space") from None
    return cred_card(claims, space)
