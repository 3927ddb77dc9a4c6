"""What the shared fixtures hand out (space handles, unique names, the vectors folder), importable
by any test as ``from spaces import ...``.

Kept out of ``conftest.py`` on purpose: with several conftest files in the tree (``tests/tui``
has its own), ``from conftest import`` resolves to whichever conftest pytest loaded last.
"""

from __future__ import annotations

import itertools
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cotal_tui.server.process import EmbeddedServer

if TYPE_CHECKING:  # imported lazily so a broken server module cannot break every test's setup
    from cotal_tui.server.auth import SpaceAuth
    from cotal_tui.server.mint import Minted

VECTORS = Path(__file__).parent / "vectors"


_space_ids = itertools.count(1)


def unique_space(prefix: str = "t") -> str:
    """A space name no other test in this run uses (safe on a shared module server)."""
    return f"{prefix}{os.getpid()}_{next(_space_ids)}"


@dataclass
class SpaceHandle:
    """A provisioned space on a running server: `url` to connect to, `space` its name."""

    server: EmbeddedServer
    space: str

    @property
    def url(self) -> str:
        return self.server.url


@dataclass
class AuthSpace:
    """An auth-mode server with a provisioned space and the trust chain that signs its creds.

    `await mint(name, profile, ...)` writes `<state_dir>/<name>.creds` and returns the
    `cotal_tui.server.mint.Minted` (`.path`, `.public_key` = the identity's id); agents are
    provisioned (durables + ACL row) unless `provision=False`. `manager_creds` is allow-all.
    """

    server: EmbeddedServer
    space: str
    state_dir: Path
    auth: SpaceAuth

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def manager_creds(self) -> Path:
        return self.auth.manager_creds_path()

    async def mint(
        self,
        name: str,
        profile: str = "agent",
        *,
        provision: bool = True,
        **kwargs: Any,
    ) -> Minted:
        from cotal_tui.server.mint import mint

        return await mint(
            name,
            profile=profile,
            space=self.space,
            state_dir=self.state_dir,
            server=self.url if provision else None,
            auth=self.auth,
            **kwargs,
        )
