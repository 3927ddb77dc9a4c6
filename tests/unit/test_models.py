"""Model rules beyond the reference records: omission, unknown fields, named errors."""

from __future__ import annotations

import json

import pytest

import cotal_tui.protocol as p

U1 = "UDXU4RCSJNZOIQHZNWXHXORDPRTGNJAHAHFRGZNEEJCPQTT2M7NFCNDD"


def _msg(**extra: object) -> dict[str, object]:
    body: dict[str, object] = {
        "id": "m1",
        "ts": 1,
        "space": "main",
        "from": {"id": U1, "name": "alice"},
        "channel": "general",
        "parts": [{"kind": "text", "text": "hi"}],
    }
    body.update(extra)
    return body


def test_absent_optionals_are_omitted_never_null() -> None:
    card = p.AgentCard(id=U1, name="bob", kind="agent")
    wire = p.Presence(card=card, status="idle", ts=5).to_wire()
    assert wire == {"card": {"id": U1, "name": "bob", "kind": "agent"}, "status": "idle", "ts": 5}
    assert b"null" not in p.Presence(card=card, status="idle", ts=5).to_json()


def test_python_names_and_wire_names_both_accepted() -> None:
    rec = p.MembershipRecord(
        channel="review",
        owner=U1,
        state="durable-active",
        join_cursor=3,
        generation=1,
        activated=False,
        writer_identity="UD",
        updated_at=9,
    )
    again = p.MembershipRecord.from_json(rec.to_json())
    assert again == rec
    assert list(rec.to_wire()) == [
        "channel",
        "owner",
        "state",
        "joinCursor",
        "generation",
        "activated",
        "writerIdentity",
        "updatedAt",
    ]


def test_unknown_fields_ignored_on_records() -> None:
    lease = p.DeliveryLeaseInfo.from_json(b'{"holder":"D","since":1,"ready":true,"shard":0}')
    assert lease.to_wire() == {"holder": "D", "since": 1, "ready": True}


def test_message_keeps_unknown_fields_for_verbatim_forwarding() -> None:
    raw = _msg(futureField={"x": 1}, parts=[{"kind": "com.example.card", "title": "t", "n": None}])
    msg = p.CotalMessage.from_wire(raw)
    assert isinstance(msg.parts[0], p.ExtensionPart)
    assert json.loads(msg.to_json()) == raw


def test_data_part_keeps_nested_nulls() -> None:
    raw = _msg(parts=[{"kind": "data", "data": {"a": None, "b": [None, 1]}}])
    assert json.loads(p.CotalMessage.from_wire(raw).to_json()) == raw


def test_text_property_joins_text_parts() -> None:
    raw = _msg(
        parts=[
            {"kind": "text", "text": "a"},
            {"kind": "data", "data": 1},
            {"kind": "text", "text": "b"},
        ]
    )
    assert p.CotalMessage.from_wire(raw).text == "a\nb"


@pytest.mark.parametrize(
    ("model", "body", "needle"),
    [
        (
            p.Presence,
            {"card": {"id": "x", "name": "n", "kind": "robot"}, "status": "idle", "ts": 1},
            "card.kind",
        ),
        (
            p.Presence,
            {"card": {"id": "x", "name": "n", "kind": "agent"}, "status": "asleep", "ts": 1},
            "status",
        ),
        (
            p.MembershipRecord,
            {
                "channel": "c",
                "owner": "o",
                "state": "gone",
                "joinCursor": 1,
                "generation": 1,
                "writerIdentity": "w",
                "updatedAt": 1,
            },
            "state",
        ),
        (
            p.Plane3Entry,
            {"msg": _msg(), "channel": "c", "seq": 1, "reason": "because", "generation": 0},
            "reason",
        ),
        (p.ChannelConfig, {"deliveryClass": "sometimes"}, "deliveryClass"),
        (p.AclRecord, {"revision": 1, "updatedAt": 1}, "allowSubscribe"),
        (p.DeliveryLeaseInfo, {"holder": "D", "since": 1, "ready": "yes"}, "ready"),
        (p.ControlReply, {"ok": 1}, "ok"),
    ],
)
def test_bad_record_names_field_and_rule(
    model: type[p.WireModel], body: object, needle: str
) -> None:
    with pytest.raises(p.RecordError) as info:
        model.from_wire(body)
    assert needle in str(info.value)
    assert model.__name__ in str(info.value)


def test_undecodable_json_is_a_record_error() -> None:
    with pytest.raises(p.RecordError, match="not valid JSON"):
        p.CotalMessage.from_json(b"{nope")
    with pytest.raises(p.RecordError):
        p.DeliveryLeaseInfo.from_json(b"")
    with pytest.raises(p.RecordError, match="NaN is not a JSON value"):
        p.ControlReply.from_json(b'{"ok":true,"data":NaN}')
    with pytest.raises(p.RecordError, match="not valid JSON"):
        p.ControlReply.from_json(b"\xff")


def test_control_reply_with_model_data() -> None:
    reply = p.ControlReply.success(p.DurableJoinResult(durable=True, generation=2))
    assert reply.to_json() == b'{"ok":true,"data":{"durable":true,"generation":2}}'
    refused = p.ControlReply.failure("nope")
    assert refused.to_json() == b'{"ok":false,"error":"nope"}'
    joined = p.DurableJoinResult.from_wire({"durable": False, "reason": p.REASON_CATCHUP_EVICTED})
    assert joined.generation is None


def test_control_request_keeps_empty_args() -> None:
    req = p.ControlRequest(op="listMemberships", args={}, from_=p.EndpointRef(id=U1, name="bob"))
    assert req.to_json() == (
        b'{"op":"listMemberships","args":{},"from":{"id":"' + U1.encode() + b'","name":"bob"}}'
    )


def test_offline_scrub_keeps_activity() -> None:
    card = p.AgentCard(id=U1, name="bob", kind="agent")
    live = p.Presence(
        card=card,
        status="working",
        activity="x",
        attention="dnd",
        channel_modes={"a": "muted"},
        ts=1,
    )
    assert live.as_offline().to_wire() == {
        "card": {"id": U1, "name": "bob", "kind": "agent"},
        "status": "offline",
        "activity": "x",
        "ts": 1,
    }


def test_models_are_immutable() -> None:
    lease = p.DeliveryLeaseInfo(holder="D", since=1, ready=False)
    with pytest.raises(Exception):  # noqa: B017 - pydantic raises ValidationError
        lease.ready = True  # type: ignore[misc]
    assert lease.model_copy(update={"ready": True}).ready


def test_kv_tombstone_markers() -> None:
    assert p.is_kv_tombstone({"KV-Operation": "DEL"})
    assert p.is_kv_tombstone({"KV-Operation": "PURGE"})
    assert not p.is_kv_tombstone({})
    assert not p.is_kv_tombstone(None)
