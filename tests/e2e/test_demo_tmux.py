"""`cotal-tui demo` in a real terminal (tmux): all five panes and the DEMO badge render, a key
changes the screen, and quitting (``q``, Ctrl-C, or SIGTERM) exits 0 leaving no nats-server or any
other process of the demo running."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from waiting import wait_for_sync

pytestmark = [
    pytest.mark.timeout(120),
    pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed"),
]

CLI = Path(sys.executable).with_name("cotal-tui")
WIDTH, HEIGHT = 200, 50
"""Pinned for the app too (COLUMNS/LINES): under load, Textual's first size read in a fresh tmux
pane sometimes falls back to 80x24 and no SIGWINCH follows, which would squeeze the panes."""
ADA_JOIN = re.compile(r"join\W+ada\W+#general")
"""ada's boot join row in the Pending pane: operation, owner column, channel."""
PANES = ("Roster", "Channels", "Delivery lease", "Pending joins & leaves", "Feed")


class Tmux:
    def __init__(self, socket: str) -> None:
        self.socket = socket
        self.owned: set[int] = set()
        """Processes the test saw under the pane: killed in teardown if a failure left them."""

    def __call__(self, *args: str) -> str:
        out = subprocess.run(
            ["tmux", "-L", self.socket, "-f", "/dev/null", *args],
            capture_output=True,
            text=True,
            timeout=10,
        )
        if out.returncode != 0:
            raise RuntimeError(f"tmux {' '.join(args)} failed: {out.stderr.strip()}")
        return out.stdout

    def screen(self) -> str:
        return self("capture-pane", "-p", "-t", "demo")

    def described(self) -> str:
        size = self.pane("pane #{pane_width}x#{pane_height}, pid #{pane_pid}, dead #{pane_dead}")
        return f"{size}\n{self.screen()}"

    def pane(self, fmt: str) -> str:
        return self("display-message", "-p", "-t", "demo", fmt).strip()


@pytest.fixture
def tmux() -> Iterator[Tmux]:
    t = Tmux(f"cotal-e2e-{uuid.uuid4().hex[:10]}")
    try:
        yield t
    finally:
        subprocess.run(
            ["tmux", "-L", t.socket, "kill-server"], capture_output=True, timeout=10, check=False
        )
        for pid in t.owned:
            if alive(pid):
                os.kill(pid, signal.SIGKILL)


def poll(
    predicate: Callable[[], object],
    what: str,
    timeout: float = 30.0,
    describe: Callable[[], str] | None = None,
) -> object:
    return wait_for_sync(predicate, what=what, timeout=timeout, interval=0.1, describe=describe)


def _stat(pid: int) -> tuple[str, int] | None:
    """(state, ppid) of a process, None when it no longer exists."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return fields[0], int(fields[1])


def descendants(root: int) -> dict[int, str]:
    """Every live process under ``root`` (pid → command line)."""
    parent: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            st = _stat(int(entry.name))
            if st is not None and st[0] != "Z":
                parent[int(entry.name)] = st[1]
    found: dict[int, str] = {}
    frontier = [root]
    while frontier:
        pid = frontier.pop()
        for child, ppid in parent.items():
            if ppid == pid and child not in found:
                try:
                    cmd = Path(f"/proc/{child}/cmdline").read_bytes().replace(b"\0", b" ")
                except OSError:
                    continue
                found[child] = cmd.decode(errors="replace").strip()
                frontier.append(child)
    return found


def exit_status(tmux: Tmux, pid: int) -> str | None:
    """ "exit N" / "signal N" once the pane's process is dead: from tmux once it has reaped it,
    else from the zombie's /proc stat (field 52, the wait status); None while it runs."""
    reaped = tmux.pane("#{pane_dead_status}/#{pane_dead_signal}")
    code, sig = reaped.split("/")
    if code:
        return f"exit {code}"
    if sig:
        return f"signal {sig}"
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    if fields[0] != "Z":
        return None
    wait = int(fields[49])  # field 52 of stat; fields here start at field 3
    return f"exit {wait >> 8}" if wait & 0x7F == 0 else f"signal {wait & 0x7F}"


def alive(pid: int) -> bool:
    st = _stat(pid)
    return st is not None and st[0] != "Z"


@pytest.mark.parametrize("quit_key", ["q", "C-c", "SIGTERM"])
def test_demo_renders_reacts_and_quits_clean(tmux: Tmux, tmp_path: Path, quit_key: str) -> None:
    assert CLI.exists(), f"{CLI} is missing; install the package into this venv (make install)"
    story = quit_key == "q"
    tmux(
        "new-session", "-d", "-x", str(WIDTH), "-y", str(HEIGHT), "-s", "demo", "-c", str(tmp_path),
        f"exec env COLUMNS={WIDTH} LINES={HEIGHT} {CLI} demo --seed 11{'' if story else ' --fast'}",
        ";", "set-option", "-t", "demo", "remain-on-exit", "on",
        ";", "set-option", "-t", "demo", "window-size", "manual",
    )  # fmt: skip
    pane_pid = int(tmux.pane("#{pane_pid}"))
    tmux.owned.add(pane_pid)

    def rendered() -> bool:
        screen = tmux.screen()
        return all(f"─ {title} ─" in screen for title in PANES) and "DEMO" in screen

    poll(rendered, "all five pane titles and the DEMO badge", describe=tmux.described)

    def with_server() -> dict[int, str] | None:
        procs = descendants(pane_pid)
        return procs if any("nats-server" in c for c in procs.values()) else None

    children = poll(with_server, "the demo's nats-server child")
    assert isinstance(children, dict)
    tmux.owned.update(children)
    assert "Keys active here" not in tmux.screen()

    if story:
        # the boot-before-daemon case, as the operator sees it: ada's boot join waits (6 s on the
        # default timeline), then resolves; the other quit paths use --fast and skip this part
        poll(
            lambda: ADA_JOIN.search(tmux.screen()),
            "ada's pending boot join",
            describe=tmux.described,
        )
    poll(lambda: "SERVING" in tmux.screen(), "the daemon serving", describe=tmux.described)
    poll(
        lambda: not ADA_JOIN.search(tmux.screen()),
        "ada's boot join resolved",
        describe=tmux.described,
    )

    tmux("send-keys", "-t", "demo", "?")
    poll(lambda: "Keys active here" in tmux.screen(), "the help after ?", describe=tmux.described)
    tmux("send-keys", "-t", "demo", "Escape")
    poll(
        lambda: "Keys active here" not in tmux.screen(),
        "help closed by Esc",
        describe=tmux.described,
    )
    poll(rendered, "the main screen back after Esc", describe=tmux.described)

    if quit_key == "SIGTERM":  # what a process manager or `kill` does
        os.kill(pane_pid, signal.SIGTERM)
    else:
        tmux("send-keys", "-t", "demo", quit_key)
    poll(
        lambda: tmux.pane("#{pane_dead}") == "1",
        f"the demo exited after {quit_key}",
        describe=tmux.described,
    )
    status = poll(lambda: exit_status(tmux, pane_pid), "the demo's exit status")
    assert status == "exit 0", status
    assert not alive(pane_pid)
    left = {pid: cmd for pid, cmd in children.items() if alive(pid)}
    assert not left, f"processes of the demo still running after {quit_key}: {left}"
