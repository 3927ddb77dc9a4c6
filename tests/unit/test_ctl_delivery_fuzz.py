"""Fuzz: any `ctl.delivery` request body gets an answer from the service, never an exception
(issue 10: a deep body used to kill the request task and leave the caller to time out)."""

from __future__ import annotations

import asyncio
import json
from types import SimpleNamespace
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from cotal_tui.delivery.delivery_service import DeliveryService

SUBJECT = "cotal.s.ctl.delivery.UBOB"

_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=20,
)
_bodies = st.fixed_dictionaries(
    {},
    optional={
        "op": st.sampled_from(["durableJoin", "durableLeave", "listMemberships", "x"]) | _values,
        "args": _values,
        "from": st.fixed_dictionaries(
            {}, optional={"id": st.just("UBOB") | _values, "name": _values}
        ),
    },
).map(lambda d: json.dumps(d).encode())


def _deep(levels: int) -> bytes:
    return (
        '{"op":"listMemberships","args":' + "[" * levels + "]" * levels + ',"from":{"id":"UBOB"}}'
    ).encode()


def _service() -> DeliveryService:
    service = DeliveryService.__new__(DeliveryService)
    service._ops = {}  # type: ignore[attr-defined] - the op handlers need a daemon; refusals do not
    service.ctx = SimpleNamespace(on_error=lambda exc: None)  # type: ignore[assignment]
    return service


def _answer(raw: bytes) -> dict[str, Any]:
    reply = asyncio.run(_service().handle(SUBJECT, raw))
    assert isinstance(reply, dict) and isinstance(reply.get("ok"), bool), reply
    if not reply["ok"]:
        assert isinstance(reply.get("error"), str) and reply["error"]
    json.dumps(reply)  # the reply can be sent
    return reply


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400) | _bodies | st.integers(0, 5000).map(_deep))
def test_fuzz_every_ctl_delivery_body_gets_an_answer(raw: bytes) -> None:
    _answer(raw)


def test_deep_and_non_finite_bodies_are_refused_by_name() -> None:
    assert "too-deep" in _answer(_deep(3000))["error"]
    assert (
        "non-finite-number" in _answer(b'{"op":"x","args":{"n":NaN},"from":{"id":"UBOB"}}')["error"]
    )
