"""A subscription whose messages are handled as they are parsed, not through a queue and a task.

nats-py hands every message of a callback subscription to an ``asyncio.Queue`` that a task per
subscription drains, awaiting the callback once per message. For the delivery daemon's PubAcks
and pulled messages (two or three per copy) that hop cost more than what the handlers do, and
the handlers are plain functions that never wait. :func:`subscribe_direct` subscribes with the
handler as an ordinary callback, then gives the subscription a queue whose ``put_nowait`` calls
the handler right away (in arrival order, from the client's read loop). Should a nats-py
release stop using that queue, its own task calls the same handler through the callback, so
messages are handled either way.

Where the client's parser can be the cheaper :class:`~cotal_tui.mesh.fast_parser.FastParser`
(this nats-py), it is installed and the subscription's sid registered with it: its messages then
skip ``_process_msg`` (and the queue) and reach the handler as they are parsed, headers parsed
only when read. The queue stays, for the messages the parser leaves to ``_process_msg``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from cotal_tui.mesh import fast_parser

log = logging.getLogger(__name__)

Handler = Callable[[Msg], None]


class _HandleAtOnce(asyncio.Queue):  # type: ignore[type-arg]
    """Never holds a message: ``put_nowait`` is the handler (and releases the pending bytes
    nats-py counted for the subscription, as its task does when it takes a message)."""

    def __init__(self, sub: Subscription, handler: Handler) -> None:
        super().__init__()
        self._sub = sub
        self._handler = handler

    def put_nowait(self, item: Msg) -> None:
        self._sub._pending_size -= len(item.data)
        _run(self._handler, item)


def _run(handler: Handler, msg: Msg) -> None:
    try:
        handler(msg)
    except Exception:  # noqa: BLE001 - one bad message must not stop the read loop
        log.exception("handling a message on %s failed", msg.subject)


async def subscribe_direct(nc: Client, subject: str, handler: Handler) -> Subscription:
    async def callback(msg: Msg) -> None:  # used only if the queue below is not
        _run(handler, msg)

    sub = await nc.subscribe(subject, cb=callback)
    queue = getattr(sub, "_pending_queue", None)
    if isinstance(queue, asyncio.Queue) and queue.empty() and hasattr(sub, "_pending_size"):
        sub._pending_queue = _HandleAtOnce(sub, handler)
        parser = fast_parser.install(nc)
        sid = getattr(sub, "_id", None)
        if parser is not None and isinstance(sid, int):
            parser.register(sid, handler)
    return sub
