"""One store, one server: the record of where `up` listens, and the exclusive store lock.

`up` writes ``<state-dir>/up.json`` once its server runs (pid, URL, space, store) and removes it
on exit; a record whose pid is gone is ignored, so a crashed `up` never misdirects anyone.
Every command that takes ``--state-dir`` finds the running server from it (commands/common.py:
status, check, console, mint, daemon and agent connect to ``url`` unless told otherwise).

`up --cluster N` writes the same record for its local cluster: ``url`` is every node's URL
comma-joined (nats-py's server list, so a reader fails over when a node dies), ``replicas`` the
count the space was provisioned at, and ``nodes`` one entry per node (name, URL, client and
route ports, store dir, pid — None while that node is down, and None with ``outside`` set for
a node started again by hand: it runs, but not as this `up`'s process, so its pid is unknown
and `up` does not stop it on exit).

`up --server URL[,URL...]` (an existing server or cluster, none started) writes one too while it
runs the space's daemon: ``url`` the server list as given, ``host``/``port`` the first URL's,
``external`` set and ``store`` empty (the store is not this `up`'s to name). It leaves the record
of another live `up` on the same state dir as it is.

Whoever starts a nats-server on a store holds an exclusive ``flock`` on ``<store>/.cotal.lock``
(with its pid written inside) for as long as the server runs; the kernel drops it when the
process dies. Nothing starts a second server on a store another process holds: it is told who
holds it instead.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

RECORD_FILE = "up.json"
LOCK_FILE = ".cotal.lock"


@dataclass(frozen=True)
class NodeRecord:
    """One node of the local cluster `up --cluster` runs."""

    name: str
    url: str
    port: int
    cluster_port: int
    store: str
    pid: int | None
    outside: bool = False
    """Running again, started outside this `up` (by hand): pid unknown, `up` will not stop it."""


@dataclass(frozen=True)
class UpRecord:
    """Where a running `cotal-tui up` listens."""

    pid: int
    url: str
    host: str
    port: int
    space: str
    store: str
    mode: str
    started_at: int
    replicas: int = 1
    nodes: tuple[NodeRecord, ...] = ()
    """Empty for one server; one entry per node for `up --cluster` (``url`` lists them all)."""
    external: bool = False
    """`up --server`: this `up` started no server (``store`` is empty)."""

    @property
    def clustered(self) -> bool:
        return bool(self.nodes)

    @classmethod
    def from_json(cls, data: dict[str, object]) -> UpRecord:
        nodes = data.get("nodes") or []
        if not isinstance(nodes, list):
            raise TypeError("nodes is not a list")
        return cls(**{**data, "nodes": tuple(NodeRecord(**n) for n in nodes)})  # type: ignore[arg-type]


def pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/status", encoding="utf-8") as f:
            return "zombie" not in f.read().lower()
    except OSError:
        return True


def record_path(state_dir: str | Path) -> Path:
    return Path(state_dir) / RECORD_FILE


def write_record(state_dir: str | Path, record: UpRecord) -> Path:
    path = record_path(state_dir)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(asdict(record), indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, path)
    return path


def remove_record(state_dir: str | Path, pid: int | None = None) -> None:
    """Remove the record (only when it is `pid`'s, if given)."""
    path = record_path(state_dir)
    if pid is not None:
        current = _load(path)
        if current is not None and current.pid != pid:
            return
    with contextlib.suppress(OSError):
        path.unlink()


def _load(path: Path) -> UpRecord | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return UpRecord.from_json(data)
    except (OSError, ValueError, TypeError):
        return None


def read_record(state_dir: str | Path) -> UpRecord | None:
    """The record of a live `up` on this state dir; None when absent, unreadable, or stale."""
    record = _load(record_path(state_dir))
    if record is None or not pid_alive(record.pid):
        return None
    return record


def now_ms() -> int:
    return int(time.time() * 1000)


class StoreHeld(RuntimeError):
    """Another process holds the store; the message names it and what to do."""

    def __init__(self, store: Path, pid: int | None) -> None:
        self.store = store
        self.pid = pid
        who = f"process {pid}" if pid else "another process"
        super().__init__(
            f"the store {store} is in use by {who} (a running nats-server for it); one store "
            "takes one server: connect to that one (it is found from --state-dir), or stop it "
            "first"
        )


@dataclass
class StoreLock:
    """An exclusive, non-blocking lock on a store folder; `release()` is idempotent."""

    store: Path
    _fd: int | None = None

    def acquire(self) -> StoreLock:
        self.store.mkdir(parents=True, exist_ok=True)
        path = self.store / LOCK_FILE
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_pid(fd)
            os.close(fd)
            raise StoreHeld(self.store, holder) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd
        return self

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)


def _read_pid(fd: int) -> int | None:
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        return int(os.read(fd, 32).decode().strip() or 0) or None
    except (OSError, ValueError):
        return None


def store_holder(store: str | Path) -> StoreHeld | None:
    """Whether another process holds `store` (checked without creating anything)."""
    path = Path(store) / LOCK_FILE
    if not path.is_file():
        return None
    fd = os.open(path, os.O_RDONLY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return StoreHeld(Path(store), _read_pid(fd))
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)
