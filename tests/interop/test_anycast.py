"""Scenario 2: anycast by role — a task to `svc_<role>` reaches exactly one of the role's agents
when the role mixes our agents and reference agents (the shared `svc_<role>` work-queue durable).

(a) a reference-provisioned space (provisionAgent pre-creates the durable);
(b) our space (`cotal-tui mint --role` pre-creates it).
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from conftest import OurAgent, RefSpace, start_our_space
from refproc import RefEndpoint

from waiting import wait_for

TASKS = 12


async def _exactly_once(ours: OurAgent, ref: RefEndpoint, sender: Any) -> None:
    sent = [f"task-{i}" for i in range(TASKS)]
    for text in sent:
        await sender(text)

    def counts() -> Counter[str]:
        return Counter(ours.texts(to_service="worker")) + Counter(ref.texts(toService="worker"))

    await wait_for(
        lambda: sum(counts().values()) >= TASKS,
        what=f"all {TASKS} tasks to reach some worker",
        timeout=30,
    )
    got = counts()
    assert set(got) == set(sent) and all(n == 1 for n in got.values()), got
    print(
        f"\n[interop {ref.build}] anycast split: ours {len(ours.texts(to_service='worker'))}, "
        f"reference {len(ref.texts(toService='worker'))}"
    )


async def test_mixed_role_on_reference_space(
    ref_space: RefSpace, our_agents: Any, ref_agents: Any
) -> None:
    url, space = ref_space.url, ref_space.space
    w1 = await ref_space.agent("w1", role="worker")
    w2 = await ref_space.agent("w2", role="worker")
    boss_c = await ref_space.agent("boss")
    ours = await our_agents(url, space, "w1", role="worker", creds=w1.creds)
    ref = await ref_agents(ref_space.build, url, space, "w2", role="worker", creds=w2.creds)
    boss = await ref_agents(ref_space.build, url, space, "boss", creds=boss_c.creds)
    await _exactly_once(ours, ref, lambda t: boss.call("anycast", role="worker", text=t))


async def test_mixed_role_on_our_space(
    ref_build: str, tmp_path: Path, clis: list[Any], our_agents: Any, ref_agents: Any
) -> None:
    space = await start_our_space(tmp_path, clis)
    w1 = await space.mint("w1", "--role", "worker")
    w2 = await space.mint("w2", "--role", "worker")
    boss_c = await space.mint("boss")
    ours = await our_agents(space.url, space.space, "w1", role="worker", creds=w1.creds)
    ref = await ref_agents(ref_build, space.url, space.space, "w2", role="worker", creds=w2.creds)
    boss = await our_agents(space.url, space.space, "boss", creds=boss_c.creds)
    await _exactly_once(ours, ref, lambda t: boss.ep.send_anycast("worker", t))
