"""The permission profiles of PROTOCOL §8.4 as pure data: one function per profile.

Each returns a :class:`Permissions` whose ``to_claims()`` is the ``nats`` permission part of a
user JWT (``{"pub": {"allow", "deny"}, "sub": {"allow"}}``, empty lists omitted). ``manager`` is
allow-all: an empty permissions object. The broker enforces these lists, so they are the security
boundary of auth mode: an agent can read only the channels of its ``allowSubscribe``, publish only
on its ``allowPublish`` channels and as itself, bind (never create) its own DM/DLV/role durables,
and has no grant at all on INBOX, members or ACL.

Where §8.4 summarizes (observer and admin), the lists below spell it out: the CHAT consumer verbs
(bare ``CREATE`` and ``.>``, plus INFO/MSG.NEXT/DELETE and STREAM.INFO), the presence-watch and
channel-registry read grants exactly as the agent holds them, ``$JS.FC.>`` and ``$JS.API.INFO``;
admin adds the same read verbs on the DM stream. Neither has an application publish grant.

``operator`` is this project's own profile (:data:`OWN_PROFILES`; the reference has none by that
name, and it is unrelated to the NATS *operator* JWT at the root of the trust chain, §8.3): the
console's identity, least privilege for everything its panes show. It is an agent free to read
and post every channel (its own presence, own DM/DLV durables, own history consumer, nothing of
another agent's) plus read-only monitoring (:func:`_monitor_reads`): STREAM.INFO of every stream
of the space, CONSUMER.INFO of the daemon's two durables (``fanout`` on CHAT, ``reader`` on
INBOX), STREAM.MSG.GET on CHAT (the age of the oldest unrouted post: CHAT holds only channel
posts, which the operator reads anyway), on the dead-letter store (the project's own, issue
10) and on the 0.9.0 reference's channel membership feed bucket (``KV_cotal_membership_<space>``:
who is subscribed to a channel, display only). Never ``>``, never a read of INBOX, DM or DLV
messages (they carry direct messages), never a consumer on another stream.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from cotal_tui.protocol.channels import assert_valid_channel, channel_in_allow
from cotal_tui.protocol.consumers import bucket_specs, stream_specs
from cotal_tui.protocol.dead_letter import dead_letter_prefix, dead_letter_stream
from cotal_tui.protocol.errors import InvalidChannel
from cotal_tui.protocol.membership_feed import membership_bucket
from cotal_tui.protocol.names import (
    acl_bucket,
    channel_bucket,
    chat_hist_durable,
    chat_stream,
    delivery_bucket,
    dlv_durable,
    dlv_stream,
    dm_durable,
    dm_stream,
    fanout_durable,
    inbox_stream,
    members_bucket,
    presence_bucket,
    reader_durable,
    task_durable,
    task_stream,
)
from cotal_tui.protocol.subjects import (
    CONTROL_DELIVERY,
    CONTROL_PRIVILEGED,
    CONTROL_SELF_SERVICE,
    anycast_subject,
    chat_subject,
    chat_wildcard,
    control_service_subject,
    space_prefix,
    space_wildcard,
    token,
    unicast_subject,
)

API = "$JS.API"
REFERENCE_PROFILES = ("agent", "observer", "admin", "delivery", "manager")
OWN_PROFILES = ("operator",)
"""Profiles of this project's own, not in the reference (PROTOCOL §8.4 has none by these names)."""
PROFILES = (*REFERENCE_PROFILES, *OWN_PROFILES)
OPERATOR_CHANNELS = (">",)
"""The operator reads and posts every channel (what the console's default identity did before)."""
DEFAULT_SUBSCRIBE = ("general",)


class ChannelNotAllowed(InvalidChannel):
    """A ``subscribe`` channel lies outside ``allowSubscribe``."""


@dataclass(frozen=True)
class AgentChannels:
    """An agent's three channel verbs after validation (PROTOCOL §7.3 summary of the docs)."""

    subscribe: tuple[str, ...]
    allow_subscribe: tuple[str, ...]
    allow_publish: tuple[str, ...]


def resolve_agent_channels(
    subscribe: Sequence[str] | None = None,
    allow_subscribe: Sequence[str] | None = None,
    allow_publish: Sequence[str] | None = None,
) -> AgentChannels:
    """Validate every channel and check ``subscribe ⊆ allowSubscribe``.

    ``subscribe`` defaults to ``[general]``; ``allowSubscribe`` falls back to ``subscribe``;
    ``allowPublish`` is default-deny (empty). Raises :class:`InvalidChannel` or
    :class:`ChannelNotAllowed`, each naming the offending channel.
    """
    subs = tuple(DEFAULT_SUBSCRIBE if subscribe is None else subscribe)
    allow = tuple(subs if allow_subscribe is None else allow_subscribe)
    pubs = tuple(allow_publish or ())
    for ch in (*subs, *allow, *pubs):
        assert_valid_channel(ch)
    for ch in subs:
        if not channel_in_allow(allow, ch):
            raise ChannelNotAllowed(
                f'subscribe channel "{ch}" is not within allowSubscribe '
                f"[{', '.join(allow)}]; add it (or a pattern covering it) to --allow-subscribe"
            )
    return AgentChannels(_dedupe(subs), _dedupe(allow), _dedupe(pubs))


def inbox_prefix(id: str) -> str:  # noqa: A002 - the reference's parameter name
    """``_INBOX_<id>``: every client connects with it; ``sub.allow`` permits only that prefix."""
    return f"_INBOX_{id}"


@dataclass(frozen=True)
class Permissions:
    """Allow/deny subject lists for publish and subscribe; all empty means allow-all."""

    pub_allow: tuple[str, ...] = ()
    pub_deny: tuple[str, ...] = ()
    sub_allow: tuple[str, ...] = ()
    sub_deny: tuple[str, ...] = ()

    @property
    def allow_all(self) -> bool:
        return not (self.pub_allow or self.pub_deny or self.sub_allow or self.sub_deny)

    def to_claims(self) -> dict[str, Any]:
        """The JWT ``nats`` permission fields; an allow-all profile gives ``{}``."""
        out: dict[str, Any] = {}
        for key, allow, deny in (
            ("pub", self.pub_allow, self.pub_deny),
            ("sub", self.sub_allow, self.sub_deny),
        ):
            part: dict[str, list[str]] = {}
            if allow:
                part["allow"] = list(allow)
            if deny:
                part["deny"] = list(deny)
            if part:
                out[key] = part
        return out


def _dedupe(items: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(items))


def _channels(channels: Sequence[str]) -> list[str]:
    return [assert_valid_channel(ch) for ch in channels]


def _presence_watch(space: str) -> list[str]:
    kv = f"KV_{presence_bucket(space)}"
    return [f"{API}.CONSUMER.CREATE.{kv}.>", f"{API}.CONSUMER.INFO.{kv}.>"]


def _channel_reads(space: str) -> list[str]:
    kv = f"KV_{channel_bucket(space)}"
    return [
        f"{API}.STREAM.MSG.GET.{kv}",
        f"{API}.CONSUMER.CREATE.{kv}.>",
        f"{API}.CONSUMER.INFO.{kv}.>",
    ]


def _stream_infos(space: str) -> list[str]:
    return [
        f"{API}.STREAM.INFO.{chat_stream(space)}",
        f"{API}.STREAM.INFO.KV_{presence_bucket(space)}",
        f"{API}.STREAM.INFO.KV_{channel_bucket(space)}",
    ]


def _bind_only(stream: str, durable: str) -> list[str]:
    return [
        f"{API}.CONSUMER.INFO.{stream}.{durable}",
        f"{API}.CONSUMER.MSG.NEXT.{stream}.{durable}",
        f"$JS.ACK.{stream}.{durable}.>",
    ]


def _no_consumer_create(stream: str) -> list[str]:
    return [
        f"{API}.CONSUMER.CREATE.{stream}",
        f"{API}.CONSUMER.CREATE.{stream}.>",
        f"{API}.CONSUMER.DURABLE.CREATE.{stream}.>",
    ]


def agent_permissions(
    space: str,
    id: str,  # noqa: A002 - the reference's parameter name
    *,
    allow_subscribe: Sequence[str],
    allow_publish: Sequence[str],
    role: str | None = None,
    spawn: bool = False,
) -> Permissions:
    """An agent: reads its ``allow_subscribe`` channels, posts on ``allow_publish`` (default-deny).

    Channels are checked with ``assert_valid_channel`` (raises ``InvalidChannel`` naming it).
    """
    subs = _channels(allow_subscribe)
    pubs = _channels(allow_publish)
    chat = chat_stream(space)
    hist = chat_hist_durable(id)
    sub_allow = [
        f"{inbox_prefix(id)}.>",
        f"{control_service_subject(space, CONTROL_DELIVERY, id)}.>",
        *(chat_subject(space, "*", ch) for ch in subs),
    ]
    pub_allow = [
        *(chat_subject(space, id, ch) for ch in pubs),
        unicast_subject(space, "*", id),
        anycast_subject(space, "*", id),
        control_service_subject(space, CONTROL_SELF_SERVICE, id),
        control_service_subject(space, CONTROL_DELIVERY, id),
    ]
    if spawn:
        pub_allow.append(control_service_subject(space, CONTROL_PRIVILEGED, id))
    pub_allow += [f"{API}.INFO", *_stream_infos(space)]
    pub_allow += [
        f"{API}.CONSUMER.CREATE.{chat}.{hist}.{chat_subject(space, '*', ch)}" for ch in subs
    ]
    pub_allow += [
        f"{API}.CONSUMER.INFO.{chat}.{hist}",
        f"{API}.CONSUMER.MSG.NEXT.{chat}.{hist}",
        f"{API}.CONSUMER.DELETE.{chat}.{hist}",
    ]
    pub_allow += _bind_only(dm_stream(space), dm_durable(id))
    pub_allow += _bind_only(dlv_stream(space), dlv_durable(id))
    pub_allow += [*_presence_watch(space), "$JS.FC.>", f"$KV.{presence_bucket(space)}.{token(id)}"]
    pub_allow += _channel_reads(space)
    lease = f"KV_{delivery_bucket(space)}"
    pub_allow += [f"{API}.STREAM.INFO.{lease}", f"{API}.STREAM.MSG.GET.{lease}"]
    if role:
        task = task_stream(space)
        durable = task_durable(role)
        pub_allow += [
            f"{API}.CONSUMER.INFO.{task}.{durable}",
            f"{API}.CONSUMER.MSG.NEXT.{task}.{durable}",
            f"$JS.ACK.{task}.{durable}.>",
        ]
    pub_deny = [
        *_no_consumer_create(dm_stream(space)),
        *_no_consumer_create(task_stream(space)),
        *_no_consumer_create(dlv_stream(space)),
    ]
    return Permissions(
        pub_allow=_dedupe(pub_allow), pub_deny=_dedupe(pub_deny), sub_allow=_dedupe(sub_allow)
    )


def _reader_grants(space: str) -> list[str]:
    chat = chat_stream(space)
    return [
        f"{API}.INFO",
        f"{API}.STREAM.INFO.{chat}",
        f"{API}.CONSUMER.CREATE.{chat}",
        f"{API}.CONSUMER.CREATE.{chat}.>",
        f"{API}.CONSUMER.INFO.{chat}.>",
        f"{API}.CONSUMER.MSG.NEXT.{chat}.>",
        f"{API}.CONSUMER.DELETE.{chat}.>",
        f"{API}.STREAM.INFO.KV_{presence_bucket(space)}",
        *_presence_watch(space),
        f"{API}.STREAM.INFO.KV_{channel_bucket(space)}",
        *_channel_reads(space),
        "$JS.FC.>",
        *_dead_letter_reads(space),  # the project's own store; not in the reference profile
    ]


def observer_permissions(space: str, id: str) -> Permissions:  # noqa: A002
    """A read-only tap on every channel: CHAT reads, presence watch, channel registry."""
    return Permissions(
        pub_allow=_dedupe(_reader_grants(space)),
        sub_allow=(chat_wildcard(space), f"{inbox_prefix(id)}.>"),
    )


def admin_permissions(space: str, id: str) -> Permissions:  # noqa: A002
    """The god view: subscribe to the whole space, observer reads plus DM stream reads."""
    dm = dm_stream(space)
    pub_allow = [
        *_reader_grants(space),
        f"{API}.STREAM.INFO.{dm}",
        f"{API}.STREAM.MSG.GET.{dm}",
        f"{API}.CONSUMER.CREATE.{dm}",
        f"{API}.CONSUMER.CREATE.{dm}.>",
        f"{API}.CONSUMER.INFO.{dm}.>",
        f"{API}.CONSUMER.MSG.NEXT.{dm}.>",
        f"{API}.CONSUMER.DELETE.{dm}.>",
    ]
    return Permissions(
        pub_allow=_dedupe(pub_allow),
        sub_allow=(space_wildcard(space), f"{inbox_prefix(id)}.>"),
    )


def delivery_permissions(space: str, id: str) -> Permissions:  # noqa: A002
    """The delivery daemon: JetStream pull only, INBOX consumers pinned to ``reader``."""
    chat, inbox, dlv = chat_stream(space), inbox_stream(space), dlv_stream(space)
    reader = reader_durable()
    prefix = space_prefix(space)
    pub_allow = [
        f"{API}.INFO",
        f"{API}.STREAM.INFO.{chat}",
        f"{API}.STREAM.INFO.{inbox}",
        f"{API}.STREAM.INFO.{dlv}",
        f"{API}.CONSUMER.CREATE.{chat}.>",
        f"{API}.CONSUMER.DURABLE.CREATE.{chat}.>",
        f"{API}.CONSUMER.INFO.{chat}.>",
        f"{API}.CONSUMER.MSG.NEXT.{chat}.>",
        f"{API}.CONSUMER.DELETE.{chat}.>",
        f"$JS.ACK.{chat}.>",
        f"{API}.CONSUMER.CREATE.{inbox}.{reader}.>",
        f"{API}.CONSUMER.DURABLE.CREATE.{inbox}.{reader}",
        f"{API}.CONSUMER.INFO.{inbox}.{reader}",
        f"{API}.CONSUMER.MSG.NEXT.{inbox}.{reader}",
        f"{API}.CONSUMER.DELETE.{inbox}.{reader}",
        f"$JS.ACK.{inbox}.{reader}.>",
        "$JS.FC.>",
    ]
    for bucket in (
        presence_bucket(space),
        channel_bucket(space),
        members_bucket(space),
        acl_bucket(space),
    ):
        kv = f"KV_{bucket}"
        pub_allow += [
            f"{API}.STREAM.INFO.{kv}",
            f"{API}.STREAM.MSG.GET.{kv}",
            f"{API}.CONSUMER.CREATE.{kv}.>",
            f"{API}.CONSUMER.INFO.{kv}.>",
            f"{API}.CONSUMER.DELETE.{kv}.>",
        ]
    lease = delivery_bucket(space)
    pub_allow += [
        f"$KV.{members_bucket(space)}.>",
        f"{API}.STREAM.INFO.KV_{lease}",
        f"{API}.STREAM.MSG.GET.KV_{lease}",
        f"$KV.{lease}.lease.*",
        f"{prefix}.dinbox.*",
        f"{prefix}.dlv.*",
        f"{prefix}.ctl.{CONTROL_DELIVERY}.*.reply.>",
        # The project's own dead-letter store (not in the reference profile): write, read.
        f"{dead_letter_prefix(space)}.>",
        *_dead_letter_reads(space),
        # Also beyond the reference profile (issue 11): single reads of CHAT and INBOX, which
        # the daemon consumes anyway, so a successor can tell which of a dead daemon's messages
        # CHAT evicted below the fan-out's floor unrouted (delivery/chat_gaps.py).
        f"{API}.STREAM.MSG.GET.{chat}",
        f"{API}.STREAM.MSG.GET.{inbox}",
    ]
    return Permissions(
        pub_allow=_dedupe(pub_allow),
        sub_allow=(f"{inbox_prefix(id)}.>", f"{prefix}.ctl.{CONTROL_DELIVERY}.*"),
    )


def _monitor_reads(space: str) -> list[str]:
    """Read-only monitoring of the space's delivery pipeline: stream states, the daemon's two
    durables, the age of the oldest unrouted post and the dead-letter store."""
    streams = [spec.name for spec in stream_specs(space)]
    streams += [spec.stream_spec().name for spec in bucket_specs(space)]
    chat, inbox = chat_stream(space), inbox_stream(space)
    feed = f"KV_{membership_bucket(space)}"  # the 0.9.0 broker feed, where a 0.9.0 daemon runs
    return [
        f"{API}.INFO",
        *(f"{API}.STREAM.INFO.{name}" for name in streams),
        f"{API}.STREAM.INFO.{feed}",
        f"{API}.STREAM.MSG.GET.{feed}",
        f"{API}.CONSUMER.INFO.{chat}.{fanout_durable()}",
        f"{API}.CONSUMER.INFO.{inbox}.{reader_durable()}",
        f"{API}.STREAM.MSG.GET.{chat}",
        *_dead_letter_reads(space),  # the project's own store (protocol.dead_letter)
    ]


def operator_permissions(
    space: str,
    id: str,  # noqa: A002 - the reference's parameter name
    *,
    role: str | None = None,
) -> Permissions:
    """The console's operator (this project's own profile): an agent on every channel plus
    read-only monitoring (:func:`_monitor_reads`); no consumer on INBOX either."""
    agent = agent_permissions(
        space, id, allow_subscribe=OPERATOR_CHANNELS, allow_publish=OPERATOR_CHANNELS, role=role
    )
    return Permissions(
        pub_allow=_dedupe([*agent.pub_allow, *_monitor_reads(space)]),
        pub_deny=_dedupe([*agent.pub_deny, *_no_consumer_create(inbox_stream(space))]),
        sub_allow=agent.sub_allow,
    )


def _dead_letter_reads(space: str) -> list[str]:
    """Read the dead-letter store (``protocol.dead_letter``): its state and its records."""
    stream = dead_letter_stream(space)
    return [f"{API}.STREAM.INFO.{stream}", f"{API}.STREAM.MSG.GET.{stream}"]


def manager_permissions(space: str | None = None, id: str | None = None) -> Permissions:  # noqa: A002
    """Allow-all (the reference's 0.6.0 manager and transient CLI identities)."""
    return Permissions()


def profile_permissions(
    profile: str,
    space: str,
    id: str,  # noqa: A002
    *,
    allow_subscribe: Sequence[str] = (),
    allow_publish: Sequence[str] = (),
    role: str | None = None,
    spawn: bool = False,
) -> Permissions:
    """Dispatch on a profile name (one of :data:`PROFILES`)."""
    if profile == "agent":
        return agent_permissions(
            space,
            id,
            allow_subscribe=allow_subscribe,
            allow_publish=allow_publish,
            role=role,
            spawn=spawn,
        )
    if profile == "observer":
        return observer_permissions(space, id)
    if profile == "admin":
        return admin_permissions(space, id)
    if profile == "delivery":
        return delivery_permissions(space, id)
    if profile == "manager":
        return manager_permissions(space, id)
    if profile == "operator":
        return operator_permissions(space, id, role=role)
    raise ValueError(f"unknown profile {profile!r}; expected one of {', '.join(PROFILES)}")
