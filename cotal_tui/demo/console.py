"""The console over a running demo: the operator's ``MeshSource`` plus what only the demo knows.

A console normally sees its own endpoint's retry loops only. In the demo every simulated agent
runs in this process, so :class:`DemoSource` adds their pending boot joins and leave retries to
the Pending pane, each row naming its agent in ``PendingOp.owner`` (the pane's owner column), and
routes "retry now" on such a row to that agent. Until the demo binds its daemon, the daemon
section says when it will.
"""

from __future__ import annotations

from cotal_tui.console.adapter import MeshSource, RetryUnavailable
from cotal_tui.console.source import DaemonInput, PendingInput, PendingOp, PendingOperation
from cotal_tui.demo.simulation import DemoSimulation


class DemoSource(MeshSource):
    def __init__(self, sim: DemoSimulation, **kwargs: object) -> None:
        if sim.operator is None:
            raise RuntimeError("DemoSimulation.prepare() must run before the console source")
        super().__init__(sim.operator, server=sim.space.url, **kwargs)  # type: ignore[arg-type]
        self.sim = sim
        self._owned_since: dict[tuple[str, str, str], int] = {}

    def pending(self) -> PendingInput:
        own = super().pending()
        now = self.clock()
        ops = list(own.ops)
        seen: set[tuple[str, str, str]] = set()
        for owned in self.sim.pending_ops():
            if owned.owner == self.sim.operator_name:
                continue  # already in `own`
            p = owned.op
            operation = "join" if p.operation == "durableJoin" else "leave"
            key = (owned.owner, p.channel, operation)
            seen.add(key)
            ops.append(
                PendingOp(
                    p.channel,
                    operation,  # type: ignore[arg-type]
                    attempt=p.attempt,
                    next_retry_at=None if p.next_retry_at is None else int(p.next_retry_at * 1000),
                    since=self._owned_since.setdefault(key, now),
                    last_error=p.last_error,
                    owner=owned.owner,
                )
            )
        for key in list(self._owned_since):
            if key not in seen:
                del self._owned_since[key]
        return PendingInput(tuple(ops), observed_at=own.observed_at, error=own.error)

    def daemon(self) -> DaemonInput | None:
        if self.sim.daemon is None:
            left = max(0.0, self.sim.timeline.daemon_after_s - self.sim.elapsed())
            return DaemonInput(
                running=False,
                refused=(
                    f"not bound yet: the demo binds its in-process daemon in {left:.0f}s, so a "
                    "boot join can be seen waiting for it"
                ),
                observed_at=self.clock(),
            )
        self.delivery_daemon = self.sim.daemon
        if self.progress_via is None:  # read the pipeline's progress with the daemon's cred
            conn = self.sim.daemon.conn
            self.progress_via = (conn, getattr(conn, "creds", None))
        return super().daemon()

    async def retry_now(
        self, channel: str, operation: PendingOperation, owner: str | None = None
    ) -> None:
        if owner is None or owner == self.sim.operator_name:
            return await super().retry_now(channel, operation)
        agent = self.sim.agents.get(owner)
        if agent is None or agent.crashed:
            raise RetryUnavailable(f"{owner} is not running; nothing to retry")
        await MeshSource(agent.endpoint).retry_now(channel, operation)
        self.poke()
