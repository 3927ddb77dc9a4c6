"""Operator input that becomes a subject token or a file name: refused with the rule, never
rewritten.

PROTOCOL §1.1's `token()` silently rewrites every character outside ``[A-Za-z0-9_-]`` to ``_``
(so ``bad space!`` and ``bad_space_`` would name the same space). A name an operator types on
the command line must already be a token, so what they typed is what the space is called.
"""

from __future__ import annotations

import re

from cotal_tui.protocol.errors import InvalidName

_TOKEN = re.compile(r"[A-Za-z0-9_-]+")
TOKEN_RULE = "use only letters, digits, '_' and '-' (PROTOCOL token rule), at least one"
MAX_NAME = 64


def check_token_name(kind: str, value: str) -> str:
    """`value` unchanged when it is a non-empty token of at most 64 characters; raises
    InvalidName naming the kind, the value and the rule otherwise."""
    if not _TOKEN.fullmatch(value):
        raise InvalidName(f"invalid {kind} {value!r}: {TOKEN_RULE}")
    if len(value) > MAX_NAME:
        raise InvalidName(f"invalid {kind} {value!r}: at most {MAX_NAME} characters")
    return value


def check_space_name(value: str) -> str:
    return check_token_name("space name", value)


def check_identity_name(value: str) -> str:
    return check_token_name("name", value)
