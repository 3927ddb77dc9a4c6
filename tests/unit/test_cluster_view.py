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


def _view(streams=None, consumers=()) -> ClusterView:
    names = space_stream_names("s")
    streams = streams or [StreamState(n, leader="n1", replicas=UP, wanted=3) for n in names]
    return ClusterView(True, "n1", "cotal", tuple(streams), tuple(consumers))


def test_the_ten_space_streams():
    names = space_stream_names("s")
    assert len(names) == 10 and names[0] == "CHAT_s" and "KV_cotal_delivery_s" in names


def test_not_a_cluster_is_not_applicable():
    assert ClusterView(False, "n1").word() == "n/a"
    assert cluster_lines(ClusterView(False, "n1")) == ()
    assert cluster_lines(None) == ()


def test_all_leaders_is_ok_and_a_node_down_is_still_ok_but_named():
    assert _view().word() == "ok"
    assert _view().detail() == "3/3 nodes answering"
    down = _view([StreamState(n, "n1", DOWN, 3) for n in space_stream_names("s")])
    assert down.word() == "ok"
    assert down.nodes_answering == ["n1", "n2"] and down.nodes_known == ["n1", "n2", "n3"]
    assert down.detail() == "2/3 nodes answering, replicas lagging on n3"
    assert cluster_lines(down)[1] == "CHAT_s: R3 leader n1, current n2, lagging n3"


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
        "CHAT_s/fanout has 5 waiting and acked nothing for"
        in _view(consumers=[stalled]).detail()
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
