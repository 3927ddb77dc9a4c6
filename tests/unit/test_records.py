"""Every record of tests/vectors/records.json parses with its model and re-serializes equal."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

import cotal_tui.protocol as p

RECORDS: dict[str, dict[str, Any]] = json.loads(
    (Path(__file__).parent.parent / "vectors" / "records.json").read_text(encoding="utf-8")
)


@pytest.mark.parametrize("key", sorted(RECORDS))
def test_record_round_trips(key: str) -> None:
    record = RECORDS[key]
    if record["model"] is None:
        # A KV delete marker (released lease): empty body, KV-Operation header, not JSON.
        assert record["body"] == ""
        assert p.is_kv_tombstone(record["headers"])
        return
    model = p.MODELS[record["model"]]
    parsed = model.from_json(record["body"].encode())
    assert json.loads(parsed.to_json()) == json.loads(record["body"])
    # Key order is kept too, so the bytes are the reference's bytes.
    assert parsed.to_json().decode() == record["body"]


@pytest.mark.parametrize("key", sorted(k for k, r in RECORDS.items() if r["model"]))
def test_record_subject_agrees_with_builders(key: str) -> None:
    """The subject each record travelled on is one our builders produce for it."""
    record = RECORDS[key]
    subject = record["subject"]
    body = json.loads(record["body"])
    if record["model"] == "CotalMessage" and ".chat." in subject:
        assert subject == p.chat_subject(body["space"], body["from"]["id"], body["channel"])
        assert record["headers"]["Nats-Msg-Id"] == body["id"]
    elif record["model"] == "CotalMessage" and ".inst." in subject:
        assert subject == p.unicast_subject(body["space"], body["to"], body["from"]["id"])
    elif record["model"] == "Plane3Entry":
        owner = p.parse_dinbox_owner(subject)
        assert owner is not None
        assert record["headers"]["Nats-Msg-Id"] == p.plane3_msg_id(
            body["msg"]["id"], owner, body["generation"]
        )
    elif record["model"] == "ControlRequest":
        assert subject == p.delivery_request_subject("main", body["from"]["id"])
        assert p.is_bound_reply(subject, record["reply"])
        parsed = p.parse_subject(subject)
        assert parsed is not None and parsed.kind == "ctl" and parsed.sender == body["from"]["id"]
    elif record["model"] == "MembershipRecord":
        assert subject == p.kv_subject(
            p.members_bucket("main"), p.member_key(body["channel"], body["owner"])
        )


def test_dlv_body_is_the_dinbox_msg_verbatim() -> None:
    entry = p.Plane3Entry.from_json(RECORDS["dinbox.durableChannel"]["body"])
    assert entry.msg.to_json().decode() == RECORDS["dlv.durableChannel"]["body"]


def test_tombstone_keeps_reference_key_order() -> None:
    active = p.MembershipRecord.from_json(RECORDS["members.active"]["body"])
    tomb = p.tombstoned(active, 5, active.writer_identity, 1795755203426)
    assert tomb.to_json().decode() == RECORDS["members.tombstone"]["body"]


def test_merge_keeps_existing_key_order() -> None:
    seeded = json.loads(RECORDS["channels.review.seeded"]["body"])
    merged = p.merge_channel_config(seeded, {"description": "Code review requests (merged patch)"})
    assert merged.to_json().decode() == RECORDS["channels.review.merged"]["body"]


def test_offline_presence_scrubs_attention_and_modes() -> None:
    live = p.Presence.from_json(RECORDS["presence.live.full"]["body"])
    offline = live.as_offline().model_copy(update={"ts": 1795755203750})
    assert offline.to_json().decode() == RECORDS["presence.offline"]["body"]
