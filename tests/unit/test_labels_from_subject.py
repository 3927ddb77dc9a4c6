"""Issue 10 case 4: what the operator sees as a message's channel or target comes from the
subject it travelled on, never from the sender's body."""

from __future__ import annotations

from cotal_tui.console.adapter import message_input
from cotal_tui.mesh.messages import Inbound, check_live_chat, check_pumped
from cotal_tui.protocol.models import CotalMessage


def _msg(**kw: object) -> CotalMessage:
    body = {"id": "m1", "ts": 1, "space": "s", "from": {"id": "UALICE", "name": "alice"},
            "parts": [{"kind": "text", "text": "hi"}], **kw}  # fmt: skip
    return CotalMessage.from_wire(body)


def test_channel_label_is_the_subjects() -> None:
    m = _msg(channel="exec")
    decision = check_live_chat("cotal.s.chat.UALICE.dur", m.to_json(), "UBOB")
    assert decision.verdict == "emit" and decision.channel == "dur"
    inbound = Inbound(m, "channel", "cotal.s.chat.UALICE.dur", channel=decision.channel)
    assert message_input(inbound).target == "dur"


def test_dm_target_is_the_subjects() -> None:
    m = _msg(to="UCAROL")  # claims to be addressed elsewhere
    decision = check_pumped("cotal.s.inst.UBOB.UALICE", m.to_json(), "UBOB")
    assert decision.verdict == "emit" and decision.kind == "dm"
    inbound = Inbound(m, "dm", "cotal.s.inst.UBOB.UALICE")
    assert message_input(inbound).target == "UBOB"


def test_anycast_role_is_the_subjects() -> None:
    m = _msg(toService="reviewer")
    inbound = Inbound(m, "anycast", "cotal.s.svc.builder.UALICE")
    assert message_input(inbound).target == "builder"
