"""Real terminal: `cotal-tui console` under tmux renders the five panes, reacts to keys, and `q`
exits cleanly (the in-process daemon releases the lease, no process is left behind)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from cotal_tui.commands.check import check
from cotal_tui.console.session import SessionOptions
from cotal_tui.server.local import start_local_space
from waiting import wait_for_sync

pytestmark = [
    pytest.mark.timeout(90),
    pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed"),
]
TITLES = ("Roster", "Channels", "Delivery lease", "Pending joins & leaves", "Feed")


SOCKET = f"cotal-test-{uuid.uuid4().hex[:8]}"
"""A private tmux server: its own default size, and killing it touches nobody else's sessions."""


def tmux(*args: str) -> str:
    return subprocess.run(
        ["tmux", "-L", SOCKET, *args], check=True, capture_output=True, text=True, timeout=10
    ).stdout


async def test_console_in_tmux(tmp_path: Path):
    space = await start_local_space("tmx", state_dir=tmp_path / ".cotal", port=0)
    session = f"cotal-test-{uuid.uuid4().hex[:8]}"
    pid_file = tmp_path / "console.pid"
    exe = Path(sys.executable).with_name("cotal-tui")
    cmd = (
        f"echo $$ > {pid_file}; unset COLUMNS LINES; exec {exe} console --server {space.url} "
        f"--space tmx "
        f"--creds {space.manager_creds} --daemon --state-dir {tmp_path / '.cotal'}"
    )
    try:
        tmux("-f", "/dev/null", "new-session", "-d", "-s", session, "-x", "160", "-y", "44", cmd)

        def screen() -> str:
            return tmux("capture-pane", "-p", "-t", session)

        wait_for_sync(lambda: "SERVING" in screen(), what="the lease pane to read SERVING",
                      timeout=30)  # fmt: skip
        text = screen()
        for title in TITLES:
            assert f"─ {title} ─" in text, f"pane {title!r} not drawn"
        pid = int(pid_file.read_text())
        tmux("send-keys", "-t", session, ":")
        wait_for_sync(
            lambda: "command: join" in screen(), what="the : command line to open", timeout=30
        )
        tmux("send-keys", "-t", session, "-l", "post #general hello from tmux")
        tmux("send-keys", "-t", session, "Enter")
        wait_for_sync(
            lambda: "Posted to #general" in screen(), what="the post's notice", timeout=30
        )
        try:
            wait_for_sync(
                lambda: "hello from tmux" in screen(), what="our post in the feed", timeout=30
            )
        except AssertionError:
            print(screen())
            raise
        tmux("send-keys", "-t", session, "q")

        def gone() -> bool:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return True
            return False

        wait_for_sync(gone, what=f"the console process {pid} to exit after q", timeout=15)
        children = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True)
        assert children.stdout.strip() == "", f"children left behind: {children.stdout}"
        result = await check(
            SessionOptions(
                server=space.url,
                space="tmx",
                creds=str(space.manager_creds),
                observer=True,
                read_only=True,
            ),  # fmt: skip
            timeout=8,
        )
        assert "delivery=no-lease" in result.line, "q must release the in-process daemon's lease"
    finally:
        subprocess.run(["tmux", "-L", SOCKET, "kill-server"], capture_output=True)
        space.stop()


async def test_quitting_while_reconnecting_prints_no_traceback(tmp_path: Path):
    """Issue 12 item 7: `q` while the link is down ends cleanly, nothing on stderr after the
    screen (it used to print `RuntimeError: Event loop is closed`)."""
    space = await start_local_space("tmq", state_dir=tmp_path / ".cotal", port=0)
    agent = await space.mint("desk", "agent", allow_subscribe=[">"], allow_publish=[">"])
    session = f"cotal-test-{uuid.uuid4().hex[:8]}"
    pid_file = tmp_path / "console.pid"
    err_file = tmp_path / "console.err"
    exe = Path(sys.executable).with_name("cotal-tui")
    cmd = (
        f"echo $$ > {pid_file}; unset COLUMNS LINES; exec {exe} console --server {space.url} "
        f"--space tmq --creds {agent.path} --channel general --state-dir {tmp_path / '.cotal'} "
        f"2> {err_file}"
    )
    try:
        tmux("-f", "/dev/null", "new-session", "-d", "-s", session, "-x", "160", "-y", "44", cmd)

        # Textual draws on stderr, which goes to the file here: read the screen from there.
        def drawn() -> str:
            return err_file.read_bytes().decode(errors="replace") if err_file.exists() else ""

        wait_for_sync(lambda: "● connected" in drawn(), what="the console connected", timeout=30)
        pid = int(pid_file.read_text())
        space.server.stop()
        wait_for_sync(
            lambda: "reconnecting 3s" in drawn(),
            what="the console to be reconnecting for 3 s",
            timeout=30,
        )
        tmux("send-keys", "-t", session, "q")

        def gone() -> bool:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return True
            return False

        wait_for_sync(gone, what=f"the console process {pid} to exit after q", timeout=30)
        err = err_file.read_bytes().decode(errors="replace")
        tail = err[err.rfind("\x1b[?1049l") :] if "\x1b[?1049l" in err else err
        for bad in ("Traceback", "Event loop is closed", "Task was destroyed"):
            assert bad not in err, f"{bad!r} on stderr after quitting:\n{tail[-2000:]}"
    finally:
        subprocess.run(["tmux", "-L", SOCKET, "kill-server"], capture_output=True)
        space.stop()
