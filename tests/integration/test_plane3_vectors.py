"""The daemon's Plane-3 bytes against the reference's recorded vectors (no server needed)."""

from __future__ import annotations

import asyncio
import json

from spaces import VECTORS

from cotal_tui.delivery.daemon_context import entry_payload
from cotal_tui.delivery.delivery_service import DeliveryService
from cotal_tui.delivery.reader import Entry, decode_entry

RECORDS = json.loads((VECTORS / "records.json").read_text())


class FakeMsg:
    """Only what decode_entry reads: the subject's payload bytes."""

    def __init__(self, data: bytes) -> None:
        self.data = data


def test_dinbox_entry_bytes_match_the_reference():
    for chat, dinbox in (
        ("chat.text", "dinbox.durableChannel"),
        ("chat.dataPart", "dinbox.durableChannel.dataPart"),
        ("chat.liveMention", "dinbox.liveMention"),
    ):
        src, want = RECORDS[chat], RECORDS[dinbox]
        entry = json.loads(want["body"])
        built = entry_payload(
            src["body"].encode(),
            entry["channel"],
            entry["seq"],
            entry["reason"],
            entry["generation"],
        )
        assert built == want["body"].encode(), dinbox


def test_reader_slices_the_reference_entry_into_the_dlv_body():
    for dinbox, dlv in (
        ("dinbox.durableChannel", "dlv.durableChannel"),
        ("dinbox.liveMention", "dlv.liveMention"),
    ):
        entry = decode_entry(FakeMsg(RECORDS[dinbox]["body"].encode()), "OWNER")  # type: ignore[arg-type]
        assert isinstance(entry, Entry), entry
        assert entry.raw == RECORDS[dlv]["body"].encode()
        owner = RECORDS[dlv]["subject"].rsplit(".", 1)[1]
        msg_id = f"{entry.msg_id}:{owner}:{entry.generation}"
        assert msg_id == RECORDS[dlv]["headers"]["Nats-Msg-Id"]


def test_control_replies_match_the_reference_for_refusals():
    service = DeliveryService.__new__(DeliveryService)  # only handle()'s pure paths are used
    service._ops = {}  # type: ignore[attr-defined]
    req = RECORDS["ctl.delivery.request.unsupportedOp"]
    reply = asyncio.run(service.handle(req["subject"], req["body"].encode()))
    assert reply == json.loads(RECORDS["ctl.delivery.reply.unsupportedOp"]["body"])
