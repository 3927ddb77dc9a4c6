"""What a ``.creds`` file's user JWT allows, read locally (no server round trip), so an endpoint
never asks the broker for what its credential cannot do (and waits out a timeout for it)."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

from cotal_tui.protocol.channels import subject_matches


def creds_claims(path: str) -> dict[str, Any] | None:
    """The ``nats`` claims of the user JWT in `path`; None when unreadable."""
    claims = _jwt_claims(path)
    nats_claims = claims.get("nats") if claims else None
    return nats_claims if isinstance(nats_claims, dict) else None


def creds_label(path: str | None) -> str:
    """Which credential is in use, for the console's header: its profile (the JWT's name, by
    the minting convention) and file, e.g. ``agent operator.creds``; ``none (open mode)``."""
    if not path:
        return "none (open mode)"
    claims = _jwt_claims(path) or {}
    profile = str(claims.get("name") or "unknown profile")
    return f"{profile} {Path(path).name}"


def _jwt_claims(path: str) -> dict[str, Any] | None:
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
        jwt = next(
            lines[i + 1].strip() for i, ln in enumerate(lines) if "BEGIN NATS USER JWT" in ln
        )
        payload = jwt.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (OSError, ValueError, StopIteration, IndexError):
        return None
    return claims if isinstance(claims, dict) else None


def may_publish(path: str | None, subject: str) -> bool:
    """Whether the credential may publish on `subject` (True for no creds, allow-all, or a JWT
    that cannot be read: then the broker decides)."""
    if not path:
        return True
    claims = creds_claims(path)
    if claims is None:
        return True
    pub = claims.get("pub") or {}
    allow, deny = list(pub.get("allow") or []), list(pub.get("deny") or [])
    if any(subject_matches(p, subject) for p in deny):
        return False
    return not allow or any(subject_matches(p, subject) for p in allow)
