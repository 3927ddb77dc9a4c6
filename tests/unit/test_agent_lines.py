"""The agent's JSON-lines protocol (pure) and the card a cred's JWT carries."""

from __future__ import annotations

import json

import pytest

from cotal_tui.agent.lines import (
    PROTOCOL,
    VERSION,
    BadLine,
    Command,
    encode,
    hello_event,
    message_event,
    parse_command,
)
from cotal_tui.protocol.cred_card import card_tags, cred_card
from cotal_tui.protocol.models import CotalMessage
from cotal_tui.protocol.permissions import agent_permissions


def test_commands_parse_with_their_id():
    cmd = parse_command('{"op":"send","channel":"general","text":"hi","id":7}')
    assert cmd == Command("send", {"channel": "general", "text": "hi"}, 7)
    assert cmd.reply(seq=3) == {"reply": "send", "id": 7, "ok": True, "seq": 3}
    assert parse_command('{"op":"quit"}') == Command("quit", {}, None)
    st = parse_command('{"op":"status","activity":"reading"}')
    assert isinstance(st, Command) and st.args == {"activity": "reading"}


@pytest.mark.parametrize(
    ("line", "op", "error"),
    [
        ("hello", None, "not JSON"),
        ("[1]", None, "a command is a JSON object, got list"),
        ('{"channel":"x"}', None, 'missing "op"'),
        ('{"op":"fly","id":"a"}', "fly", 'unknown op "fly"; expected one of join, leave'),
        ('{"op":"join"}', "join", 'join: "channel" is missing'),
        ('{"op":"join","channel":"  "}', "join", 'join: "channel" is not a non-empty string'),
        ('{"op":"dm","to":"bob"}', "dm", 'dm: "text" is missing'),
        ('{"op":"send","channel":"g","text":"x","mentions":"bob"}', "send", "not a list"),
        ('{"op":"status"}', "status", 'give "status"'),
        ('{"op":"status","status":"offline"}', "status", "expected one of idle, waiting"),
    ],
)
def test_bad_lines_say_what_is_wrong(line, op, error):
    bad = parse_command(line)
    assert isinstance(bad, BadLine), bad
    reply = bad.reply()
    assert reply["ok"] is False and reply["reply"] == op
    assert error in reply["error"], reply["error"]


def test_bad_line_keeps_the_id_it_could_read():
    assert parse_command('{"op":"fly","id":"x1"}').reply()["id"] == "x1"  # type: ignore[union-attr]


def test_encode_is_one_line_and_keeps_unicode():
    line = encode({"text": "zwei\nZeilen — ✓"})
    assert "\n" not in line and "✓" in line and json.loads(line)["text"] == "zwei\nZeilen — ✓"


def test_hello_and_message_shapes():
    hello = hello_event(agent_id="U1", name="alice", role=None, space="s", server="nats://x",
                        boot=["general"], read=["general"], post=[])  # fmt: skip
    assert hello["event"] == "hello" and hello["protocol"] == PROTOCOL
    assert hello["version"] == VERSION and hello["acl"] == {"read": ["general"], "post": []}
    msg = CotalMessage.from_wire(
        {"id": "m1", "ts": 5, "space": "s", "from": {"id": "U2", "name": "bob"},
         "channel": "general", "parts": [{"kind": "text", "text": "hi"}]}
    )  # fmt: skip
    ev = message_event(msg, "channel", "general", "backlog")
    assert ev == {"event": "message", "kind": "channel", "id": "m1", "ts": 5,
                  "from": {"id": "U2", "name": "bob"}, "text": "hi", "via": "backlog",
                  "channel": "general"}  # fmt: skip


def test_cred_card_reads_tags_and_the_acl_from_permissions():
    ident = "U" + "A" * 55
    perms = agent_permissions("sp", ident, allow_subscribe=["general", "team.*"],
                              allow_publish=["general"])  # fmt: skip
    claims = {
        "sub": ident,
        "name": "agent",
        "nats": {**perms.to_claims(), "tags": card_tags("Ada Lovelace", "rev:iew", ["general"])},
    }
    card = cred_card(claims, "sp")
    assert (card.name, card.role, card.boot) == ("Ada Lovelace", "rev:iew", ("general",))
    assert card.read == ("general", "team.*") and card.post == ("general",)
    assert card.may_read("team.x") and not card.may_read("ops")
    assert card.may_post("general") and not card.may_post("team.x")
    assert card.is_agent


def test_cred_card_without_tags_or_limits():
    card = cred_card({"sub": "UX", "name": "manager", "nats": {}}, "sp")
    assert card.name is None and card.boot == () and card.read is None and card.post is None
    assert card.may_post("anything") and not card.is_agent


def _write_agent_creds(tmp_path, tags):
    from cotal_tui.server.auth import ensure_space_auth, write_creds
    from cotal_tui.server.nats_jwt import Nkey

    auth = ensure_space_auth(tmp_path / "state", "sp")
    user = Nkey.create("user")
    perms = agent_permissions("sp", user.public, allow_subscribe=["general"], allow_publish=[])
    path = tmp_path / "a.creds"
    write_creds(path, auth.mint_user("agent", perms, user, tags))
    return path


def test_agent_identity_comes_from_the_cred_and_name_only_without_one(tmp_path):
    from cotal_tui.agent.session import AgentOptions, AgentSetupError, resolve_identity

    tagged = _write_agent_creds(tmp_path, card_tags("ada", "planner", ["general"]))
    card, name, notes = resolve_identity(AgentOptions(str(tagged), space="sp", name="zed"))
    assert (name, card.role, card.boot) == ("ada", "planner", ("general",))
    assert notes == ["--name zed ignored: the cred names this agent ada"]
    assert card.read == ("general",) and card.post == ()

    bare = _write_agent_creds(tmp_path, None)
    with pytest.raises(AgentSetupError, match="carries no agent name.*pass --name NAME"):
        resolve_identity(AgentOptions(str(bare), space="sp"))
    _card, name, _ = resolve_identity(AgentOptions(str(bare), space="sp", name="zed"))
    assert name == "zed"


def test_plain_and_feed_mark_backlog():
    from dataclasses import replace

    from cotal_tui.console.fixtures import agent_data
    from cotal_tui.console.plain import message_line
    from cotal_tui.console.snapshot import FeedEntry
    from cotal_tui.tui.render import feed_row

    m = agent_data().messages[1]
    entry = FeedEntry(seq=1, id=m.id, ts=m.ts, sender_id=m.sender_id, sender_name=m.sender_name,
                      sender_role=None, mode="channel", target="general",
                      target_label="#general", text=m.text, mentions=(), historical=False,
                      to_me=False, backlog=m.backlog)  # fmt: skip
    assert m.backlog and message_line(entry).endswith("deploy done, all green (backlog)")
    assert feed_row(entry).cells[3][0] == "backlog · deploy done, all green"
    live = replace(entry, backlog=False)
    assert not message_line(live).endswith(")") and feed_row(live).cells[3][0] == m.text
