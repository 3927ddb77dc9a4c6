"""Console start time by credential profile: from `ConsoleSession.start()` to a current roster.

Issue 12 item 4's target: under 2 s with any profile (an observer cred used to loop on a DM
consumer it may not bind; an admin cred with a boot channel waited out a 30 s durable join).
One auth-mode space with its delivery daemon; each profile starts a fresh session N times.

    .venv/bin/python bench/console_start.py [--runs 5]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cotal_tui.console.model import ConsoleModel  # noqa: E402
from cotal_tui.console.session import ConsoleSession, SessionOptions  # noqa: E402
from cotal_tui.delivery.daemon import DeliveryDaemon  # noqa: E402
from cotal_tui.mesh.connection import Connection  # noqa: E402
from cotal_tui.server.local import start_local_space  # noqa: E402

SPACE = "bench"
TARGET_S = 2.0


async def start_once(options: SessionOptions, timeout: float = 20.0) -> float:
    """Seconds until the endpoint has started (joins included) and the roster is current."""
    session = ConsoleSession(options)
    model = ConsoleModel(session.source)
    t0 = time.perf_counter()
    try:
        await session.start()
        while True:
            snap = model.tick()
            started = session._starter is not None and session._starter.done()
            if started and snap.connection.state == "connected" and snap.roster.view == "current":
                return time.perf_counter() - t0
            if time.perf_counter() - t0 > timeout:
                print(
                    f"  no start after {timeout:g}s: started={started} "
                    f"link={snap.connection.state} roster={snap.roster.view} "
                    f"error={session.source.start_error}",
                    file=sys.stderr,
                )
                return float("inf")
            await asyncio.sleep(0.01)
    finally:
        await session.stop()


async def main(runs: int) -> int:
    with tempfile.TemporaryDirectory(prefix="cotal-bench-start-") as tmp:
        space = await start_local_space(SPACE, state_dir=Path(tmp) / ".cotal", port=0)
        conn = Connection(space.url, "delivery", "bench-dlv", creds=str(space.manager_creds))
        await conn.connect()
        daemon = DeliveryDaemon(conn, SPACE, "bench-dlv")
        await daemon.start()
        try:
            agent = await space.mint("agent", "agent", allow_subscribe=[">"], allow_publish=[">"])
            observer = await space.mint("observer", "observer")
            admin = await space.mint("admin", "admin")
            base = {"server": space.url, "space": SPACE, "channels": ["general"],
                    "state_dir": str(space.state_dir)}  # fmt: skip
            cases = {
                "agent": SessionOptions(**base, creds=str(agent.path)),
                "agent --read-only": SessionOptions(**base, creds=str(agent.path), read_only=True),
                "observer": SessionOptions(**base, creds=str(observer.path)),
                "admin": SessionOptions(**base, creds=str(admin.path)),
                "manager": SessionOptions(**base, creds=str(space.manager_creds)),
            }
            print(f"| profile           | median s | max s | target < {TARGET_S:g} s | met |")
            print("|-------------------|----------|-------|--------------|-----|")
            missed = False
            for label, options in cases.items():
                times = [await start_once(options) for _ in range(runs)]
                worst = max(times)
                met = worst < TARGET_S
                missed |= not met
                print(f"| {label:<17} | {statistics.median(times):8.2f} | {worst:5.2f} |"
                      f" {'':12} | {'yes' if met else 'no':<3} |")  # fmt: skip
        finally:
            with contextlib.suppress(Exception):
                await daemon.stop()
            await conn.close()
            space.stop()
    return 1 if missed else 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    sys.exit(asyncio.run(main(parser.parse_args().runs)))
