"""The §8.4 permission profiles as pure data, written out by hand from PROTOCOL.md."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cotal_tui.protocol import channel_in_allow, chat_subject, subject_matches
from cotal_tui.protocol.errors import InvalidChannel
from cotal_tui.protocol.permissions import (
    ChannelNotAllowed,
    Permissions,
    admin_permissions,
    agent_permissions,
    delivery_permissions,
    manager_permissions,
    observer_permissions,
    profile_permissions,
    resolve_agent_channels,
)

S = "main"
ID = "UAGENTXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX"


def test_agent_lists_are_exactly_the_protocol_ones() -> None:
    p = agent_permissions(S, ID, allow_subscribe=["general", "team.>"], allow_publish=["general"])
    assert p.sub_allow == (
        f"_INBOX_{ID}.>",
        f"cotal.main.ctl.delivery.{ID}.>",
        "cotal.main.chat.*.general",
        "cotal.main.chat.*.team.>",
    )
    assert p.pub_allow == (
        f"cotal.main.chat.{ID}.general",
        f"cotal.main.inst.*.{ID}",
        f"cotal.main.svc.*.{ID}",
        f"cotal.main.ctl.self.{ID}",
        f"cotal.main.ctl.delivery.{ID}",
        "$JS.API.INFO",
        "$JS.API.STREAM.INFO.CHAT_main",
        "$JS.API.STREAM.INFO.KV_cotal_presence_main",
        "$JS.API.STREAM.INFO.KV_cotal_channels_main",
        f"$JS.API.CONSUMER.CREATE.CHAT_main.chathist_{ID}.cotal.main.chat.*.general",
        f"$JS.API.CONSUMER.CREATE.CHAT_main.chathist_{ID}.cotal.main.chat.*.team.>",
        f"$JS.API.CONSUMER.INFO.CHAT_main.chathist_{ID}",
        f"$JS.API.CONSUMER.MSG.NEXT.CHAT_main.chathist_{ID}",
        f"$JS.API.CONSUMER.DELETE.CHAT_main.chathist_{ID}",
        f"$JS.API.CONSUMER.INFO.DM_main.dm_{ID}",
        f"$JS.API.CONSUMER.MSG.NEXT.DM_main.dm_{ID}",
        f"$JS.ACK.DM_main.dm_{ID}.>",
        f"$JS.API.CONSUMER.INFO.DLV_main.dlv_{ID}",
        f"$JS.API.CONSUMER.MSG.NEXT.DLV_main.dlv_{ID}",
        f"$JS.ACK.DLV_main.dlv_{ID}.>",
        "$JS.API.CONSUMER.CREATE.KV_cotal_presence_main.>",
        "$JS.API.CONSUMER.INFO.KV_cotal_presence_main.>",
        "$JS.FC.>",
        f"$KV.cotal_presence_main.{ID}",
        "$JS.API.STREAM.MSG.GET.KV_cotal_channels_main",
        "$JS.API.CONSUMER.CREATE.KV_cotal_channels_main.>",
        "$JS.API.CONSUMER.INFO.KV_cotal_channels_main.>",
        "$JS.API.STREAM.INFO.KV_cotal_delivery_main",
        "$JS.API.STREAM.MSG.GET.KV_cotal_delivery_main",
    )
    assert p.pub_deny == (
        "$JS.API.CONSUMER.CREATE.DM_main",
        "$JS.API.CONSUMER.CREATE.DM_main.>",
        "$JS.API.CONSUMER.DURABLE.CREATE.DM_main.>",
        "$JS.API.CONSUMER.CREATE.TASK_main",
        "$JS.API.CONSUMER.CREATE.TASK_main.>",
        "$JS.API.CONSUMER.DURABLE.CREATE.TASK_main.>",
        "$JS.API.CONSUMER.CREATE.DLV_main",
        "$JS.API.CONSUMER.CREATE.DLV_main.>",
        "$JS.API.CONSUMER.DURABLE.CREATE.DLV_main.>",
    )
    assert p.sub_deny == ()


def test_agent_has_no_grant_on_inbox_members_acl_or_lease_writes() -> None:
    p = agent_permissions(S, ID, allow_subscribe=["general"], allow_publish=["general"])
    every = " ".join(p.pub_allow + p.sub_allow)
    for forbidden in ("INBOX_main", "cotal_members_main", "cotal_acl_main", "dinbox", ".dlv."):
        assert forbidden not in every
    assert "$KV.cotal_delivery_main" not in every
    assert not any(s.startswith("$JS.API.CONSUMER.CREATE.DM_") for s in p.pub_allow)


def test_agent_allow_publish_is_default_deny() -> None:
    p = agent_permissions(S, ID, allow_subscribe=["general"], allow_publish=[])
    assert not any(s.startswith("cotal.main.chat.") for s in p.pub_allow)


def test_agent_role_and_spawn_grants() -> None:
    base = agent_permissions(S, ID, allow_subscribe=[], allow_publish=[])
    p = agent_permissions(S, ID, allow_subscribe=[], allow_publish=[], role="reviewer", spawn=True)
    added = [s for s in p.pub_allow if s not in base.pub_allow]
    assert added == [
        f"cotal.main.ctl.manager.{ID}",
        "$JS.API.CONSUMER.INFO.TASK_main.svc_reviewer",
        "$JS.API.CONSUMER.MSG.NEXT.TASK_main.svc_reviewer",
        "$JS.ACK.TASK_main.svc_reviewer.>",
    ]
    assert f"cotal.main.ctl.manager.{ID}" not in base.pub_allow


def test_agent_space_and_role_are_tokenized() -> None:
    p = agent_permissions("prod.eu", ID, allow_subscribe=["x"], allow_publish=[], role="a b")
    assert "cotal.prod_eu.chat.*.x" in p.sub_allow
    assert "$JS.API.CONSUMER.INFO.TASK_prod_eu.svc_a_b" in p.pub_allow


def test_agent_refuses_invalid_channels_naming_them() -> None:
    with pytest.raises(InvalidChannel, match='"a..b"'):
        agent_permissions(S, ID, allow_subscribe=["a..b"], allow_publish=[])
    with pytest.raises(InvalidChannel, match='"x.>.y"'):
        agent_permissions(S, ID, allow_subscribe=[], allow_publish=["x.>.y"])


def test_observer_and_admin() -> None:
    obs = observer_permissions(S, "UOBS")
    assert obs.sub_allow == ("cotal.main.chat.>", "_INBOX_UOBS.>")
    assert "$JS.API.CONSUMER.CREATE.CHAT_main" in obs.pub_allow
    assert "$JS.API.CONSUMER.CREATE.CHAT_main.>" in obs.pub_allow
    assert "$JS.API.CONSUMER.CREATE.KV_cotal_presence_main.>" in obs.pub_allow
    assert "$JS.API.STREAM.MSG.GET.KV_cotal_channels_main" in obs.pub_allow
    assert "$JS.FC.>" in obs.pub_allow
    # No application publish grant, nothing on DM.
    assert not any(s.startswith("cotal.") or s.startswith("$KV.") for s in obs.pub_allow)
    assert not any("DM_main" in s for s in obs.pub_allow)
    admin = admin_permissions(S, "UADM")
    assert admin.sub_allow == ("cotal.main.>", "_INBOX_UADM.>")
    extra = [s for s in admin.pub_allow if s not in observer_permissions(S, "UADM").pub_allow]
    assert extra and all("DM_main" in s for s in extra)
    assert "$JS.API.STREAM.INFO.DM_main" in extra
    assert not any(s.startswith("cotal.") or s.startswith("$KV.") for s in admin.pub_allow)


def test_delivery() -> None:
    d = delivery_permissions(S, "UDLV")
    assert d.sub_allow == ("_INBOX_UDLV.>", "cotal.main.ctl.delivery.*")
    inbox = [s for s in d.pub_allow if "INBOX_main" in s]
    assert inbox == [
        "$JS.API.STREAM.INFO.INBOX_main",
        "$JS.API.CONSUMER.CREATE.INBOX_main.reader.>",
        "$JS.API.CONSUMER.DURABLE.CREATE.INBOX_main.reader",
        "$JS.API.CONSUMER.INFO.INBOX_main.reader",
        "$JS.API.CONSUMER.MSG.NEXT.INBOX_main.reader",
        "$JS.API.CONSUMER.DELETE.INBOX_main.reader",
        "$JS.ACK.INBOX_main.reader.>",
        # beyond the reference profile (issue 11): single reads, to count what a dead daemon
        # held that CHAT evicted below the fan-out's floor (delivery/chat_gaps.py)
        "$JS.API.STREAM.MSG.GET.INBOX_main",
    ]
    assert "$JS.API.STREAM.MSG.GET.CHAT_main" in d.pub_allow
    for grant in (
        "$JS.API.CONSUMER.CREATE.CHAT_main.>",
        "$JS.API.CONSUMER.DURABLE.CREATE.CHAT_main.>",
        "$JS.ACK.CHAT_main.>",
        "$KV.cotal_members_main.>",
        "$KV.cotal_delivery_main.lease.*",
        "cotal.main.dinbox.*",
        "cotal.main.dlv.*",
        "cotal.main.ctl.delivery.*.reply.>",
        "$JS.API.STREAM.MSG.GET.KV_cotal_acl_main",
        "$JS.API.CONSUMER.DELETE.KV_cotal_members_main.>",
    ):
        assert grant in d.pub_allow, grant
    assert "$JS.API.CONSUMER.CREATE.CHAT_main" not in d.pub_allow
    assert not any(s.startswith("$KV.cotal_acl_") for s in d.pub_allow)
    assert not any(s.startswith("cotal.main.chat") for s in d.pub_allow + d.sub_allow)
    # Beyond the reference profile: the project's dead-letter store (issue 10), written and
    # read by the daemon, read by observer and admin; agents get nothing of it.
    for grant in (
        "cotaltui.main.dead.>",
        "$JS.API.STREAM.INFO.COTALTUI_DEAD_main",
        "$JS.API.STREAM.MSG.GET.COTALTUI_DEAD_main",
    ):
        assert grant in d.pub_allow, grant
    reads = {"$JS.API.STREAM.INFO.COTALTUI_DEAD_main", "$JS.API.STREAM.MSG.GET.COTALTUI_DEAD_main"}
    assert reads <= set(observer_permissions(S, "U1").pub_allow)
    assert reads <= set(admin_permissions(S, "U1").pub_allow)
    agent = agent_permissions(S, "U1", allow_subscribe=["g"], allow_publish=["g"])
    assert not any("DEAD" in s or s.startswith("cotaltui.") for s in agent.pub_allow)


def test_manager_is_allow_all_and_claims_shapes() -> None:
    assert manager_permissions().to_claims() == {}
    assert manager_permissions().allow_all
    p = Permissions(pub_allow=("a",), pub_deny=("b",), sub_allow=("c",))
    assert p.to_claims() == {"pub": {"allow": ["a"], "deny": ["b"]}, "sub": {"allow": ["c"]}}
    assert profile_permissions("observer", S, "U1") == observer_permissions(S, "U1")
    with pytest.raises(ValueError, match="unknown profile"):
        profile_permissions("root", S, "U1")


def test_resolve_agent_channels() -> None:
    r = resolve_agent_channels()
    assert (r.subscribe, r.allow_subscribe, r.allow_publish) == (("general",), ("general",), ())
    r = resolve_agent_channels(["a"], None, ["b"])
    assert r.allow_subscribe == ("a",)
    r = resolve_agent_channels(["review.x"], ["review.>"], None)
    assert r.subscribe == ("review.x",)
    with pytest.raises(ChannelNotAllowed, match='"review"'):
        resolve_agent_channels(["review"], ["review.>"])
    with pytest.raises(ChannelNotAllowed, match='"b"'):
        resolve_agent_channels(["a", "b"], ["a"])
    with pytest.raises(InvalidChannel, match='"a b"'):
        resolve_agent_channels(["general"], ["general"], ["a b"])
    assert issubclass(ChannelNotAllowed, InvalidChannel)


# The broker's view (the agent's sub.allow patterns on chat subjects) must agree with the
# protocol's view (channel_in_allow on channels), or the daemon and the broker would disagree
# about who may read what.
_SEGMENT = st.sampled_from(["a", "b", "team", "x-1", "r_2"])
_CONCRETE = st.lists(_SEGMENT, min_size=1, max_size=3).map(".".join)
_PATTERN = st.builds(
    lambda segs, tail: ".".join(segs + ([tail] if tail else [])),
    st.lists(st.one_of(_SEGMENT, st.just("*")), min_size=1, max_size=3),
    st.sampled_from([None, ">"]),
)


@given(allow=st.lists(_PATTERN, min_size=1, max_size=4), channel=_CONCRETE)
def test_broker_grants_agree_with_channel_in_allow(allow: list[str], channel: str) -> None:
    p = agent_permissions(S, ID, allow_subscribe=allow, allow_publish=[])
    chat_patterns = [s for s in p.sub_allow if s.startswith("cotal.main.chat.")]
    live = chat_subject(S, "USENDER", channel)
    broker_allows = any(subject_matches(pattern, live) for pattern in chat_patterns)
    assert broker_allows == channel_in_allow(allow, channel)


def test_operator_is_an_agent_on_every_channel_plus_read_only_monitoring() -> None:
    from cotal_tui.protocol.permissions import OWN_PROFILES, PROFILES, operator_permissions

    assert "operator" in OWN_PROFILES and "operator" in PROFILES
    p = operator_permissions(S, ID)
    agent = agent_permissions(S, ID, allow_subscribe=[">"], allow_publish=[">"])
    assert profile_permissions("operator", S, ID) == p
    assert set(agent.pub_allow) <= set(p.pub_allow) and p.sub_allow == agent.sub_allow
    assert set(p.pub_allow) - set(agent.pub_allow) == {
        *(f"$JS.API.STREAM.INFO.{n}" for n in ("DM_main", "TASK_main", "INBOX_main", "DLV_main")),
        "$JS.API.STREAM.INFO.KV_cotal_members_main",
        "$JS.API.STREAM.INFO.KV_cotal_acl_main",
        "$JS.API.CONSUMER.INFO.CHAT_main.fanout",
        "$JS.API.CONSUMER.INFO.INBOX_main.reader",
        "$JS.API.STREAM.MSG.GET.CHAT_main",
        "$JS.API.STREAM.INFO.KV_cotal_membership_main",  # the 0.9.0 broker feed (display only)
        "$JS.API.STREAM.MSG.GET.KV_cotal_membership_main",
        "$JS.API.STREAM.INFO.COTALTUI_DEAD_main",  # the project's own dead-letter store
        "$JS.API.STREAM.MSG.GET.COTALTUI_DEAD_main",
    }
    assert set(p.pub_deny) - set(agent.pub_deny) == {
        "$JS.API.CONSUMER.CREATE.INBOX_main",
        "$JS.API.CONSUMER.CREATE.INBOX_main.>",
        "$JS.API.CONSUMER.DURABLE.CREATE.INBOX_main.>",
    }
    every = (*p.pub_allow, *p.sub_allow)
    assert not p.allow_all and ">" not in every and "cotal.main.>" not in every
    assert not any(".MSG.GET." in g and ("DM_" in g or "DLV_" in g or "INBOX_" in g) for g in every)
