"""Helpers for the delivery-daemon tests: agents as raw publishers, DLV readers, ctl requests."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from cotal_tui.delivery.acl import commit_acl
from cotal_tui.mesh.connection import Connection
from cotal_tui.mesh.kv import KvBucket
from cotal_tui.protocol.names import acl_bucket, channel_bucket, chat_stream, dlv_stream
from cotal_tui.protocol.subjects import (
    chat_subject,
    delivery_reply_subject,
    delivery_request_subject,
)


async def connect(url: str, ident: str, creds: str | None = None) -> Connection:
    conn = Connection(url, ident[:12], ident, creds=creds)
    await conn.connect()
    return conn


def chat_message(
    space: str, sender: str, channel: str, text: str, mentions: list[str] | None = None
) -> tuple[str, bytes, str]:
    msg_id = str(uuid.uuid4())
    body: dict[str, Any] = {
        "id": msg_id,
        "ts": 1,
        "space": space,
        "from": {"id": sender, "name": sender[:8].lower()},
        "channel": channel,
    }
    if mentions:
        body["mentions"] = mentions
    body["parts"] = [{"kind": "text", "text": text}]
    return chat_subject(space, sender, channel), json.dumps(body).encode(), msg_id


async def publish_chat(
    conn: Connection, space: str, sender: str, channel: str, text: str, **kw: Any
) -> tuple[str, int]:
    subject, data, msg_id = chat_message(space, sender, channel, text, **kw)
    ack = await conn.js.publish(subject, data, headers={"Nats-Msg-Id": msg_id})
    return msg_id, ack.seq


async def read_stream_subject(conn: Connection, stream: str, subject: str) -> list[Any]:
    """Every stored message on ``subject`` (ephemeral ack-none consumer, deleted after)."""
    js = conn.js
    sub = await js.pull_subscribe(
        subject,
        stream=stream,
        config=ConsumerConfig(
            ack_policy=AckPolicy.NONE,
            deliver_policy=DeliverPolicy.ALL,
            inactive_threshold=5,
            mem_storage=True,
        ),
    )
    out: list[Any] = []
    try:
        info = await sub.consumer_info()
        remaining = info.num_pending
        while remaining > 0:
            batch = await sub.fetch(min(remaining, 256), timeout=5)
            out.extend(batch)
            remaining -= len(batch)
    finally:
        await sub.unsubscribe()
    return out


async def dlv_messages(conn: Connection, space: str, owner: str) -> list[Any]:
    return await read_stream_subject(conn, dlv_stream(space), f"cotal.{space}.dlv.{owner}")


async def dlv_ids(conn: Connection, space: str, owner: str) -> list[str]:
    return [json.loads(m.data)["id"] for m in await dlv_messages(conn, space, owner)]


async def chat_count(conn: Connection, space: str) -> int:
    return int((await conn.js.stream_info(chat_stream(space))).state.last_seq)


class NoResponders(Exception):
    pass


async def request_delivery(
    conn: Connection,
    space: str,
    agent_id: str,
    op: str,
    args: dict[str, Any] | None = None,
    *,
    timeout: float = 30.0,
    reply: str | None = None,
) -> dict[str, Any]:
    """A ctl.delivery request with the explicit per-request reply lane (503 → NoResponders)."""
    nc = conn.nc
    subject = delivery_request_subject(space, agent_id)
    reply = reply or delivery_reply_subject(space, agent_id, str(uuid.uuid4()))
    sub = await nc.subscribe(reply, max_msgs=1)
    try:
        body = {"op": op, "args": args or {}, "from": {"id": agent_id, "name": "agent"}}
        await nc.publish(subject, json.dumps(body).encode(), reply=reply)
        msg = await sub.next_msg(timeout=timeout)
    finally:
        await sub.unsubscribe()
    if msg.headers and msg.headers.get("Status") == "503":
        raise NoResponders(subject)
    return json.loads(msg.data)


async def set_acl(conn: Connection, space: str, owner: str, allow: list[str]) -> None:
    await commit_acl(KvBucket(conn, acl_bucket(space)), owner, allow)


async def set_channel_class(conn: Connection, space: str, channel: str, cls: str) -> None:
    await KvBucket(conn, channel_bucket(space)).put(
        channel, json.dumps({"deliveryClass": cls}).encode()
    )


async def gather_until(pred, timeout: float = 10.0):  # pragma: no cover - tiny helper
    return await asyncio.wait_for(pred(), timeout)
