"""The delivery holder file: proof that a lease held by our identity is our own dead process's.

``<state-dir>/run/delivery.<space>.<identity>.holder`` is locked (``flock``) by the process whose
daemon holds ``lease.0`` and records ``{pid, identity, revision}``, where ``revision`` is the
lease revision that process last wrote (updated on every acquire, ready and renew; cleared on
release). The kernel drops a flock when its process dies, so a process that gets the lock knows
no other live process of this state dir holds it. A lease ``lease.0`` then counts as provably
ours-and-dead only when all three hold (see :meth:`HolderFile.proves_dead_self`):

- the lease's holder is our identity;
- the file names that identity and exactly the lease's current revision (nobody else wrote the
  lease since that process last did);
- that process is gone (we hold the lock, and it was another pid), or it is this very process
  with no daemon running (an in-process restart).

Anything short of that is waited out (the lease's 30 s max_age), never taken: PROTOCOL §3.6's
single holder is kept.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class HolderRecord:
    pid: int
    identity: str
    revision: int | None


def holder_path(state_dir: str | Path, space: str, identity: str) -> Path:
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", f"{space}.{identity}")
    return Path(state_dir) / "run" / f"delivery.{safe}.holder"


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class HolderFile:
    """One process's claim on being the local holder of a space's lease under one identity."""

    def __init__(self, path: Path, identity: str) -> None:
        self.path = path
        self.identity = identity
        self._fd: int | None = None
        self.previous: HolderRecord | None = None

    @classmethod
    def for_daemon(cls, state_dir: str | Path, space: str, identity: str) -> HolderFile:
        return cls(holder_path(state_dir, space, identity), identity)

    @property
    def locked(self) -> bool:
        return self._fd is not None

    def lock(self) -> bool:
        """Take the lock (non-blocking). False: another live process of this state dir holds
        it (its daemon is the live holder). On success :attr:`previous` is what the last
        holder recorded (None if nothing)."""
        if self._fd is not None:
            return True
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            return False
        self._fd = fd
        self.previous = self._read()
        return True

    def unlock(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    def record(self, revision: int | None) -> None:
        """What this process's daemon last wrote to the lease (None: released or lost)."""
        if self._fd is None:
            return
        body = json.dumps({"pid": os.getpid(), "identity": self.identity, "revision": revision})
        with contextlib.suppress(OSError):
            os.ftruncate(self._fd, 0)
            os.pwrite(self._fd, body.encode(), 0)
        self.previous = HolderRecord(os.getpid(), self.identity, revision)

    def proves_dead_self(self, holder: str, revision: int, *, daemon_running: bool) -> str | None:
        """Why the lease (``holder`` at ``revision``) is provably our own dead process's, or
        None when it is not proven (then it must be waited out)."""
        prev = self.previous
        if self._fd is None or prev is None or holder != self.identity:
            return None
        if prev.identity != self.identity or prev.revision != revision:
            return None
        if prev.pid == os.getpid():
            return None if daemon_running else f"this process's stopped daemon (pid {prev.pid})"
        if pid_alive(prev.pid):
            # the lock is ours, so that pid is no longer the holder: it was reused
            return f"pid {prev.pid} no longer holds {self.path.name} (pid reused)"
        return f"pid {prev.pid}, which is gone"

    def _read(self) -> HolderRecord | None:
        assert self._fd is not None
        try:
            raw = os.pread(self._fd, 4096, 0)
            data = json.loads(raw) if raw.strip() else None
        except (OSError, ValueError):
            return None
        if not isinstance(data, dict):
            return None
        pid, ident, rev = data.get("pid"), data.get("identity"), data.get("revision")
        if not isinstance(pid, int) or not isinstance(ident, str):
            return None
        return HolderRecord(pid, ident, rev if isinstance(rev, int) else None)
