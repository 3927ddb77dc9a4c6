"""Auth mode against a real nats-server: every profile gets exactly its grants (PROTOCOL §8.4).

Each refusal is paired with a positive control on the same connection, so a test cannot pass
because the identity can do nothing at all.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import nats
import pytest
from auth_client import Identity, connect_as, next_msg
from spaces import AuthSpace

from cotal_tui.protocol.errors import InvalidChannel
from cotal_tui.protocol.permissions import ChannelNotAllowed
from cotal_tui.server.agents import read_acl_row


async def _quiet(exc: Exception) -> None:
    return None


@pytest.fixture
async def manager(auth_space: AuthSpace) -> AsyncIterator[nats.aio.client.Client]:
    nc = await nats.connect(
        auth_space.url, user_credentials=str(auth_space.manager_creds), error_cb=_quiet
    )
    try:
        yield nc
    finally:
        await nc.close()


@pytest.fixture
async def identities() -> AsyncIterator[list[Identity]]:
    opened: list[Identity] = []
    try:
        yield opened
    finally:
        for ident in opened:
            await ident.close()


async def _agent(
    auth_space: AuthSpace, identities: list[Identity], name: str, **kwargs: object
) -> Identity:
    minted = await auth_space.mint(name, "agent", **kwargs)
    ident = await connect_as(auth_space.url, minted.path, minted.public_key)
    identities.append(ident)
    return ident


async def _as(
    auth_space: AuthSpace, identities: list[Identity], name: str, profile: str
) -> Identity:
    minted = await auth_space.mint(name, profile)
    ident = await connect_as(auth_space.url, minted.path, minted.public_key)
    identities.append(ident)
    return ident


# --- agent -------------------------------------------------------------------------------------


async def test_agent_subscribes_inside_allow_subscribe_and_is_refused_outside(
    auth_space: AuthSpace, identities: list[Identity], manager: nats.aio.client.Client
) -> None:
    s = auth_space.space
    agent = await _agent(
        auth_space,
        identities,
        "alice",
        subscribe=["general"],
        allow_subscribe=["general", "team.>"],
    )
    live = await agent.sub_accepted(f"cotal.{s}.chat.*.general")
    deep = await agent.sub_accepted(f"cotal.{s}.chat.*.team.backend")
    await manager.publish(f"cotal.{s}.chat.someone.general", b"hello")
    await manager.publish(f"cotal.{s}.chat.someone.team.backend", b"deep")
    assert (await next_msg(live)).data == b"hello"
    assert (await next_msg(deep)).data == b"deep"
    # Outside allowSubscribe: `team.>` does not cover `team`; `secret` is not listed at all.
    await agent.sub_refused(f"cotal.{s}.chat.*.secret")
    await agent.sub_refused(f"cotal.{s}.chat.*.team")
    await agent.sub_refused(f"cotal.{s}.chat.>")
    # The refusal text is lower-cased by nats-py, subject included.
    assert any("permissions violation for subscription" in e for e in agent.errors)


async def test_agent_publishes_only_on_allow_publish_and_only_as_itself(
    auth_space: AuthSpace, identities: list[Identity], manager: nats.aio.client.Client
) -> None:
    s = auth_space.space
    agent = await _agent(auth_space, identities, "alice", allow_publish=["general"])
    other = await _agent(auth_space, identities, "bob")
    assert await agent.js_publish(f"cotal.{s}.chat.{agent.id}.general") >= 1
    await agent.js_publish_denied(f"cotal.{s}.chat.{agent.id}.secret")
    await agent.js_publish_denied(f"cotal.{s}.chat.{other.id}.general")  # spoofed sender
    # Bob declared no allowPublish: default-deny.
    await other.js_publish_denied(f"cotal.{s}.chat.{other.id}.general")
    # DMs and anycasts only as itself.
    assert await agent.js_publish(f"cotal.{s}.inst.{other.id}.{agent.id}") >= 1
    await agent.js_publish_denied(f"cotal.{s}.inst.{agent.id}.{other.id}")
    assert await agent.js_publish(f"cotal.{s}.svc.reviewer.{agent.id}") >= 1
    await agent.js_publish_denied(f"cotal.{s}.svc.reviewer.{other.id}")
    info = await manager.jetstream().stream_info(f"CHAT_{s}", subjects_filter=">")
    assert info.state.subjects == {f"cotal.{s}.chat.{agent.id}.general": 1}


async def test_agent_binds_only_its_own_dm_dlv_and_role_durables(
    auth_space: AuthSpace, identities: list[Identity], manager: nats.aio.client.Client
) -> None:
    s = auth_space.space
    agent = await _agent(auth_space, identities, "alice", role="reviewer")
    other = await _agent(auth_space, identities, "bob", role="planner")
    # Positive controls: own durables answer, and a DM to alice arrives through dm_<alice>.
    await agent.request(f"$JS.API.CONSUMER.INFO.DM_{s}.dm_{agent.id}")
    await agent.request(f"$JS.API.CONSUMER.INFO.DLV_{s}.dlv_{agent.id}")
    await agent.request(f"$JS.API.CONSUMER.INFO.TASK_{s}.svc_reviewer")
    await other.js_publish(f"cotal.{s}.inst.{agent.id}.{other.id}", b'{"dm":1}')
    dm = await agent.nc.jetstream().pull_subscribe_bind(f"dm_{agent.id}", stream=f"DM_{s}")
    [msg] = await dm.fetch(1, timeout=2)
    assert msg.data == b'{"dm":1}'
    await msg.ack_sync()
    # Another agent's durables: neither info nor pulls.
    await agent.request_denied(f"$JS.API.CONSUMER.INFO.DM_{s}.dm_{other.id}")
    await agent.request_denied(
        f"$JS.API.CONSUMER.MSG.NEXT.DM_{s}.dm_{other.id}", {"batch": 1, "expires": 100_000_000}
    )
    await agent.request_denied(f"$JS.API.CONSUMER.INFO.DLV_{s}.dlv_{other.id}")
    await agent.request_denied(
        f"$JS.API.CONSUMER.MSG.NEXT.DLV_{s}.dlv_{other.id}", {"batch": 1, "expires": 100_000_000}
    )
    await agent.request_denied(f"$JS.API.CONSUMER.INFO.TASK_{s}.svc_planner")


async def test_agent_cannot_create_consumers_on_dm_task_dlv(
    auth_space: AuthSpace, identities: list[Identity]
) -> None:
    s = auth_space.space
    agent = await _agent(auth_space, identities, "alice")
    # Positive control: its own history consumer on CHAT, filter pinned to an allowed channel.
    hist = f"chathist_{agent.id}"
    filt = f"cotal.{s}.chat.*.general"
    body = {
        "stream_name": f"CHAT_{s}",
        "config": {"name": hist, "filter_subject": filt, "ack_policy": "none", "mem_storage": True},
    }
    await agent.request(f"$JS.API.CONSUMER.CREATE.CHAT_{s}.{hist}.{filt}", body)
    await agent.request(f"$JS.API.CONSUMER.DELETE.CHAT_{s}.{hist}")
    # Not on a channel outside allowSubscribe.
    secret = f"cotal.{s}.chat.*.secret"
    await agent.request_denied(
        f"$JS.API.CONSUMER.CREATE.CHAT_{s}.{hist}.{secret}",
        {**body, "config": {**body["config"], "filter_subject": secret}},
    )
    for stream, filt in (
        (f"DM_{s}", f"cotal.{s}.inst.{agent.id}.*"),
        (f"TASK_{s}", f"cotal.{s}.svc.reviewer.*"),
        (f"DLV_{s}", f"cotal.{s}.dlv.{agent.id}"),
    ):
        config = {"durable_name": "mine", "filter_subject": filt, "ack_policy": "explicit"}
        req = {"stream_name": stream, "config": config}
        await agent.request_denied(f"$JS.API.CONSUMER.CREATE.{stream}", req)
        await agent.request_denied(f"$JS.API.CONSUMER.CREATE.{stream}.mine.{filt}", req)
        await agent.request_denied(f"$JS.API.CONSUMER.DURABLE.CREATE.{stream}.mine", req)


async def test_agent_has_no_access_to_inbox_members_acl(
    auth_space: AuthSpace, identities: list[Identity]
) -> None:
    s = auth_space.space
    agent = await _agent(auth_space, identities, "alice")
    # Positive controls: the channel registry and the delivery lease are readable.
    await agent.request(f"$JS.API.STREAM.INFO.KV_cotal_channels_{s}")
    await agent.request(f"$JS.API.STREAM.INFO.KV_cotal_delivery_{s}")
    await agent.request(f"$JS.API.STREAM.INFO.CHAT_{s}")
    await agent.request_denied(f"$JS.API.STREAM.INFO.INBOX_{s}")
    await agent.request_denied(f"$JS.API.CONSUMER.CREATE.INBOX_{s}")
    await agent.js_publish_denied(f"cotal.{s}.dinbox.{agent.id}")
    await agent.js_publish_denied(f"cotal.{s}.dlv.{agent.id}")
    for bucket in (f"cotal_members_{s}", f"cotal_acl_{s}"):
        await agent.request_denied(f"$JS.API.STREAM.INFO.KV_{bucket}")
        await agent.request_denied(
            f"$JS.API.STREAM.MSG.GET.KV_{bucket}", {"last_by_subj": f"$KV.{bucket}.x"}
        )
        await agent.request_denied(f"$JS.API.CONSUMER.CREATE.KV_{bucket}.w.$KV.{bucket}.>")
        await agent.js_publish_denied(f"$KV.{bucket}.{agent.id}")
    # No write on the lease either.
    await agent.js_publish_denied(f"$KV.cotal_delivery_{s}.lease.0")


async def test_agent_writes_only_its_own_presence_key(
    auth_space: AuthSpace, identities: list[Identity]
) -> None:
    s = auth_space.space
    agent = await _agent(auth_space, identities, "alice")
    other = await _agent(auth_space, identities, "bob")
    assert await agent.js_publish(f"$KV.cotal_presence_{s}.{agent.id}", b'{"status":"idle"}')
    await agent.js_publish_denied(f"$KV.cotal_presence_{s}.{other.id}")
    await agent.js_publish_denied(f"$KV.cotal_channels_{s}.general")
    # Reading presence goes through a watch consumer it may create (named form).
    name = f"pw_{agent.id}"
    filt = f"$KV.cotal_presence_{s}.>"
    req = {
        "stream_name": f"KV_cotal_presence_{s}",
        "config": {
            "name": name,
            "filter_subject": filt,
            "ack_policy": "none",
            "deliver_policy": "last_per_subject",
            "deliver_subject": f"_INBOX_{agent.id}.watch",
            "mem_storage": True,
            "inactive_threshold": 5_000_000_000,
        },
    }
    watch = await agent.sub_accepted(f"_INBOX_{agent.id}.watch")
    await agent.request(f"$JS.API.CONSUMER.CREATE.KV_cotal_presence_{s}.{name}.{filt}", req)
    got = await next_msg(watch)
    assert got.subject == f"$KV.cotal_presence_{s}.{agent.id}"


async def test_agent_provisioning_commits_the_acl_row_and_validates_channels(
    auth_space: AuthSpace, manager: nats.aio.client.Client
) -> None:
    s = auth_space.space
    minted = await auth_space.mint(
        "alice", "agent", subscribe=["general"], allow_subscribe=["general", "review.>"], role="rev"
    )
    assert minted.provisioned is not None
    assert minted.provisioned.durables == {
        f"DM_{s}": f"dm_{minted.public_key}",
        f"TASK_{s}": "svc_rev",
        f"DLV_{s}": f"dlv_{minted.public_key}",
    }
    row = await read_acl_row(manager, s, minted.public_key)
    assert row is not None
    assert row["allowSubscribe"] == ["general", "review.>"]
    assert row["revision"] == 1
    assert isinstance(row["updatedAt"], int)
    js = manager.jetstream()
    dm = await js.consumer_info(f"DM_{s}", f"dm_{minted.public_key}")
    assert dm.config.filter_subject == f"cotal.{s}.inst.{minted.public_key}.*"
    assert dm.config.ack_wait == 60.0
    assert dm.config.inactive_threshold in (None, 0, 0.0)
    dlv = await js.consumer_info(f"DLV_{s}", f"dlv_{minted.public_key}")
    assert dlv.config.filter_subject == f"cotal.{s}.dlv.{minted.public_key}"
    task = await js.consumer_info(f"TASK_{s}", "svc_rev")
    assert task.config.filter_subject == f"cotal.{s}.svc.rev.*"
    # Re-provisioning the same id bumps the ACL revision (CAS update, previous + 1).
    from cotal_tui.server.agents import provision_agent

    again = await provision_agent(manager, s, minted.public_key, allow_subscribe=["general"])
    assert again.acl_revision == 2
    row = await read_acl_row(manager, s, minted.public_key)
    assert row is not None and row["allowSubscribe"] == ["general"] and row["revision"] == 2


@pytest.mark.parametrize(
    ("kwargs", "error", "named"),
    [
        (
            {"subscribe": ["general", "secret"], "allow_subscribe": ["general"]},
            ChannelNotAllowed,
            '"secret"',
        ),
        ({"subscribe": ["team"], "allow_subscribe": ["team.>"]}, ChannelNotAllowed, '"team"'),
        ({"allow_subscribe": ["ok", "bad..ch"], "subscribe": []}, InvalidChannel, '"bad..ch"'),
        ({"allow_publish": ["a b"]}, InvalidChannel, '"a b"'),
    ],
)
async def test_bad_channel_args_are_refused_and_nothing_is_written(
    auth_space: AuthSpace,
    manager: nats.aio.client.Client,
    kwargs: dict[str, object],
    error: type[Exception],
    named: str,
) -> None:
    with pytest.raises(error) as caught:
        await auth_space.mint("bad", "agent", **kwargs)
    assert named in str(caught.value)
    assert not (auth_space.state_dir / "bad.creds").exists()
    consumers = await manager.jetstream().consumers_info(f"DM_{auth_space.space}")
    assert consumers == []


# --- observer, admin ---------------------------------------------------------------------------


async def test_observer_reads_all_chat_and_nothing_else(
    auth_space: AuthSpace, identities: list[Identity], manager: nats.aio.client.Client
) -> None:
    s = auth_space.space
    obs = await _as(auth_space, identities, "watcher", "observer")
    tap = await obs.sub_accepted(f"cotal.{s}.chat.>")
    await manager.publish(f"cotal.{s}.chat.x.anything.deep", b"seen")
    assert (await next_msg(tap)).data == b"seen"
    await obs.sub_refused(f"cotal.{s}.inst.>")
    await obs.sub_refused(f"cotal.{s}.>")
    # CHAT consumers (bare create) allowed; DM not; no application publish at all.
    await obs.request(
        f"$JS.API.CONSUMER.CREATE.CHAT_{s}",
        {"stream_name": f"CHAT_{s}", "config": {"ack_policy": "none", "mem_storage": True}},
    )
    await obs.request(f"$JS.API.STREAM.INFO.KV_cotal_channels_{s}")
    await obs.request(f"$JS.API.STREAM.INFO.KV_cotal_presence_{s}")
    await obs.request_denied(
        f"$JS.API.CONSUMER.CREATE.DM_{s}",
        {"stream_name": f"DM_{s}", "config": {"ack_policy": "none"}},
    )
    await obs.request_denied(f"$JS.API.STREAM.INFO.DM_{s}")
    await obs.js_publish_denied(f"cotal.{s}.chat.{obs.id}.general")
    await obs.js_publish_denied(f"$KV.cotal_presence_{s}.{obs.id}")
    await obs.request_denied(f"$JS.API.STREAM.INFO.KV_cotal_acl_{s}")


async def test_admin_sees_the_whole_space_and_reads_dms_but_publishes_nothing(
    auth_space: AuthSpace, identities: list[Identity], manager: nats.aio.client.Client
) -> None:
    s = auth_space.space
    admin = await _as(auth_space, identities, "boss", "admin")
    tap = await admin.sub_accepted(f"cotal.{s}.>")
    await manager.publish(f"cotal.{s}.inst.a.b", b"dm")
    assert (await next_msg(tap)).data == b"dm"
    await admin.sub_refused("cotal.otherspace.>")
    await admin.request(f"$JS.API.STREAM.INFO.DM_{s}")
    await admin.request(
        f"$JS.API.CONSUMER.CREATE.DM_{s}",
        {"stream_name": f"DM_{s}", "config": {"ack_policy": "none", "mem_storage": True}},
    )
    await admin.request(f"$JS.API.STREAM.INFO.CHAT_{s}")
    await admin.js_publish_denied(f"cotal.{s}.chat.{admin.id}.general")
    await admin.js_publish_denied(f"cotal.{s}.inst.x.{admin.id}")
    await admin.request_denied(f"$JS.API.STREAM.INFO.INBOX_{s}")
    await admin.request_denied(f"$JS.API.STREAM.INFO.KV_cotal_members_{s}")


# --- delivery ----------------------------------------------------------------------------------


async def test_delivery_profile_does_its_job_and_nothing_else(
    auth_space: AuthSpace, identities: list[Identity]
) -> None:
    s = auth_space.space
    dlv = await _as(auth_space, identities, "delivery", "delivery")
    # Its job: the `reader` on INBOX, consumers on CHAT, members and lease writes,
    # dinbox/dlv publishes, the ctl.delivery responder.
    reader = {
        "stream_name": f"INBOX_{s}",
        "config": {
            "durable_name": "reader",
            "filter_subject": f"cotal.{s}.dinbox.>",
            "ack_policy": "explicit",
            "max_ack_pending": 1000,
        },
    }
    await dlv.request(f"$JS.API.CONSUMER.DURABLE.CREATE.INBOX_{s}.reader", reader)
    await dlv.request(f"$JS.API.CONSUMER.INFO.INBOX_{s}.reader")
    fanout = {
        "stream_name": f"CHAT_{s}",
        "config": {
            "durable_name": "fanout",
            "filter_subject": f"cotal.{s}.chat.>",
            "ack_policy": "explicit",
            "deliver_policy": "new",
        },
    }
    await dlv.request(f"$JS.API.CONSUMER.DURABLE.CREATE.CHAT_{s}.fanout", fanout)
    assert await dlv.js_publish(f"cotal.{s}.dinbox.Uowner", b"{}") >= 1
    assert await dlv.js_publish(f"cotal.{s}.dlv.Uowner", b"{}") >= 1
    assert await dlv.js_publish(f"$KV.cotal_members_{s}.general/Uowner", b"{}") >= 1
    assert await dlv.js_publish(f"$KV.cotal_delivery_{s}.lease.0", b"{}") >= 1
    await dlv.sub_accepted(f"cotal.{s}.ctl.delivery.*")
    await dlv.request(f"$JS.API.STREAM.INFO.KV_cotal_acl_{s}")
    # Nothing else: INBOX consumers only named `reader`, no native chat/dinbox/dlv subscription,
    # no ACL or presence writes, no chat publish.
    other = {**reader, "config": {**reader["config"], "durable_name": "other"}}
    await dlv.request_denied(f"$JS.API.CONSUMER.DURABLE.CREATE.INBOX_{s}.other", other)
    await dlv.request_denied(f"$JS.API.CONSUMER.CREATE.INBOX_{s}", other)
    await dlv.sub_refused(f"cotal.{s}.chat.>")
    await dlv.sub_refused(f"cotal.{s}.dinbox.>")
    await dlv.sub_refused(f"cotal.{s}.dlv.>")
    await dlv.js_publish_denied(f"$KV.cotal_acl_{s}.Uowner")
    await dlv.js_publish_denied(f"$KV.cotal_presence_{s}.{dlv.id}")
    await dlv.js_publish_denied(f"cotal.{s}.chat.{dlv.id}.general")
    await dlv.request_denied(
        f"$JS.API.CONSUMER.DURABLE.CREATE.DM_{s}.x",
        {"stream_name": f"DM_{s}", "config": {"durable_name": "x", "ack_policy": "explicit"}},
    )


async def test_manager_is_allow_all(auth_space: AuthSpace, identities: list[Identity]) -> None:
    s = auth_space.space
    mgr = await _as(auth_space, identities, "mgr", "manager")
    await mgr.sub_accepted(">")
    assert await mgr.js_publish(f"$KV.cotal_acl_{s}.x", b"{}") >= 1
    await mgr.request(f"$JS.API.STREAM.INFO.INBOX_{s}")


async def test_a_creds_file_from_another_trust_chain_is_refused(
    auth_space: AuthSpace, tmp_path: object
) -> None:
    from cotal_tui.server.auth import ensure_space_auth
    from cotal_tui.server.mint import mint

    foreign = ensure_space_auth(auth_space.state_dir.parent / "foreign", auth_space.space)
    minted = await mint(
        "x",
        profile="manager",
        space=auth_space.space,
        auth=foreign,
        state_dir=auth_space.state_dir.parent / "foreign",
        server=None,
    )
    with pytest.raises(Exception) as caught:
        await nats.connect(
            auth_space.url,
            user_credentials=str(minted.path),
            error_cb=_quiet,
            allow_reconnect=False,
            max_reconnect_attempts=1,
            connect_timeout=2,
        )
    assert "authorization" in str(caught.value).lower() or "auth" in repr(caught.value).lower()
