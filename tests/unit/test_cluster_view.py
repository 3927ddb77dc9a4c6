"""The cluster's view reduced to the verdict table's `cluster` word (mesh/cluster_view.py), pure."""

from __future__ import annotations

from cotal_tui.mesh.cluster_view import (
    STALL_AFTER_MS,
    ClusterView,
    ConsumerState,
    ReplicaState,
    StreamState,
    _ts_ms,
    cluster_json,
    cluster_lines,
    current_view,
    optional_streams,
    routed_nodes,
    space_stream_names,
)

UP = (
    ReplicaState("n2", current=True, offline=False, lag=0, active_ms=100.0),
    ReplicaState("n3", current=True, offline=False, lag=0, active_ms=120.0),
)
DOWN = (
    ReplicaState("n2", current=True, offline=False, lag=0, active_ms=100.0),
    ReplicaState("n3", current=False, offline=True, lag=None, active_ms=9_000.0),
)


def _view(streams=None, consumers=(), routed: int | None = 3) -> ClusterView:
    names = space_stream_names("s")
    streams = streams or [StreamState(n, leader="n1", replicas=UP, wanted=3) for n in names]
    return ClusterView(True, "n1", "cotal", tuple(streams), tuple(consumers), routed=routed)


def test_the_eleven_space_streams_with_the_dead_letter_store_last():
    names = space_stream_names("s")
    assert len(names) == 11 and names[0] == "CHAT_s" and "KV_cotal_delivery_s" in names
    assert names[-1] == "COTALTUI_DEAD_s" and optional_streams("s") == {"COTALTUI_DEAD_s"}


def test_not_a_cluster_is_not_applicable():
    assert ClusterView(False, "n1").word() == "n/a"
    assert cluster_lines(ClusterView(False, "n1")) == ()
    assert cluster_lines(None) == ()


def test_all_leaders_all_replicas_current_and_all_routed_is_ok():
    assert _view().word() == "ok"
    assert _view().detail() == "3/3 nodes answering"
    assert _view(routed=None).word() == "ok"  # no_advertise: the replicas alone decide


def test_a_replica_offline_or_not_current_is_a_node_down_at_once():
    down = _view([StreamState(n, "n1", DOWN, 3) for n in space_stream_names("s")])
    assert down.word() == "node-down"
    assert down.nodes_answering == ["n1", "n2"] and down.nodes_known == ["n1", "n2", "n3"]
    assert down.nodes_down == ["n3"]
    assert down.detail() == "2/3 nodes answering, replicas offline or lagging on n3"
    assert cluster_lines(down)[1] == "CHAT_s: R3 leader n1, current n2, lagging n3"
    # one KV bucket's replica behind is enough (a restarted node still catching up)
    behind = (UP[0], ReplicaState("n3", current=False, offline=False, lag=40, active_ms=10.0))
    names = space_stream_names("s")
    streams = [StreamState(n, "n1", behind if "acl" in n else UP, 3) for n in names]
    assert _view(streams).word() == "node-down" and _view(streams).nodes_down == ["n3"]


def test_fewer_nodes_routed_than_the_streams_name_is_a_node_down_at_once():
    """Right after a kill -9 NATS still calls the dead replica current (for up to 10 s), but the
    connected node's routes to it dropped: its INFO advertises one URL fewer."""
    view = _view(routed=2)
    assert view.nodes_down == [] and view.unrouted == 1
    assert view.word() == "node-down"
    assert view.answering == 2
    assert view.detail() == "2/3 nodes answering, n1 routed to 2 of 3"
    assert cluster_lines(view)[:2] == (
        # not "2/3 nodes answering: n1, n2, n3": the replica reports lag behind the routes
        "node-down (connected to n1, 2/3 nodes answering by its routes; replica reports still "
        "name n1, n2, n3)",
        "n1 is routed to 2 of the 3 nodes the streams name: 1 not answering",
    )
    alone = _view(routed=1)
    said = f"{alone.word()} (connected to n1, 1/3 nodes answering: n1)"  # only the routes' word
    assert cluster_lines(alone)[0] == said
    out = cluster_json(view)
    assert out is not None and out["verdict"] == "node-down" and out["nodesRouted"] == 2
    assert out["answering"] == 2 and len(out["nodesAnswering"]) == 3  # names: not which one
    # a leaderless stream or a stalled consumer is named first
    streams = [StreamState(n, "n1", UP, 3) for n in space_stream_names("s")]
    streams[0] = StreamState(streams[0].name, error="no answer in 2s (TimeoutError)")
    assert _view(streams, routed=2).word() == "lost"


def test_routed_nodes_from_the_servers_info():
    assert routed_nodes({"connect_urls": ["a:1", "b:1", "c:1"]}) == 3
    assert routed_nodes({"connect_urls": ["a:1", "a:1"]}) == 1
    assert routed_nodes({"connect_urls": []}) is None
    assert routed_nodes({}) is None


def test_the_dead_letter_store_is_read_when_present_and_left_out_when_absent():
    names = space_stream_names("s")
    streams = [StreamState(n, "n1", UP, 3) for n in names]
    dead = names.index("COTALTUI_DEAD_s")
    streams[dead] = StreamState(names[dead], error="stream not found (err_code 10059)", absent=True)
    view = _view(streams)
    assert view.word() == "ok"
    assert not any("COTALTUI_DEAD_s" in line for line in cluster_lines(view))
    assert "COTALTUI_DEAD_s" not in [s["stream"] for s in cluster_json(view)["streams"]]
    # present: leaderless or a replica down there counts like any space stream
    streams[dead] = StreamState(names[dead], error="no answer in 2s (TimeoutError)")
    assert _view(streams).word() == "lost"
    assert _view(streams).detail() == "no leader for COTALTUI_DEAD_s"
    streams[dead] = StreamState(names[dead], "n1", DOWN, 3)
    assert _view(streams).word() == "node-down"


def test_a_stream_without_leader_is_lost_and_a_refused_one_is_left_out():
    names = space_stream_names("s")
    streams = [StreamState(n, "n1", UP, 3) for n in names]
    streams[1] = StreamState(names[1], error="no answer in 2s (TimeoutError)")
    view = _view(streams)
    assert view.word() == "lost"
    assert view.detail() == "no leader for DM_s"
    assert "DM_s: NO LEADER — no answer in 2s (TimeoutError)" in cluster_lines(view)
    streams[1] = StreamState(names[1], error="refused", denied=True)
    assert _view(streams).word() == "ok"
    every = [StreamState(n, error="refused", denied=True) for n in names]
    assert _view(every).word() == "n/a"  # nothing readable: no evidence either way


def test_a_consumer_with_work_waiting_and_no_delivery_is_stalled():
    idle = STALL_AFTER_MS + 1
    stalled = ConsumerState("CHAT_s", "fanout", "n1", pending=5, ack_pending=0, idle_ms=idle)
    assert _view(consumers=[stalled]).word() == "stalled"
    assert (
        "CHAT_s/fanout has 5 waiting and acked nothing for" in _view(consumers=[stalled]).detail()
    )
    quiet = ConsumerState("CHAT_s", "fanout", "n1", pending=0, ack_pending=0, idle_ms=60_000)
    assert _view(consumers=[quiet]).word() == "ok"  # nothing to do is not a stall
    busy = ConsumerState("CHAT_s", "fanout", "n1", pending=50, ack_pending=3, idle_ms=200)
    assert _view(consumers=[busy]).word() == "ok"
    leaderless = ConsumerState("INBOX_s", "reader", error="no answer in 2s (TimeoutError)")
    assert _view(consumers=[leaderless]).word() == "lost"
    absent = ConsumerState("INBOX_s", "reader", error="consumer not found", absent=True)
    assert _view(consumers=[absent]).word() == "ok"  # no daemon yet: the lease rows say so


def test_server_timestamps_and_json():
    assert _ts_ms("1970-01-01T00:00:01.500000000Z") == 1500.0
    assert _ts_ms("0001-01-01T00:00:00Z") is None
    assert _ts_ms("") is None
    out = cluster_json(_view())
    assert out is not None
    assert out["verdict"] == "ok" and out["connectedTo"] == "n1"
    assert out["nodesAnswering"] == ["n1", "n2", "n3"]
    assert out["nodesRouted"] == 3 and out["nodesDown"] == []
    assert out["streams"][0] == {
        "stream": "CHAT_s",
        "leader": "n1",
        "replicas": 3,
        "current": ["n2", "n3"],
        "lagging": [],
        "error": None,
    }
    assert cluster_json(None) is None


def test_a_clustered_server_not_read_is_unread_never_ok():
    view = ClusterView(True, "n1", "cotal", unread="not read yet")
    assert view.word() == "unread"
    assert view.detail() == "not read yet"
    assert cluster_lines(view) == ("unread (connected to n1: not read yet)",)


def test_a_kept_view_is_unread_after_a_reconnect_and_counts_a_dropped_route_at_once():
    """The console keeps its last read between polls: a reconnect (its node may be the dead one)
    makes it unread, and a route dropped since (a pushed INFO) makes it node-down, at once."""
    info3 = {"server_name": "n1", "cluster": "cotal", "connect_urls": ["a:1", "b:1", "c:1"]}
    info2 = {**info3, "connect_urls": ["a:1", "c:1"]}
    kept = ClusterView(True, "n1", "cotal", _view().streams, (), routed=3, generation=4)
    assert current_view(kept, generation=4, info=info3) is kept
    dropped = current_view(kept, generation=4, info=info2)
    assert dropped is not None and dropped.word() == "node-down" and dropped.routed == 2
    moved = current_view(kept, generation=5, info={**info3, "server_name": "n2"})
    assert moved is not None and moved.word() == "unread" and moved.connected == "n2"
    assert "reconnected since the last read" in moved.detail()
    assert current_view(None, generation=5, info=info3) is None
    single = ClusterView(False, "n1")
    assert current_view(single, generation=9, info={}) is single
