"""A plain nats-py client connected with a creds file, recording the broker's refusals.

Refusals are asynchronous: a subscribe outside `sub.allow` returns normally and the refusal
arrives through `error_cb` (nats-py lower-cases the whole text); a denied publish or request
shows up at the call site only as a timeout, plus a publish refusal through `error_cb`. Every
denial check here waits briefly for both, and every test pairs it with a positive control.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Awaitable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nats
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from waiting import wait_for

DENY_TIMEOUT = 0.6


@dataclass
class Identity:
    nc: Client
    id: str
    errors: list[str] = field(default_factory=list)

    def refusals(self, kind: str, subject: str) -> list[str]:
        needle = f'permissions violation for {kind} to "{subject.lower()}"'
        return [e for e in self.errors if needle in e]

    async def sub_refused(self, subject: str, timeout: float = 2.0) -> None:
        """Subscribe, flush, and wait for the broker's refusal naming `subject`."""
        await self.nc.subscribe(subject)
        await self.nc.flush()
        await wait_for(
            lambda: self.refusals("subscription", subject),
            what=f"a subscription refusal for {subject}",
            timeout=timeout,
        )

    async def sub_accepted(self, subject: str) -> Subscription:
        """Subscribe, flush, and check no refusal names `subject` within the deny window."""
        sub = await self.nc.subscribe(subject)
        await self.nc.flush()
        await asyncio.sleep(0)  # let an already-received -ERR reach error_cb
        await self.nc.flush()
        assert not self.refusals("subscription", subject), self.errors
        return sub

    async def request(self, subject: str, body: Any = b"", timeout: float = 2.0) -> dict[str, Any]:
        """A JetStream API request that must be answered (a positive control)."""
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        msg = await self.nc.request(subject, data, timeout=timeout)
        reply = json.loads(msg.data) if msg.data else {}
        assert "error" not in reply, f"{subject} answered with an error: {reply}"
        return reply

    async def _denied(self, subject: str, call: Awaitable[Any]) -> None:
        """The broker's publish refusal naming `subject` proves it was dropped on entry; the
        call must not have produced an answer by then (it would time out if left to run)."""
        task = asyncio.ensure_future(call)
        try:
            await wait_for(
                lambda: self.refusals("publish", subject) or task.done(),
                what=f"a publish refusal for {subject}",
                timeout=DENY_TIMEOUT * 3,
            )
            if task.done() and not task.cancelled() and task.exception() is None:
                raise AssertionError(f"{subject} was answered, expected a refusal: {task.result()}")
            assert self.refusals("publish", subject), (
                f"{subject}: no publish refusal; the call ended with {task.exception()!r}"
            )
        finally:
            task.cancel()
            with contextlib.suppress(BaseException):
                await task

    async def request_denied(self, subject: str, body: Any = b"") -> None:
        """A request the broker must refuse (a caller would only see a timeout)."""
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        await self._denied(subject, self.nc.request(subject, data, timeout=DENY_TIMEOUT))

    async def js_publish(self, subject: str, payload: bytes = b"{}") -> int:
        ack = await self.nc.jetstream().publish(subject, payload, timeout=2.0)
        return int(ack.seq)

    async def js_publish_denied(self, subject: str, payload: bytes = b"{}") -> None:
        """A JetStream publish that must be refused (no PubAck, only the refusal)."""
        call = self.nc.jetstream().publish(subject, payload, timeout=DENY_TIMEOUT)
        await self._denied(subject, call)

    async def close(self) -> None:
        await self.nc.close()


async def connect_as(url: str, creds: Path | str, ident: str) -> Identity:
    errors: list[str] = []

    async def error_cb(exc: Exception) -> None:
        errors.append(str(exc).lower())

    nc = await nats.connect(
        url,
        user_credentials=str(creds),
        inbox_prefix=f"_INBOX_{ident}",
        error_cb=error_cb,
        allow_reconnect=False,
    )
    identity = Identity(nc=nc, id=ident)
    identity.errors = errors
    return identity


async def next_msg(sub: Subscription, timeout: float = 2.0) -> Msg:
    return await sub.next_msg(timeout=timeout)
