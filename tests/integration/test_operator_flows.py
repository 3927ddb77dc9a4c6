"""Everyday operator flows (issue 12): one store one server, refusals that write nothing, errors
that name the real cause, no tracebacks, input refused with the rule, and the server found from
the state dir. Each test runs `cotal-tui` as a real subprocess against real nats-servers."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from cli_process import CliProcess, pid_alive
from spaces import AuthSpace, SpaceHandle

from cotal_tui.server.process import EmbeddedServer, StoreInUse, free_port
from cotal_tui.server.state import UpRecord, read_record, write_record

COMMANDS = ("up", "mint", "status", "check", "daemon", "console", "demo")


def cli(
    *args: str, cwd: Path | None = None, env: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("COTAL_")}
    return subprocess.run(
        [sys.executable, "-m", "cotal_tui", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cwd,
        env={**clean, **(env or {})},
    )


def one_line_error(proc: subprocess.CompletedProcess[str]) -> str:
    """The whole of what the command said, asserted to be a single line and no traceback."""
    said = (proc.stdout + proc.stderr).strip()
    assert "Traceback" not in said, said
    assert len(said.splitlines()) == 1, f"expected one line, got:\n{said}"
    assert proc.returncode != 0, said
    return said


def tree(root: Path) -> dict[str, str]:
    """Every file under `root` with a hash of its content (folders as '<dir>')."""
    out: dict[str, str] = {}
    if not root.exists():
        return out
    for path in sorted(root.rglob("*")):
        rel = str(path.relative_to(root))
        out[rel] = "<dir>" if path.is_dir() else hashlib.sha256(path.read_bytes()).hexdigest()
    return out


@pytest.fixture
def up_space(tmp_path: Path) -> Iterator[tuple[CliProcess, Path, int]]:
    """`cotal-tui up` (auth mode) on a non-default free port with its own state dir."""
    state = tmp_path / "state"
    port = free_port()
    proc = CliProcess(["up", "--port", str(port), "--state-dir", str(state)], cwd=tmp_path)
    try:
        proc.wait_line(r"running in the foreground", timeout=60)
        yield proc, state, port
    finally:
        proc.terminate()
        proc.kill()


# --- 7. No tracebacks --------------------------------------------------------------------------


@pytest.fixture
def bad_creds(tmp_path: Path) -> dict[str, Path]:
    files = {
        "garbage": tmp_path / "garbage.creds",
        "empty": tmp_path / "empty.creds",
        "binary": tmp_path / "binary.creds",
        "missing": tmp_path / "missing.creds",
        "folder": tmp_path / "folder.creds",
    }
    files["garbage"].write_text("not a creds file\n")
    files["empty"].write_text("")
    files["binary"].write_bytes(bytes(range(256)) * 4)
    files["folder"].mkdir()
    return files


@pytest.mark.parametrize("command", ["status", "check", "console", "daemon"])
def test_bad_creds_files_get_one_line_and_an_exit_code(
    command: str, bad_creds: dict[str, Path], tmp_path: Path
) -> None:
    for kind, path in bad_creds.items():
        proc = cli(command, "--creds", str(path), "--server", "nats://127.0.0.1:1", cwd=tmp_path)
        said = one_line_error(proc)
        assert str(path) in said, f"{kind}: {said}"


def test_bad_creds_from_the_environment_named_as_such(bad_creds: dict[str, Path]) -> None:
    proc = cli("status", env={"COTAL_CREDS": str(bad_creds["garbage"])})
    said = one_line_error(proc)
    assert "$COTAL_CREDS" in said and "garbage.creds" in said


def test_up_state_dir_on_a_file_or_an_uncreatable_path(tmp_path: Path) -> None:
    a_file = tmp_path / "a-file"
    a_file.write_text("x")
    proc = cli("up", "--state-dir", str(a_file), "--port", str(free_port()))
    assert "not a folder" in one_line_error(proc)
    proc = cli("up", "--state-dir", str(a_file / "below"), "--port", str(free_port()))
    assert "cannot be created" in one_line_error(proc)
    assert a_file.read_text() == "x"


def test_an_unexpected_failure_is_one_line_not_a_traceback(tmp_path: Path) -> None:
    # A store folder that is a file reaches deep into the server start: whatever fails there,
    # the operator reads one line.
    store = tmp_path / "store-file"
    store.write_text("x")
    proc = cli(
        "up", "--open", "--state-dir", str(tmp_path / "s"), "--store-dir", str(store),
        "--port", str(free_port()),
    )  # fmt: skip
    said = one_line_error(proc)
    assert "--store-dir" in said


# --- 6. Errors name the real cause --------------------------------------------------------------


def test_refused_credentials_named_in_under_a_second(auth_space: AuthSpace, tmp_path: Path) -> None:
    from cotal_tui.server.auth import ensure_space_auth

    foreign = ensure_space_auth(tmp_path / "other-chain", auth_space.space).manager_creds_path()
    for extra in ([], ["--creds", str(foreign)]):
        started = time.monotonic()
        proc = cli("status", "--server", auth_space.url, "--space", auth_space.space, *extra)
        took = time.monotonic() - started
        said = one_line_error(proc)
        assert "refused" in said and "Authorization Violation" in said, said
        assert "is the server running" not in said
        # The command's own work (not the interpreter's start) is bounded; leave room for a
        # loaded machine but far below the old 5 s connect timeout.
        assert took < 4.0, f"took {took:.1f}s: {said}"


def test_unreachable_named_at_once(tmp_path: Path) -> None:
    port = free_port()
    started = time.monotonic()
    proc = cli("status", "--server", f"nats://127.0.0.1:{port}", cwd=tmp_path)
    took = time.monotonic() - started
    said = one_line_error(proc)
    assert "cannot reach NATS" in said and str(port) in said
    assert took < 4.0, f"took {took:.1f}s"
    started = time.monotonic()
    proc = cli("check", "--server", f"nats://127.0.0.1:{port}", cwd=tmp_path)
    took = time.monotonic() - started
    assert proc.returncode == 2 and "link=unreachable" in proc.stdout, proc.stdout
    assert took < 4.0, f"check took {took:.1f}s (its --timeout is 8)"


def test_wrong_space_named_by_status_check_and_daemon(auth_space: AuthSpace) -> None:
    manager = str(auth_space.manager_creds)
    args = ("--server", auth_space.url, "--space", "nosuch", "--creds", manager)
    status = cli("status", *args)
    assert "space 'nosuch' not found" in one_line_error(status)
    started = time.monotonic()
    check = cli("check", *args)
    took = time.monotonic() - started
    assert check.returncode == 2, check.stdout
    assert "link=wrong-space" in check.stdout and "'nosuch' not found" in check.stdout, check.stdout
    assert took < 6.0, f"check took {took:.1f}s to say the space is wrong"
    delivery = str(auth_space.auth.delivery_creds_path())
    daemon = cli("daemon", "--server", auth_space.url, "--space", "nosuch", "--creds", delivery)
    said = one_line_error(daemon)
    assert "minted for space" in said and auth_space.space in said, said
    assert "not a delivery profile" not in said


# --- 9. Input is validated, not rewritten ------------------------------------------------------


@pytest.mark.parametrize("space", ["bad space!", "a.b", "", "caf\u00e9"])
@pytest.mark.parametrize("command", ["up", "status", "check", "mint", "daemon", "console", "demo"])
def test_space_names_refused_with_the_rule(command: str, space: str, tmp_path: Path) -> None:
    args = [command, "--space", space]
    if command != "demo":
        args += ["--state-dir", str(tmp_path / "s")]
    if command == "mint":
        args.insert(1, "alice")
    proc = cli(*args, cwd=tmp_path)
    said = (proc.stdout + proc.stderr).strip()
    assert proc.returncode != 0, said
    assert f"invalid space name {space!r}" in said and "letters, digits" in said, said
    assert not (tmp_path / "s").exists(), "a refused space name wrote the state dir"


def test_mint_refuses_a_bad_name_and_writes_nothing(tmp_path: Path) -> None:
    state = tmp_path / "s"
    for name in ("bad name!", "a/b", "..", ""):
        proc = cli("mint", name, "--state-dir", str(state), "--no-provision")
        said = one_line_error(proc)
        assert "invalid name" in said and "letters, digits" in said, said
    assert not state.exists()


# --- 1. One store, one server; 10. the server found from the state dir -------------------------


def test_up_records_where_it_listens_and_removes_the_record_on_exit(tmp_path: Path) -> None:
    state = tmp_path / "state"
    port = free_port()
    proc = CliProcess(["up", "--port", str(port), "--state-dir", str(state)], cwd=tmp_path)
    try:
        proc.wait_line(r"running in the foreground", timeout=60)
        record = read_record(state)
        assert record is not None and record.url == f"nats://127.0.0.1:{port}"
        assert record.pid == proc.proc.pid and record.space == "main"
    finally:
        assert proc.terminate() == 0
    assert not (state / "up.json").exists()


def test_a_record_whose_pid_is_gone_is_ignored(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    assert not pid_alive(dead.pid)
    write_record(
        state,
        UpRecord(dead.pid, "nats://127.0.0.1:1", "127.0.0.1", 1, "main", "x", "auth", 0),
    )
    assert read_record(state) is None
    port = free_port()
    proc = cli(
        "status", "--state-dir", str(state), env={"COTAL_SERVER": f"nats://127.0.0.1:{port}"}
    )
    assert f":{port}" in one_line_error(proc)


def test_a_second_server_on_a_held_store_is_refused_naming_the_holder(tmp_path: Path) -> None:
    store = tmp_path / "store"
    first = EmbeddedServer(store_dir=str(store)).start()
    try:
        second = EmbeddedServer(store_dir=str(store))
        with pytest.raises(StoreInUse) as refused:
            second.start()
        assert f"process {os.getpid()}" in str(refused.value) and str(store) in str(refused.value)
        assert second.pid is None
    finally:
        first.close()
    again = EmbeddedServer(store_dir=str(store)).start()  # released on stop
    again.close()


def test_console_finds_up_on_a_non_default_port_and_starts_no_second_server(
    up_space: tuple[CliProcess, Path, int], tmp_path: Path
) -> None:
    up, state, port = up_space
    console = CliProcess(["console", "--plain", "--state-dir", str(state)], cwd=tmp_path)
    try:
        console.wait_line(rf"link connected .*:{port}", timeout=30)
        assert "started the embedded server" not in console.output
        second_up = cli("up", "--port", str(free_port()), "--state-dir", str(state))
        said = (second_up.stdout + second_up.stderr).strip()
        assert second_up.returncode == 2, said
        assert f"in use by process {up.proc.pid}" in said and "nothing was started" in said
    finally:
        console.terminate()
        console.kill()


def test_status_check_mint_find_the_server_without_repeating_it(
    up_space: tuple[CliProcess, Path, int], tmp_path: Path
) -> None:
    _, state, port = up_space
    sd = ("--state-dir", str(state))
    status = cli("status", "--json", *sd, cwd=tmp_path)
    assert status.returncode == 0, status.stderr
    snap = json.loads(status.stdout)
    assert snap["server"] == f"nats://127.0.0.1:{port}" and snap["roster"]["view"] == "current"
    mint = cli("mint", "alice", "--allow-publish", "general", *sd, cwd=tmp_path)
    assert mint.returncode == 0, mint.stderr
    assert "agent creds written" in mint.stdout and "provisioned" in mint.stdout, mint.stdout
    assert (state / "alice.creds").is_file()
    check = cli("check", "--timeout", "20", *sd, cwd=tmp_path)
    assert check.returncode == 0 and check.stdout.startswith("OK"), check.stdout


def _watch_consumers(url: str, creds: Path) -> dict[str, dict[str, float]]:
    """Per presence/channel-registry KV stream (what the pipeline's consumer-excess rule
    counts): each consumer's name → its inactive threshold in seconds."""
    import asyncio

    import nats

    from cotal_tui.protocol.names import channel_bucket, presence_bucket

    async def read() -> dict[str, dict[str, float]]:
        nc = await nats.connect(url, user_credentials=str(creds))
        try:
            js = nc.jetstream()
            out = {}
            for bucket in (presence_bucket("main"), channel_bucket("main")):
                infos = await js.consumers_info(f"KV_{bucket}")
                out[bucket] = {str(i.name): float(i.config.inactive_threshold or 0) for i in infos}
            return out
        finally:
            await nc.close()

    return asyncio.run(read())


def test_back_to_back_checks_leave_no_watch_consumers(
    up_space: tuple[CliProcess, Path, int], tmp_path: Path
) -> None:
    """One-shot readers delete the KV watch consumers they created when they exit (when the
    cred may), so back-to-back runs never pile up consumers on the presence and registry
    streams and trip the consumer-excess verdict; a least-privilege cred that may not delete
    them exits just as quietly (they lapse after their inactive threshold)."""
    _, state, port = up_space
    url = f"nats://127.0.0.1:{port}"
    manager = state / "auth" / "manager.main.creds"
    sd = ("--state-dir", str(state))
    baseline = _watch_consumers(url, manager)

    def leftovers() -> dict[str, dict[str, float]]:
        now = _watch_consumers(url, manager)
        return {b: {n: t for n, t in now[b].items() if n not in baseline[b]} for b in now}

    for run in range(8):
        said = cli("check", "--timeout", "20", "--creds", str(manager), *sd, cwd=tmp_path)
        assert said.returncode == 0 and said.stdout.startswith("OK"), (run, said.stdout)
        assert "consumer excess" not in said.stdout + said.stderr
        left = leftovers()
        assert not any(left.values()), f"check run {run} left watch consumers behind: {left}"
    status = cli("status", "--json", "--creds", str(manager), *sd, cwd=tmp_path)
    assert status.returncode == 0, status.stderr
    left = leftovers()
    assert not any(left.values()), f"status left watch consumers behind: {left}"
    # The default operator cred may not delete consumers (least privilege): no error, no
    # delay, and what it leaves lapses within the one-shot threshold, not the 5 s of a
    # long-lived watch.
    for reader in (("check", "--timeout", "20"), ("status", "--json")):
        for _ in range(3):
            said = cli(*reader, *sd, cwd=tmp_path)
            assert said.returncode == 0, said.stdout + said.stderr
            assert "consumer excess" not in said.stdout and said.stderr.strip() == "", said
            left = leftovers()
            lingering = {n: t for names in left.values() for n, t in names.items() if t > 1.0}
            assert not lingering, f"{reader[0]} left long-lived watch consumers: {lingering}"


def test_status_and_check_default_to_an_operator_cred_not_the_manager(
    up_space: tuple[CliProcess, Path, int], tmp_path: Path
) -> None:
    """Item 5: with no --creds, status and check read a serving space with an operator cred
    (minted under the state dir's auth folder), never the allow-all manager."""
    from cotal_tui.mesh.creds_claims import creds_claims

    _, state, _ = up_space
    sd = ("--state-dir", str(state))
    status = cli("status", "--json", *sd, cwd=tmp_path)
    assert status.returncode == 0, status.stderr
    snap = json.loads(status.stdout)
    operator = state / "auth" / "operator.main.creds"
    assert snap["connection"]["credential"] == "operator operator.main.creds", snap["connection"]
    allow = ((creds_claims(str(operator)) or {}).get("pub") or {}).get("allow") or []
    assert allow and ">" not in allow, "scoped, never allow-all"
    assert snap["lease"]["verdict"] == "serving" and snap["lease"]["responder"] == "answered", snap[
        "lease"
    ]
    check = cli("check", "--timeout", "20", *sd, cwd=tmp_path)
    assert check.returncode == 0 and check.stdout.startswith("OK"), check.stdout
    # `mint --profile operator` provisions it like an agent; narrowing flags are refused.
    minted = cli("mint", "desk", "--profile", "operator", *sd, cwd=tmp_path)
    assert minted.returncode == 0, minted.stderr
    assert "operator creds written" in minted.stdout and "provisioned" in minted.stdout
    narrowed = cli("mint", "x", "--profile", "operator", "--allow-publish", "general", *sd)
    assert "--allow-publish: not for the operator profile" in one_line_error(narrowed)
    assert not (state / "x.creds").exists()
    # An explicit cred still wins, and says so.
    manager = state / "auth" / "manager.main.creds"
    explicit = cli("status", "--json", "--creds", str(manager), *sd, cwd=tmp_path)
    assert json.loads(explicit.stdout)["connection"]["credential"] == "manager manager.main.creds"


def test_environment_fallbacks(up_space: tuple[CliProcess, Path, int], tmp_path: Path) -> None:
    _, state, port = up_space
    manager = state / "auth" / "manager.main.creds"
    env = {
        "COTAL_SERVER": f"nats://127.0.0.1:{port}",
        "COTAL_SPACE": "main",
        "COTAL_CREDS": str(manager),
    }
    # No state dir at all in this cwd: everything comes from the environment.
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    proc = cli("status", "--json", cwd=elsewhere, env=env)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["server"] == env["COTAL_SERVER"]
    proc = cli("status", cwd=elsewhere, env={**env, "COTAL_SPACE": "nosuch"})
    assert "'nosuch' not found" in one_line_error(proc)


def test_daemon_space_defaults_to_main(open_space: SpaceHandle) -> None:
    from cotal_tui.cli import build_parser
    from cotal_tui.commands.common import resolve_target

    args = build_parser().parse_args(["daemon", "--server", open_space.url])
    assert resolve_target(args).space == "main"


def test_version_everywhere() -> None:
    from cotal_tui import __version__

    for args in ([], *([c] for c in COMMANDS)):
        proc = cli(*args, "--version")
        assert proc.returncode == 0 and proc.stdout.strip().startswith(
            f"cotal-tui {__version__}"
        ), (args, proc.stdout, proc.stderr)


@pytest.mark.parametrize("command", ["", *COMMANDS])
def test_help_has_an_example_and_no_internal_references(command: str) -> None:
    proc = cli(*([command] if command else []), "--help")
    assert proc.returncode == 0
    text = proc.stdout
    assert "example:" in text, text
    for internal in ("§", "`", "cotal_tui", ".py", "Plane-3", "PROTOCOL"):
        assert internal not in text, f"{command} --help mentions {internal!r}:\n{text}"
    if command == "check":
        assert "started when" not in text and "is started" not in text, text


# --- 3. Half-written state on refusal ----------------------------------------------------------


def test_refusals_leave_the_state_dir_as_it_was(
    up_space: tuple[CliProcess, Path, int], tmp_path: Path
) -> None:
    _, state, port = up_space
    before = tree(state)
    for args, why in (
        (["--space", "other", "--port", str(port)], "cannot serve a new space 'other'"),
        (["--port", "99999"], "between 1 and 65535"),
        (["--port", "-1"], "between 1 and 65535"),
        (["--port", str(free_port())], "in use by process"),
    ):
        started = time.monotonic()
        proc = cli("up", "--state-dir", str(state), *args)
        said = (proc.stdout + proc.stderr).strip()
        assert proc.returncode == 2, said
        assert why in said, said
        assert len(said.splitlines()) == 1, said
        assert time.monotonic() - started < 8, f"{args} took too long to refuse"
        after = tree(state)
        assert after == before, f"{args} changed the state dir: {set(after) ^ set(before)}"
    fresh = tmp_path / "fresh"
    proc = cli("up", "--state-dir", str(fresh), "--port", "99999")
    assert proc.returncode == 2 and not fresh.exists()


def test_up_on_a_port_held_by_something_else_writes_nothing(tmp_path: Path) -> None:
    import socket

    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        state = tmp_path / "s"
        proc = cli("up", "--state-dir", str(state), "--port", str(port))
        said = one_line_error(proc)
        assert f"cannot listen on 127.0.0.1:{port}" in said
        assert not state.exists()


def test_console_names_a_wrong_space_not_unreachable(auth_space: AuthSpace, tmp_path: Path) -> None:
    console = CliProcess(
        ["console", "--plain", "--server", auth_space.url, "--space", "nosuch",
         "--creds", str(auth_space.manager_creds), "--state-dir", str(tmp_path / "s")],
        cwd=tmp_path,
    )  # fmt: skip
    try:
        found = console.wait_line(r"link closed .*wrong space", timeout=30)
        assert "space 'nosuch' not found" in found.string, console.output
        assert "link unreachable" not in console.output, console.output
    finally:
        console.terminate()
        console.kill()
