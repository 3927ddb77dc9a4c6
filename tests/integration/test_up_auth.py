"""`cotal-tui up` (auth, the default) and `cotal-tui mint` as subprocesses, then plain clients."""

from __future__ import annotations

import json
import stat
import subprocess
import sys
from pathlib import Path

import nats
import pytest
from auth_client import connect_as, next_msg
from cli_process import CliProcess, pid_alive
from report_lines import Lines
from space_checks import assert_space_streams

from cotal_tui.server.nats_jwt import parse_creds
from cotal_tui.server.process import free_port
from waiting import wait_for_sync


async def _quiet(exc: Exception) -> None:
    return None


def _mint(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cotal_tui", "mint", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
    )


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


async def test_up_auth_then_mint_then_plain_clients_get_their_profile(
    tmp_path: Path, procs: list[CliProcess]
) -> None:
    port = free_port()
    url = f"nats://127.0.0.1:{port}"
    up = CliProcess(["up", "--space", "demo", "--port", str(port)], cwd=tmp_path)
    procs.append(up)
    assert up.wait_line(r"^url: (\S+)$").group(1) == url
    server_pid = int(up.wait_line(r"nats-server started \(auth mode, pid (\d+)").group(1))

    state = tmp_path / ".cotal"
    auth_json = state / "auth" / "auth.json"
    for private in (
        auth_json,
        state / "auth" / "server.conf",
        state / "auth" / "manager.demo.creds",
    ):
        assert _mode(private) == 0o600, private
    assert _mode(state) == 0o700 and _mode(state / "auth") == 0o700
    conf = (state / "auth" / "server.conf").read_text()
    assert "max_control_line: 65536" in conf and "resolver: MEMORY" in conf
    operator_seed = json.loads(auth_json.read_text())["operator"]["seed"]

    # No anonymous access in auth mode.
    with pytest.raises(Exception):  # noqa: B017 - nats-py raises its own auth error types
        await nats.connect(url, error_cb=_quiet, allow_reconnect=False, max_reconnect_attempts=1)

    done = _mint(
        tmp_path,
        "alice",
        "--profile", "agent",
        "--space", "demo",
        "--server", url,
        "--subscribe", "general",
        "--allow-subscribe", "general", "review.>",
        "--allow-publish", "general",
        "--role", "reviewer",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    alice_id = done.stdout.strip().splitlines()[-1]
    creds = state / "alice.creds"
    assert _mode(creds) == 0o600
    assert parse_creds(creds.read_text()).public == alice_id
    assert alice_id.startswith("U") and len(alice_id) == 56

    refused = _mint(
        tmp_path, "bad", "--profile", "agent", "--space", "demo", "--server", url,
        "--subscribe", "secret", "--allow-subscribe", "general",
    )  # fmt: skip
    assert refused.returncode == 2
    assert '"secret"' in refused.stderr and "allowSubscribe" in refused.stderr
    assert not (state / "bad.creds").exists()

    obs_done = _mint(tmp_path, "watch", "--profile", "observer", "--space", "demo")
    assert obs_done.returncode == 0, obs_done.stderr
    observer_id = obs_done.stdout.strip().splitlines()[-1]

    alice = await connect_as(url, creds, alice_id)
    observer = await connect_as(url, state / "watch.creds", observer_id)
    try:
        await assert_space_streams_as_manager(url, state / "auth" / "manager.demo.creds")
        live = await alice.sub_accepted("cotal.demo.chat.*.general")
        tap = await observer.sub_accepted("cotal.demo.chat.>")
        await alice.sub_refused("cotal.demo.chat.*.secret")
        seq = await alice.js_publish(f"cotal.demo.chat.{alice_id}.general", b'{"hi":1}')
        assert seq >= 1
        assert (await next_msg(live)).data == b'{"hi":1}'
        assert (await next_msg(tap)).data == b'{"hi":1}'
        await alice.js_publish_denied(f"cotal.demo.chat.{alice_id}.review.x")
        await observer.js_publish_denied(f"cotal.demo.chat.{observer_id}.general")
        await alice.request("$JS.API.CONSUMER.INFO.TASK_demo.svc_reviewer")
        await alice.request_denied("$JS.API.STREAM.INFO.INBOX_demo")
    finally:
        await alice.close()
        await observer.close()

    assert up.terminate() == 0
    wait_for_sync(lambda: not pid_alive(server_pid), what=f"nats-server pid {server_pid} to exit")

    # Re-running `up` reuses the same trust chain: same operator, and old creds still work.
    up2 = CliProcess(["up", "--space", "demo", "--port", str(port)], cwd=tmp_path)
    procs.append(up2)
    up2.wait_line(r"^url: ")
    assert "0 created, 11 already in place" in up2.output
    assert json.loads(auth_json.read_text())["operator"]["seed"] == operator_seed
    again = await connect_as(url, creds, alice_id)
    try:
        await again.sub_accepted("cotal.demo.chat.*.general")
        await again.request(f"$JS.API.CONSUMER.INFO.DM_demo.dm_{alice_id}")
    finally:
        await again.close()
    assert up2.terminate() == 0


async def assert_space_streams_as_manager(url: str, creds: Path) -> None:
    nc = await nats.connect(url, user_credentials=str(creds), error_cb=_quiet)
    try:
        await assert_space_streams(nc, "demo")
    finally:
        await nc.close()


def test_mint_without_a_trust_chain_says_how_to_create_one(tmp_path: Path) -> None:
    done = _mint(tmp_path, "x", "--profile", "observer", "--space", "nowhere")
    assert done.returncode == 2
    assert "no trust chain for space 'nowhere'" in done.stderr
    assert "cotal-tui up --space nowhere" in done.stderr


def test_mint_agent_needs_a_reachable_server_or_no_provision(tmp_path: Path) -> None:
    from cotal_tui.server.auth import ensure_space_auth

    ensure_space_auth(tmp_path / ".cotal", "main")
    dead = f"nats://127.0.0.1:{free_port()}"
    done = _mint(tmp_path, "a", "--profile", "agent", "--server", dead)
    assert done.returncode == 2
    assert "cannot reach" in done.stderr and "--no-provision" in done.stderr
    assert not (tmp_path / ".cotal" / "a.creds").exists()
    ok = _mint(tmp_path, "a", "--profile", "agent", "--no-provision", "--allow-publish", "general")
    assert ok.returncode == 0, ok.stderr
    claims = parse_creds((tmp_path / ".cotal" / "a.creds").read_text()).claims
    assert claims["name"] == "agent"
    assert "cotal.main.chat.*.general" in claims["nats"]["sub"]["allow"]


def _status_json(cwd: Path, url: str, creds: Path) -> dict[str, object]:
    done = subprocess.run(
        [sys.executable, "-m", "cotal_tui", "status", "--server", url, "--space", "demo",
         "--creds", str(creds), "--json"],
        cwd=cwd, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)  # type: ignore[no-any-return]


async def test_up_runs_the_delivery_daemon_and_reports_it_once_serving(
    tmp_path: Path, procs: list[CliProcess]
) -> None:
    port = free_port()
    url = f"nats://127.0.0.1:{port}"
    up = CliProcess(["up", "--space", "demo", "--port", str(port)], cwd=tmp_path)
    procs.append(up)
    server_pid = int(up.wait_line(r"nats-server started \(auth mode, pid (\d+)").group(1))
    serving = up.wait_line(r"delivery daemon serving space 'demo' as (U[A-Z0-9]{55})", timeout=40)
    daemon_id = serving.group(1)
    delivery_creds = tmp_path / ".cotal" / "auth" / "delivery.demo.creds"
    assert _mode(delivery_creds) == 0o600
    claims = parse_creds(delivery_creds.read_text()).claims
    assert claims["name"] == "delivery" and claims["sub"] == daemon_id

    manager = tmp_path / ".cotal" / "auth" / "manager.demo.creds"  # may probe ctl.delivery
    lease = _status_json(tmp_path, url, manager)["lease"]
    assert isinstance(lease, dict)
    assert lease["holder"] == daemon_id and lease["ready"] is True
    assert lease["verdict"] == "serving" and lease["green"] is True

    assert up.count(r"delivery daemon serving") == 1
    assert up.terminate() == 0
    assert "delivery daemon stopped (lease released)" in up.output
    wait_for_sync(lambda: not pid_alive(server_pid), what=f"nats-server pid {server_pid} to exit")
    assert not pid_alive(up.proc.pid)


async def test_up_delivery_defers_to_a_daemon_already_holding_the_lease(auth_space) -> None:
    """What `up` does when another daemon serves the space: says so, starts nothing, and the
    broker's client stays usable (run_up's loop goes on serving the broker either way)."""
    from cotal_tui.delivery.daemon import DeliveryDaemon
    from cotal_tui.mesh.connection import Connection
    from cotal_tui.server.up_delivery import UpDelivery

    other = await auth_space.mint("d1", "delivery")
    conn = Connection(auth_space.url, "d1", other.public_key, creds=str(other.path))
    await conn.connect()
    holder = DeliveryDaemon(conn, auth_space.space, other.public_key)
    await holder.start()
    manager = await nats.connect(
        auth_space.url, user_credentials=str(auth_space.manager_creds), error_cb=_quiet
    )
    report = Lines()
    delivery = UpDelivery(auth_space.url, auth_space.space, auth_space.auth, manager, report)
    try:
        verdict, _ = await delivery.verdict()
        assert verdict.green and verdict.holder == other.public_key  # the probe sees the holder
        assert await delivery.start(ready_timeout=5) is False
        (line,) = report.lines
        assert line.startswith("info delivery daemon not started: a live lease already exists")
        assert other.public_key in line and "The broker keeps serving" in line
        assert delivery.conn is None  # its own connection is closed again
        assert holder.state.status == "serving"
        assert manager.is_connected
    finally:
        await delivery.stop()
        await manager.close()
        await holder.stop()
        await conn.close()
    report2 = Lines()
    manager2 = await nats.connect(
        auth_space.url, user_credentials=str(auth_space.manager_creds), error_cb=_quiet
    )
    delivery2 = UpDelivery(auth_space.url, auth_space.space, auth_space.auth, manager2, report2)
    try:  # the lease was released: now `up`'s own daemon binds and is confirmed serving
        assert await delivery2.start(ready_timeout=10) is True
        assert report2.lines[-1].startswith(
            f"ok delivery daemon serving space '{auth_space.space}'"
        )
    finally:
        await delivery2.stop()
        await manager2.close()


def test_up_no_daemon_runs_none(tmp_path: Path, procs: list[CliProcess]) -> None:
    port = free_port()
    url = f"nats://127.0.0.1:{port}"
    up = CliProcess(["up", "--space", "demo", "--port", str(port), "--no-daemon"], cwd=tmp_path)
    procs.append(up)
    up.wait_line(r"no delivery daemon \(--no-daemon\)")
    manager = tmp_path / ".cotal" / "auth" / "manager.demo.creds"
    lease = _status_json(tmp_path, url, manager)["lease"]
    assert isinstance(lease, dict) and lease["verdict"] == "no-lease"
    assert up.count(r"delivery daemon serving") == 0
    assert up.terminate() == 0
