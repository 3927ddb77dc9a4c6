"""One error taxonomy for every command: what went wrong, in the operator's terms, and the fix.

unreachable           nothing answers at the address (or it stopped answering)
refused-credentials   the server answered and refused the credential (or its absence)
wrong-space           connected, but the space does not exist in this credential's account
permission            connected, but the credential may not do what was asked
bad-input             a file or flag that cannot work (unreadable creds, …)
error                 anything else (named, never as a traceback)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from cotal_tui.mesh.connection import (
    CredsRefused,
    CredsUnreadable,
    PermissionDenied,
    Unreachable,
)
from cotal_tui.mesh.jsapi import JsApiError, JsApiUnavailable
from cotal_tui.mesh.kv import BucketNotFound, KvUnavailable

FailureKind = Literal[
    "unreachable", "refused-credentials", "wrong-space", "permission", "bad-input", "error"
]
JS_STREAM_NOT_FOUND = 10059


@dataclass(frozen=True)
class Failure:
    kind: FailureKind
    text: str

    @property
    def label(self) -> str:
        return self.kind.replace("-", " ")


def space_missing_text(space: str, server: str) -> str:
    return (
        f"space {space!r} not found on {server} (in this credential's account): check --space, "
        f"or create it with `cotal-tui up --space {space}`"
    )


def classify(exc: BaseException, *, server: str, space: str) -> Failure:
    """The kind of `exc` and a one-line text that says what to do."""
    if isinstance(exc, CredsRefused):
        return Failure("refused-credentials", str(exc))
    if isinstance(exc, CredsUnreadable):
        return Failure("bad-input", str(exc))
    if isinstance(exc, Unreachable | ConnectionRefusedError | TimeoutError):
        return Failure("unreachable", str(exc) or f"no answer from {server}")
    if isinstance(exc, BucketNotFound) or (
        isinstance(exc, JsApiError) and exc.code == JS_STREAM_NOT_FOUND
    ):
        return Failure("wrong-space", space_missing_text(space, server))
    if isinstance(exc, PermissionDenied):
        return Failure("permission", str(exc))
    text = str(exc) or type(exc).__name__
    lowered = text.lower()
    if "permissions violation" in lowered or "authorization" in lowered:
        return Failure(
            "permission",
            f"the credential in use may not do this on space {space!r} ({text}); use a cred "
            "minted with the profile it needs",
        )
    if isinstance(exc, JsApiUnavailable | KvUnavailable):
        return Failure("permission", text)
    if isinstance(exc, OSError):
        return Failure("unreachable", f"cannot reach NATS at {server} ({text})")
    return Failure("error", f"{type(exc).__name__}: {text}")
