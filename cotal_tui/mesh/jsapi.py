"""Raw JetStream API requests on the exact subjects the reference's grants name (§2.2, §10.3).

nats-py picks its consumer-create subject from the config it is given; this module sends the
form we choose: ``$JS.API.CONSUMER.CREATE.<stream>.<name>.<filter>`` for a single filter (as
nats.js 3.x does), ``...CREATE.<stream>.<name>`` otherwise.
"""

from __future__ import annotations

import json
from typing import Any

import nats.errors

from cotal_tui.mesh.connection import Connection

API = "$JS.API"
CONSUMER_NOT_FOUND = 10014
STREAM_NOT_FOUND = 10059


class JsApiError(Exception):
    """The JetStream API answered with an error (``code`` is the JetStream ``err_code``)."""

    def __init__(self, what: str, code: int | None, description: str) -> None:
        super().__init__(f"{what}: {description} (err_code {code})")
        self.code = code
        self.description = description


class JsApiUnavailable(Exception):
    """The JetStream API did not answer (timeout, no responders, or a denied publish)."""


async def api_request(
    conn: Connection, subject: str, body: Any, *, what: str, timeout: float = 5.0
) -> dict[str, Any]:
    payload = b"" if body is None else json.dumps(body).encode()
    try:
        msg = await conn.nc.request(subject, payload, timeout=timeout)
    except (nats.errors.TimeoutError, nats.errors.NoRespondersError) as exc:
        raise JsApiUnavailable(
            f"{what}: no answer from the JetStream API on {subject} ({type(exc).__name__}); "
            "JetStream may be off or the credential may not use this API"
        ) from exc
    data = json.loads(msg.data or b"{}")
    err = data.get("error")
    if err:
        raise JsApiError(what, err.get("err_code"), err.get("description", "error"))
    return data


def consumer_create_subject(stream: str, name: str, filter_subject: str | None) -> str:
    if filter_subject and filter_subject != ">":
        return f"{API}.CONSUMER.CREATE.{stream}.{name}.{filter_subject}"
    return f"{API}.CONSUMER.CREATE.{stream}.{name}"


async def create_consumer(conn: Connection, stream: str, config: dict[str, Any]) -> dict[str, Any]:
    name = config.get("name") or config.get("durable_name")
    if not name:
        raise ValueError("consumer config needs a name or durable_name")
    subject = consumer_create_subject(stream, name, config.get("filter_subject"))
    return await api_request(
        conn,
        subject,
        {"stream_name": stream, "config": config, "action": ""},
        what=f"creating consumer {name} on {stream}",
    )


async def delete_consumer(conn: Connection, stream: str, name: str) -> bool:
    """Delete; False when it did not exist."""
    try:
        await api_request(
            conn, f"{API}.CONSUMER.DELETE.{stream}.{name}", None, what=f"deleting {stream}/{name}"
        )
    except JsApiError as exc:
        if exc.code == CONSUMER_NOT_FOUND:
            return False
        raise
    return True


async def consumer_info(
    conn: Connection, stream: str, name: str, *, timeout: float = 5.0
) -> dict[str, Any] | None:
    """CONSUMER.INFO; None when the consumer or its stream does not exist."""
    try:
        return await api_request(
            conn,
            f"{API}.CONSUMER.INFO.{stream}.{name}",
            None,
            what=f"consumer {stream}/{name}",
            timeout=timeout,
        )
    except JsApiError as exc:
        if exc.code in (CONSUMER_NOT_FOUND, STREAM_NOT_FOUND):
            return None
        raise


async def stream_info(
    conn: Connection, stream: str, *, subjects_filter: str | None = None
) -> dict[str, Any]:
    body = {"subjects_filter": subjects_filter} if subjects_filter else None
    return await api_request(conn, f"{API}.STREAM.INFO.{stream}", body, what=f"stream {stream}")


async def last_seq(conn: Connection, stream: str) -> int:
    """The stream's ``state.last_seq``: the cursor unit of every watermark (§10.8)."""
    info = await stream_info(conn, stream)
    return int(info.get("state", {}).get("last_seq", 0))
