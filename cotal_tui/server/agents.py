"""Provision one agent of an auth-mode space, as the reference's provisioner does at spawn.

The agent may only bind its durables, never create them, so the provisioner (holding an
allow-all manager cred) pre-creates `dm_<id>` on DM, `svc_<role>` on TASK (if a role) and
`dlv_<id>` on DLV with the protocol's consumer configs, then commits the agent's read-ACL row
(`allowSubscribe`) with the CAS write of PROTOCOL §3.5. Channels are validated first; nothing is
created for an agent whose channel lists break the rules.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from nats.aio.client import Client
from nats.js.api import ConsumerConfig
from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError

from cotal_tui.protocol import (
    ACL_CAS_ATTEMPTS,
    AclCasExhausted,
    AclRecord,
    RecordError,
    acl_bucket,
    acl_key,
    dlv_durable_config,
    dlv_stream,
    dm_durable_config,
    dm_stream,
    task_durable_config,
    task_stream,
)
from cotal_tui.protocol.permissions import resolve_agent_channels
from cotal_tui.protocol.untrusted import Decoded, decode_untrusted


@dataclass
class AgentProvision:
    """What `provision_agent` set up: durables per stream, and the ACL row it committed."""

    id: str
    durables: dict[str, str] = field(default_factory=dict)
    allow_subscribe: tuple[str, ...] = ()
    acl_revision: int | None = None


def consumer_config(raw: dict[str, Any]) -> ConsumerConfig:
    """A protocol consumer config (JetStream JSON: nanoseconds, string enums) for nats-py."""
    return ConsumerConfig.from_response(dict(raw))


def _acl_value(allow_subscribe: Sequence[str], revision: int) -> bytes:
    record = AclRecord(
        allow_subscribe=list(allow_subscribe),
        revision=revision,
        updated_at=int(time.time() * 1000),
    )
    return record.to_json()


def _previous_revision(value: bytes | None) -> int:
    if not value:
        return 0
    try:
        return AclRecord.from_json(value).revision
    except RecordError:
        return 0  # an undecodable row is rewritten whole, as the reference does


async def commit_acl_row(nc: Client, space: str, owner: str, allow_subscribe: Sequence[str]) -> int:
    """Create or CAS-update the owner's ACL row (whole value, revision = previous + 1).

    Up to 5 attempts; returns the record's `revision`. Raises `AclCasExhausted`.
    """
    kv = await nc.jetstream().key_value(acl_bucket(space))
    key = acl_key(owner)
    for _ in range(ACL_CAS_ATTEMPTS):
        try:
            entry = await kv.get(key)
        except KeyNotFoundError:
            entry = None
        try:
            if entry is None:
                await kv.create(key, _acl_value(allow_subscribe, 1))
                return 1
            revision = _previous_revision(entry.value) + 1
            await kv.update(key, _acl_value(allow_subscribe, revision), last=entry.revision)
            return revision
        except KeyWrongLastSequenceError:
            continue
    raise AclCasExhausted(owner)


async def read_acl_row(nc: Client, space: str, owner: str) -> dict[str, Any] | None:
    kv = await nc.jetstream().key_value(acl_bucket(space))
    try:
        entry = await kv.get(acl_key(owner))
    except KeyNotFoundError:
        return None
    if not entry.value:
        return None
    decoded = decode_untrusted(entry.value)
    return decoded.value if isinstance(decoded, Decoded) else None


async def provision_agent(
    nc: Client,
    space: str,
    id: str,  # noqa: A002 - the reference's parameter name
    *,
    role: str | None = None,
    allow_subscribe: Sequence[str] | None = None,
    subscribe: Sequence[str] | None = None,
    durable_membership: bool = True,
) -> AgentProvision:
    """Pre-create the agent's durables and commit its ACL row (unless `durable_membership` is
    False, as for a direct foreground spawn). `nc` must hold an allow-all (manager) cred.

    Raises `InvalidChannel`/`ChannelNotAllowed` (before anything is written) for bad channels.
    """
    channels = resolve_agent_channels(subscribe, allow_subscribe, ())
    js = nc.jetstream()
    result = AgentProvision(id=id, allow_subscribe=channels.allow_subscribe)
    wanted = [(dm_stream(space), dm_durable_config(space, id))]
    if role:
        wanted.append((task_stream(space), task_durable_config(space, role)))
    wanted.append((dlv_stream(space), dlv_durable_config(space, id)))
    for stream, raw in wanted:
        info = await js.add_consumer(stream, consumer_config(raw))
        result.durables[stream] = info.name
    if durable_membership:
        result.acl_revision = await commit_acl_row(nc, space, id, channels.allow_subscribe)
    return result
