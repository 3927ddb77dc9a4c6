"""Who is in the demo space, on which channels, and what they say.

Everything here is data: the channel registry seed, the simulated agents (name, role, the
channels they boot on and may read), the three agents the scripted cases need, and the line
templates the chatter draws from. The simulation picks from these with a seeded
``random.Random``, so a seed gives the same cast and, per agent, the same sequence of actions.
"""

from __future__ import annotations

from dataclasses import dataclass

CHANNELS: dict[str, dict[str, object]] = {
    "general": {
        "deliveryClass": "durable",
        "replay": True,
        "description": "everyone: announcements, hand-offs, questions",
    },
    "review": {
        "deliveryClass": "durable",
        "replay": True,
        "description": "code review requests and verdicts",
    },
    "lounge": {
        "deliveryClass": "live",
        "replay": False,
        "description": "chit-chat; live only, nothing is kept for the offline",
    },
    "team.backend": {
        "deliveryClass": "durable",
        "replay": True,
        "description": "backend builders",
    },
}
"""The registry seed (PROTOCOL §3.3): three durable-class channels and one live-class."""

ALL_CHANNELS: tuple[str, ...] = tuple(CHANNELS)
DURABLE_CHANNELS: tuple[str, ...] = tuple(
    c for c, cfg in CHANNELS.items() if cfg["deliveryClass"] == "durable"
)
LIVE_CHANNELS: tuple[str, ...] = tuple(
    c for c, cfg in CHANNELS.items() if cfg["deliveryClass"] == "live"
)

ROLE_CHANNELS: dict[str, tuple[str, ...]] = {
    "planner": ("general", "review", "lounge"),
    "builder": ("general", "team.backend", "lounge"),
    "reviewer": ("general", "review"),
    "tester": ("general", "review", "lounge"),
    "ops": ("general", "team.backend"),
}
"""The channels an agent of each role boots on (its ``subscribe`` list)."""

EARLY_BIRD = "ada"
"""Boots before the delivery daemon: its durable boot joins wait in the reconcile loop."""
NARROWED = "ivy"
"""Loses ``review`` from its read ACL: the broker refuses it, a leave retry follows (a Pending
row owned by ``ivy``)."""
CRASHER = "gus"
"""Dies without a graceful offline: its presence goes stale and the sweep marks it offline."""
NARROWED_CHANNEL = "review"

CAST: tuple[tuple[str, str], ...] = (
    (EARLY_BIRD, "planner"),
    (NARROWED, "reviewer"),
    (CRASHER, "tester"),
    ("bo", "reviewer"),
    ("cy", "builder"),
    ("dee", "builder"),
    ("eli", "tester"),
    ("fay", "ops"),
    ("hal", "builder"),
    ("jo", "planner"),
    ("kai", "reviewer"),
    ("lu", "tester"),
    ("max", "builder"),
    ("nia", "ops"),
    ("oz", "reviewer"),
    ("pia", "builder"),
)
"""In order: the first three play the scripted cases, so any N >= 3 has all of them."""

MIN_AGENTS = 3
MAX_AGENTS = 64


@dataclass(frozen=True)
class AgentSpec:
    name: str
    role: str
    channels: tuple[str, ...]
    """Boot channels (joined at start)."""
    allow_subscribe: tuple[str, ...]
    """The read ACL (and the broker's subscribe grants)."""
    allow_publish: tuple[str, ...]


def cast(n: int) -> list[AgentSpec]:
    """The first ``n`` agents; past the named cast, names and roles continue numbered."""
    if not MIN_AGENTS <= n <= MAX_AGENTS:
        raise ValueError(
            f"the demo runs {MIN_AGENTS}..{MAX_AGENTS} agents (the first three play the scripted "
            f"cases); got {n}"
        )
    roles = [r for _, r in CAST]
    out = []
    for i in range(n):
        if i < len(CAST):
            name, role = CAST[i]
        else:
            role = roles[i % len(roles)]
            name = f"{role[:3]}{i}"
        out.append(
            AgentSpec(
                name=name,
                role=role,
                channels=ROLE_CHANNELS[role],
                allow_subscribe=ALL_CHANNELS,
                allow_publish=ALL_CHANNELS,
            )
        )
    return out


ACTIVITIES: dict[str, tuple[str, ...]] = {
    "planner": ("splitting the auth epic", "writing the sprint plan", "triaging the backlog"),
    "builder": ("implementing the retry queue", "fixing the flaky pump", "wiring the lease probe"),
    "reviewer": ("reviewing #412", "reading the durable-join diff", "checking test coverage"),
    "tester": ("running the soak test", "bisecting a reconnect bug", "writing a fixture"),
    "ops": ("rotating the creds", "watching the broker", "tuning stream limits"),
}

WAITING: tuple[str, ...] = (
    "waiting for review",
    "waiting on CI",
    "blocked: need a decision",
    "waiting for a reply",
)

LINES: dict[str, tuple[str, ...]] = {
    "general": (
        "standup: {task} today",
        "heads-up: the broker was upgraded last night",
        "who owns the release notes this week?",
        "merged the lease-probe fix, thanks all",
        "lunch in ten?",
        "reminder: demo at 15:00",
    ),
    "review": (
        "PR #{n} is ready for review",
        "left two comments on #{n}",
        "approved #{n}, nice cleanup",
        "#{n} needs a test for the refusal path",
        "re-requested review on #{n}",
    ),
    "lounge": (
        "coffee machine is fixed ☕",
        "anyone seen the new terminal theme?",
        "friday playlist is up",
        "that flaky test again…",
    ),
    "team.backend": (
        "deploying build {n} to staging",
        "the DLV backlog is back to zero",
        "bumped the ack wait to 30s",
        "migrating the members bucket, read-only for a minute",
    ),
}

MENTION_LINES: tuple[str, ...] = (
    "@{peer} can you take a look?",
    "@{peer} your call on this one",
    "@{peer} ping: is {task} done?",
    "thanks @{peer}!",
)

DM_LINES: tuple[str, ...] = (
    "got a minute? quick question about {task}",
    "I pushed a fix to your branch",
    "can you pair on {task} later?",
    "sent you the logs",
)

ANYCAST_LINES: tuple[str, ...] = (
    "any {role} free to pick up ticket #{n}?",
    "need one {role} for a quick check",
    "{role} wanted: {task}",
)

REPLY_LINES: tuple[str, ...] = (
    "on it, {peer}",
    "ack {peer}, give me a minute",
    "will do",
    "looking now",
)
