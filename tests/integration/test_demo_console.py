"""The demo under the console model (DemoSource) and as the `cotal-tui demo --plain` process:
every agent's retries reach the Pending pane, the daemon section says when it will bind, the
operator joins and posts (and a mentioned agent answers), and the CLI leaves no child on SIGTERM."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from cotal_tui.console.model import ConsoleModel, ModelOptions
from cotal_tui.demo.console import DemoSource
from cotal_tui.demo.simulation import DemoSimulation, channel_seed
from cotal_tui.demo.timeline import Timeline
from cotal_tui.server.local import start_local_space
from waiting import wait_for, wait_for_sync

pytestmark = pytest.mark.timeout(90)
CLI = Path(sys.executable).with_name("cotal-tui")


async def test_demo_source_shows_the_cast_and_the_operator_can_join_and_post(
    tmp_path: Path,
) -> None:
    space = await start_local_space("demo", state_dir=tmp_path / "s", channels_seed=channel_seed())
    sim = DemoSimulation(space, agents=4, seed=5, timeline=Timeline.fast())
    source = model = None
    try:
        await sim.prepare()
        source = DemoSource(sim)
        model = ConsoleModel(source, options=ModelOptions(demo=True))
        before = model.tick()
        assert before.demo
        assert before.daemon is not None and not before.daemon.running
        assert "not bound yet" in (before.daemon.refused or "")
        await sim.start()
        await source.start()
        model.start()

        # ada's boot joins, seen from the operator's console, named for their owner
        rows = await wait_for(
            lambda: [r for r in model.tick().pending.rows if r.owner == "ada"],
            what="ada's boot joins in the Pending pane",
        )
        assert {r.channel for r in rows} == {"general", "review"}
        assert {r.operation for r in rows} == {"join"}
        if sim.daemon is None:  # "retry now" on ada's row wakes ada's own retry loop
            tried = next(r.attempt for r in rows if r.channel == "general")
            await source.retry_now("general", "join", "ada")
            await wait_for(
                lambda: all(
                    r.attempt > tried
                    for r in model.tick().pending.rows
                    if (r.owner, r.channel) == ("ada", "general")
                ),
                what="ada's woken boot join of #general to try again (or land)",
            )
        with pytest.raises(Exception, match="no pending leave retry"):
            await source.retry_now("general", "leave", "ada")
        await wait_for(
            lambda: (d := model.tick().daemon) is not None and d.running,
            what="the in-process daemon running",
            timeout=15,
        )
        await wait_for(
            lambda: not [r for r in model.tick().pending.rows if r.owner == "ada"],
            what="ada's boot joins resolved",
            timeout=15,
        )

        # the operator is on the roster, joins a durable channel and posts with a mention
        await wait_for(
            lambda: any(r.is_self and r.status != "offline" for r in model.tick().roster.rows),
            what="the operator on its own roster",
        )
        joined = await source.join("team.backend")
        assert joined.joined and joined.durable and joined.delivery_class == "durable"
        await source.post("general", "@bo can you check the release?", ("bo",))
        reply = await wait_for(
            lambda: [
                e
                for e in model.tick().feed.entries
                if e.sender_name == "bo" and "operator" in e.text and e.target == "general"
            ],
            what="bo answering the operator's mention",
            timeout=15,
        )
        assert reply[0].to_me
    finally:
        if model is not None:
            await model.stop()
        if source is not None:
            await source.stop()
        await asyncio.wait_for(sim.stop(), 30)
        space.stop()


def _children(pid: int) -> dict[int, str]:
    out: dict[int, str] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[1]) == pid and fields[0] != "Z":
                out[int(stat.parent.name)] = (stat.parent / "cmdline").read_bytes().decode()
        except (OSError, ValueError):
            continue
    return out


def test_cli_plain_tells_the_story_and_sigterm_leaves_no_child(tmp_path: Path) -> None:
    assert CLI.exists(), f"{CLI} is missing; install the package into this venv"
    log = tmp_path / "demo.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            [str(CLI), "demo", "--plain", "--fast", "--agents", "5", "--seed", "9"],
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=tmp_path,
            env={**os.environ, "TMPDIR": str(tmp_path)},
        )
        try:
            wanted = (
                "pending join #general (ada)",
                "resolved join #general (ada)",
                "offline gus (tester)",
                "pending leave #review (ivy)",
                "delivery no-responder",
                "resolved leave #review (ivy)",
            )

            def all_told() -> bool:
                assert proc.poll() is None, f"the demo exited early:\n{log.read_text()}"
                return all(w in log.read_text() for w in wanted)

            wait_for_sync(
                all_told,
                what=f"the plain stream to tell all of {wanted}",
                timeout=40,
                interval=0.1,
                describe=log.read_text,
            )
            assert list(tmp_path.glob("cotal-demo-*")), "the demo's temp state dir is missing"
            kids = _children(proc.pid)
            assert any("nats-server" in c for c in kids.values()), kids
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=30) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    left = {p: c for p, c in kids.items() if Path(f"/proc/{p}").exists() and _alive(p)}
    assert not left, f"left running after SIGTERM: {left}"
    assert not list(tmp_path.glob("cotal-demo-*")), "the demo's temp state dir was left behind"


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_cli_refuses_too_few_agents() -> None:
    out = subprocess.run([str(CLI), "demo", "--agents", "2"], capture_output=True, text=True)
    assert out.returncode == 2
    assert "--agents must be 3..64" in out.stderr
