"""`cotal-tui up --open` as a subprocess: URL line, provisioned streams, live seed, clean stop."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path
from typing import Any

import nats
from cli_process import CliProcess, pid_alive
from space_checks import assert_space_streams
from spaces import AuthSpace

from cotal_tui.server.process import EmbeddedServer, free_port
from waiting import wait_for, wait_for_sync


async def _quiet(exc: Exception) -> None:
    return None


async def _channel(url: str, space: str, key: str) -> dict[str, Any] | None:
    nc = await nats.connect(url, error_cb=_quiet)
    try:
        kv = await nc.jetstream().key_value(f"cotal_channels_{space}")
        try:
            return json.loads((await kv.get(key)).value)
        except Exception:  # noqa: BLE001 - missing key
            return None
    finally:
        await nc.close()


async def test_up_open_runs_provisions_watches_and_stops_cleanly(
    tmp_path: Path, procs: list[CliProcess]
) -> None:
    port = free_port()
    seed = tmp_path / "channels.json"
    seed.write_text(json.dumps({"channels": {"general": {"description": "first"}}}))
    up = CliProcess(
        ["up", "--open", "--space", "demo", "--port", str(port), "--channels", str(seed)],
        cwd=tmp_path,
    )
    procs.append(up)
    url = up.wait_line(r"^url: (nats://\S+)$").group(1)
    assert url == f"nats://127.0.0.1:{port}"
    server_pid = int(up.wait_line(r"nats-server started \(open mode, pid (\d+)").group(1))
    assert (tmp_path / ".cotal" / "store").is_dir()

    nc = await nats.connect(url, error_cb=_quiet)
    try:
        await assert_space_streams(nc, "demo")
    finally:
        await nc.close()
    assert await _channel(url, "demo", "general") == {"description": "first"}

    # A live edit is re-applied (merged over the stored value).
    up.wait_line(r"watching .*channels.json for edits")
    seed.write_text(json.dumps({"channels": {"general": {"deliveryClass": "live"}}}))
    merged = {"description": "first", "deliveryClass": "live"}

    async def edited() -> bool:
        return await _channel(url, "demo", "general") == merged

    await wait_for(edited, what="general to hold the edit merged over the seed")
    # A bad edit is reported and writes nothing.
    seed.write_text(json.dumps({"channels": {"general": {"deliveryClass": "sometimes"}}}))
    up.wait_line(r'✗ .*channel "general".*invalid deliveryClass.*nothing was written')
    assert await _channel(url, "demo", "general") == {
        "description": "first",
        "deliveryClass": "live",
    }
    # An editor-style save (write a temp file, rename it over) is picked up too.
    tmp = tmp_path / ".channels.json.swp"
    tmp.write_text(json.dumps({"channels": {"review": {"replay": False}}}))
    os.replace(tmp, seed)

    async def renamed() -> bool:
        return await _channel(url, "demo", "review") == {"replay": False}

    await wait_for(renamed, what="the renamed-over channels file to reach the registry")

    assert up.terminate() == 0
    assert "nats-server stopped" in up.output
    wait_for_sync(lambda: not pid_alive(server_pid), what=f"nats-server pid {server_pid} to exit")


async def test_up_open_provisions_a_server_that_already_runs(
    nats_server: EmbeddedServer, tmp_path: Path, procs: list[CliProcess]
) -> None:
    up = CliProcess(
        ["up", "--open", "--space", "shared", "--port", str(nats_server.port)], cwd=tmp_path
    )
    procs.append(up)
    assert up.proc.wait(timeout=30) == 0, up.output
    assert "already running" in up.output
    assert "nats-server started" not in up.output
    nc = await nats.connect(nats_server.url, error_cb=_quiet)
    try:
        await assert_space_streams(nc, "shared")
    finally:
        await nc.close()


def test_up_server_records_the_server_list_for_the_other_commands(
    nats_server: EmbeddedServer, tmp_path: Path, procs: list[CliProcess]
) -> None:
    """`up --server` writes the state dir's up.json while it runs, as `up` and `up --cluster`
    do: status and the console find the server list from it without --server; a second `up`
    on the state dir does not overwrite it; it is removed on exit, the server left running."""
    from cotal_tui.cli import build_parser
    from cotal_tui.commands.console import session_options
    from cotal_tui.server.state import read_record

    state = tmp_path / "state"
    url = nats_server.url
    up = CliProcess(
        ["up", "--open", "--server", url, "--space", "ext", "--state-dir", str(state)],
        cwd=tmp_path,
    )
    procs.append(up)
    up.wait_line(r"running in the foreground", timeout=60)
    record = read_record(state)
    assert record is not None, f"no up.json in {state}: {up.output}"
    assert (record.pid, record.url, record.space) == (up.proc.pid, url, "ext"), record
    assert (record.port, record.mode, record.external, record.nodes) == (
        nats_server.port, "open", True, ()
    ), record  # fmt: skip
    status = CliProcess(["status", "--json", "--space", "ext", "--state-dir", str(state)], tmp_path)
    procs.append(status)
    assert status.proc.wait(timeout=60) in (0, 1, 2, 3), status.output
    snap = json.loads(status.output[status.output.index("{") :])
    assert snap["server"] == url and snap["roster"]["view"] == "current", snap["server"]
    args = build_parser().parse_args(["console", "--space", "ext", "--state-dir", str(state)])
    assert session_options(args).server == url
    # Another `up` on the same state dir: a single server is refused (it would take the
    # record), a second `up --server` provisions but leaves the record as it is.
    single = CliProcess(
        ["up", "--open", "--port", str(free_port()), "--state-dir", str(state)], cwd=tmp_path
    )
    procs.append(single)
    assert single.proc.wait(timeout=30) == 2, single.output
    assert f"`cotal-tui up --server` (pid {up.proc.pid}) runs from {state}" in single.output
    again = CliProcess(
        ["up", "--open", "--server", url, "--space", "ext", "--state-dir", str(state)],
        cwd=tmp_path,
    )
    procs.append(again)
    again.wait_line(r"up\.json left as it is: `cotal-tui up` \(pid \d+\) runs from", timeout=60)
    again.wait_line(r"running in the foreground", timeout=30)
    assert again.terminate() == 0, again.output
    assert read_record(state) == record
    assert up.terminate() == 0, up.output
    assert not (state / "up.json").exists()
    assert nats_server.running and "Traceback" not in up.output + again.output


def test_up_refuses_a_bad_seed_before_starting_anything(
    tmp_path: Path, procs: list[CliProcess]
) -> None:
    seed = tmp_path / "channels.json"
    seed.write_text(json.dumps({"channels": {"a..b": {}}}))
    port = free_port()
    up = CliProcess(["up", "--open", "--port", str(port), "--channels", str(seed)], cwd=tmp_path)
    procs.append(up)
    assert up.proc.wait(timeout=30) == 2
    assert 'channel "a..b"' in up.output
    assert "nothing was started" in up.output
    assert not (tmp_path / ".cotal" / "store").exists()


def test_up_stops_cleanly_on_ctrl_c(tmp_path: Path, procs: list[CliProcess]) -> None:
    port = free_port()
    up = CliProcess(["up", "--open", "--port", str(port)], cwd=tmp_path)
    procs.append(up)
    server_pid = int(up.wait_line(r"nats-server started \(open mode, pid (\d+)").group(1))
    up.wait_line(r"running in the foreground")
    up.proc.send_signal(signal.SIGINT)
    assert up.proc.wait(timeout=15) == 0, up.output
    wait_for_sync(lambda: not pid_alive(server_pid), what=f"nats-server pid {server_pid} to exit")


async def test_up_reports_a_running_server_that_refuses_it_instead_of_hanging(
    auth_space: AuthSpace, tmp_path: Path, procs: list[CliProcess]
) -> None:
    up = CliProcess(["up", "--open", "--port", str(auth_space.server.port)], cwd=tmp_path)
    procs.append(up)
    assert up.proc.wait(timeout=30) == 1, up.output
    up.wait_line(r"already running")
    up.wait_line(r"✗ could not provision space 'main'.*Authorization Violation.*refused", timeout=5)
