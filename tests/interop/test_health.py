"""Scenario 7: our `status --json`, `check` and `console --plain` on a reference space, and the
reference's deliveryHealth (§5.9, as its connector computes it from the endpoint) on our space,
agree on the verdict — with a daemon serving, and after it stopped (SIGTERM releases lease.0).

Agreement table: our `serving` ⇔ the reference's `active` for a joined durable channel with a
membership; our `no-lease` ⇔ the reference's `degraded`. Since issue 10 our `serving` also needs
proof that the pipeline moves (the daemon's fan-out and reader backlogs), which an agent cred
cannot read: with one our surfaces say `unverified` (unknown, never green) where the reference
says `active`. A cred that may read them (our manager; the reference 0.6.0 manager) reads
`serving` on either space; a reference space has no dead-letter store, which is a known fact
(`deadLetterStore: false`), not an unknown.
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from pathlib import Path
from typing import Any

from cli_process import CliProcess
from conftest import RefSpace, start_our_daemon, start_our_space, start_ref_daemon, wait_cli_line
from refproc import NodeProcess

from waiting import wait_for


async def _cli(*args: str) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "cotal_tui",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 60)
    return int(proc.returncode or 0), out.decode()


async def _ours(url: str, space: str, creds: Path) -> dict[str, Any]:
    """Our three surfaces' verdict on the space."""
    conn = ("--server", url, "--space", space, "--creds", str(creds))
    code, out = await _cli("status", "--json", *conn)
    assert code == 0, out
    status = json.loads(out)
    check_code, check_line = await _cli("check", *conn)
    return {
        "status": status["lease"]["verdict"],
        "green": status["lease"]["green"],
        "check": check_code,
        "check_line": check_line.strip(),
    }


async def _ref_health(ref: Any, channel: str, want: str) -> dict[str, Any]:
    async def got() -> Any:
        h = await ref.call("health")
        return h if h["channels"].get(channel) == want else None

    return await wait_for(got, what=f"reference deliveryHealth of {channel} = {want}", timeout=30)


async def _plain_verdict(console: CliProcess, word: str) -> None:
    await wait_cli_line(console, rf"delivery {word}\b", timeout=30)


async def test_verdicts_agree_on_reference_space(
    ref_space: RefSpace,
    nodes: list[NodeProcess],
    clis: list[Any],
    tmp_path: Path,
    ref_agents: Any,
) -> None:
    """Scenario 7 × (a): our surfaces on a reference space with the reference daemon."""
    url, space = ref_space.url, ref_space.space
    daemon = await start_ref_daemon(nodes, ref_space.build, url, space, ref_space.delivery.creds)
    await daemon.wait_line(r"✓ delivery daemon up", timeout=30)
    probe = await ref_space.agent("probe", subscribe=["general"])
    bob_c = await ref_space.agent("bob", subscribe=["general"])
    bob = await ref_agents(
        ref_space.build, url, space, "bob", creds=bob_c.creds, channels=["general"]
    )
    console = CliProcess(
        ["console", "--plain", "--server", url, "--space", space, "--creds", str(probe.creds)],
        cwd=tmp_path,
    )
    clis.append(console)

    await _ref_health(bob, "general", "active")
    ours = await _ours(url, space, probe.creds)
    # The daemon answers; whether messages move cannot be proven here (issue 10): unknown.
    assert (ours["status"], ours["green"], ours["check"]) == ("unverified", False, 3), ours
    assert "delivery=unverified" in ours["check_line"], ours
    assert "may not read" in ours["check_line"], ours
    await _plain_verdict(console, "unverified")
    if ref_space.build == "0.6.0":
        # The reference's manager cred reads the progress figures of the reference daemon's
        # consumers; a space without our dead-letter store is a known fact there, not an
        # unknown, so the verdicts agree: serving ⇔ active. (0.9.0 has no manager: its
        # least-privilege provisioner may not even watch presence, so status cannot run on it.)
        priv = await _ours(url, space, ref_space.privileged.creds)
        assert (priv["status"], priv["green"], priv["check"]) == ("serving", True, 0), priv

    daemon.signal(signal.SIGTERM)
    assert await daemon.exited() == 0
    await _ref_health(bob, "general", "degraded")
    ours = await _ours(url, space, probe.creds)
    assert ours["status"] == "no-lease" and not ours["green"], ours
    assert ours["check"] in (1, 2) and "delivery=no-lease" in ours["check_line"], ours
    await _plain_verdict(console, "no-lease")


async def test_reference_health_agrees_on_our_space(
    ref_build: str, tmp_path: Path, clis: list[Any], ref_agents: Any
) -> None:
    """Scenario 7 × (b): the reference's deliveryHealth on our space with our daemon."""
    ours_space = await start_our_space(tmp_path, clis, daemon=False)
    cred = await ours_space.mint("daemon", profile="delivery")
    daemon = await start_our_daemon(clis, tmp_path, ours_space.url, ours_space.space, cred.creds)
    await wait_cli_line(daemon, r"✓ delivery: serving space", timeout=30)
    bob_c = await ours_space.mint("bob", "--subscribe", "general")
    probe = await ours_space.mint("probe", "--subscribe", "general")
    bob = await ref_agents(
        ref_build, ours_space.url, ours_space.space, "bob", creds=bob_c.creds, channels=["general"]
    )

    await _ref_health(bob, "general", "active")
    ours = await _ours(ours_space.url, ours_space.space, ours_space.manager_creds)
    assert (ours["status"], ours["green"], ours["check"]) == ("serving", True, 0), ours
    agent = await _ours(ours_space.url, ours_space.space, probe.creds)
    assert (agent["status"], agent["green"], agent["check"]) == ("unverified", False, 3), agent

    daemon.proc.send_signal(signal.SIGTERM)
    await wait_for(lambda: daemon.proc.poll() is not None, what="our daemon to exit", timeout=20)
    assert daemon.proc.returncode == 0
    await _ref_health(bob, "general", "degraded")
    ours = await _ours(ours_space.url, ours_space.space, probe.creds)
    assert ours["status"] == "no-lease" and not ours["green"], ours
