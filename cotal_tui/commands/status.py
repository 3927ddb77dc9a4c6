"""`cotal-tui status --server URL --space S [--creds F] [--json]`: one snapshot of a space.

Connects as an observer-style endpoint (no presence of its own, no consumers), waits for the
roster to become current (or its timeout, and then says so in ``roster.view``), reads the
channels and the delivery lease, prints, exits. The ``--json`` shape is a contract for scripts:
``"schema": "cotal-tui/status/1"``, documented in README.md ("status --json schema").
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from typing import Any

from cotal_tui.commands.common import (
    UsageError,
    add_server_arg,
    add_space_arg,
    add_state_dir_arg,
    local_space_creds,
    resolve_target,
)
from cotal_tui.mesh.cluster_view import ClusterView, cluster_json, read_cluster_view
from cotal_tui.mesh.connection import (
    ONE_SHOT_WATCH_INACTIVE_S,
    Connected,
    ConnectionError_,
    ConnectionState,
    Reconnecting,
)
from cotal_tui.mesh.creds_claims import creds_label
from cotal_tui.mesh.durable import PendingOp
from cotal_tui.mesh.endpoint import Endpoint
from cotal_tui.mesh.eviction_stats import below_floor_words, read_evictions
from cotal_tui.mesh.failures import classify
from cotal_tui.mesh.jsapi import JsApiError, JsApiUnavailable
from cotal_tui.mesh.kv import KvError
from cotal_tui.mesh.lease import LeaseRead, LeaseVerdict, lease_verdict
from cotal_tui.mesh.lease_table import QUORUM_LOST_CONSEQUENCE, STALE_AFTER_MS
from cotal_tui.mesh.pipeline_probe import read_pipeline
from cotal_tui.mesh.plane3_agent import delivery_lease_verdict
from cotal_tui.protocol.pipeline import delivery_json, judge_pipeline

SCHEMA = "cotal-tui/status/1"


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "status",
        help="print one snapshot of a space (roster, channels, delivery lease) and exit",
        description=(
            "Connect, wait for the roster to become current, print one snapshot and exit. "
            "Registers no presence. Exit 1 with a one-line reason when the server or the "
            "space cannot be reached."
        ),
        epilog="example: cotal-tui status --json   (finds the server cotal-tui up runs)",
    )
    add_server_arg(parser)
    add_space_arg(parser)
    parser.add_argument(
        "--creds",
        help="a .creds file (default: $COTAL_CREDS, else an operator cred of the space's trust "
        "chain under --state-dir, which can read the lease, the pipeline's state and probe the "
        "daemon; none for an open space)",
    )
    add_state_dir_arg(parser)
    parser.add_argument("--json", action="store_true", help="print the snapshot as JSON")
    parser.add_argument(
        "--timeout",
        type=float,
        default=5.0,
        help="seconds to wait for the connection and for the roster to become current",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    target = resolve_target(args)
    if args.timeout <= 0:
        raise UsageError(f"--timeout {args.timeout:g}: must be more than 0 seconds")
    creds = target.creds
    if creds is None and target.local:
        creds = local_space_creds(args.state_dir, target.space)
    try:
        snapshot = asyncio.run(
            take_snapshot(target.server, target.space, creds=creds, timeout=args.timeout)
        )
    except StatusFailed as exc:
        print(f"cotal-tui status: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(snapshot, indent=2, ensure_ascii=False))
    else:
        print(render_text(snapshot))
    return 0


class StatusFailed(Exception):
    """The snapshot could not be taken; the message is the one-line reason."""


async def take_snapshot(
    server: str, space: str, *, creds: str | None = None, timeout: float = 5.0
) -> dict[str, Any]:
    ep = Endpoint(
        server,
        space,
        name="cotal-tui-status",
        kind="endpoint",
        creds=creds,
        register_presence=False,
        watch_presence=True,
        consume=False,
        create_space=False,
        connect_timeout=timeout,
        watch_inactive_s=ONE_SHOT_WATCH_INACTIVE_S,
    )
    try:
        await ep.start()
    except (ConnectionError_, OSError) as exc:
        raise StatusFailed(classify(exc, server=server, space=space).text) from None
    except (KvError, JsApiError, JsApiUnavailable, ValueError) as exc:
        await ep.stop(graceful=False)
        raise StatusFailed(classify(exc, server=server, space=space).text) from None
    try:
        await ep.roster.wait_current(timeout)
        verdict, responder_ms, lease = await delivery_lease_verdict(ep)
        figs = await read_pipeline(ep.conn, space, creds=creds)
        progress = judge_pipeline(figs, peers=len(ep.roster_entries()))
        cluster = await read_cluster_view(ep.conn, space)
        # weigh whether messages move (issue 10) and what the cluster says (issue 15)
        verdict = with_cluster(verdict, lease, cluster, pipeline=progress.state)
        try:
            rows = await ep.list_channels(lease)
        except (JsApiError, JsApiUnavailable) as exc:
            raise StatusFailed(f"cannot list the channels of {space!r}: {exc}") from None
        snap = build_snapshot(ep, server, lease, rows, verdict, responder_ms, progress.text)
        snap["delivery"] = delivery_json(figs, progress)
        # issue 11: the serving daemon's evictedBeforeRouting, in the same delivery object
        snap["delivery"].update(await delivery_evictions(ep, verdict))
        snap["cluster"] = cluster_json(cluster)
        return snap
    finally:
        await ep.stop(graceful=False)


async def delivery_evictions(ep: Endpoint, verdict: LeaseVerdict | None) -> dict[str, Any]:
    """``evictedBeforeRouting`` as the serving daemon counts it (per channel, since it started):
    CHAT messages its fan-out never routed because CHAT's per-sender cap evicted them first —
    they never reached offline durable members. ``null`` when no daemon told us (none serving,
    this credential may not ask, or a daemon that does not report it)."""
    if verdict is None or verdict.responder != "answered":
        why = verdict.responder_text if verdict is not None else "no lease read"
        return await read_evictions(ep, False, why)
    return await read_evictions(ep, True)


def with_cluster(
    verdict: LeaseVerdict | None,
    read: LeaseRead,
    cluster: ClusterView,
    *,
    pipeline: str = "unchecked",
) -> LeaseVerdict | None:
    """The lease verdict with the pipeline and cluster columns filled in (the same table
    decides)."""
    if verdict is None or not read.known or read.lease is None:
        return verdict
    info = read.lease
    return lease_verdict(
        "present",
        ready=info.ready,
        age_ms=time.time() * 1000 - info.since,
        responder=verdict.responder,
        holder=info.holder,
        pipeline=pipeline,
        cluster=cluster.word(),
    )


def _connection(state: ConnectionState | None, ep: Endpoint) -> dict[str, Any]:
    out: dict[str, Any] = {
        "state": state.kind if state else "unknown",
        "mode": "auth" if ep.creds else "open",
        "identity": ep.id,
        "credential": creds_label(str(ep.creds) if ep.creds else None),
    }
    if isinstance(state, Connected):
        out["connectedTo"] = state.server
    if isinstance(state, Reconnecting):
        out["since"] = int(state.since * 1000)
        out["attempt"] = state.attempt
    return out


def _pending(op: PendingOp) -> dict[str, Any]:
    return {
        "channel": op.channel,
        "operation": op.operation,
        "attempt": op.attempt,
        "nextRetryAt": int(op.next_retry_at * 1000) if op.next_retry_at else None,
        "lastError": op.last_error,
    }


def consequence(v: LeaseVerdict, progress: str = "") -> str:
    """What the verdict means for durable delivery, in plain words."""
    if v.verdict == "serving" and v.green:
        return "a delivery daemon is serving: durable-class channels get their offline backstop"
    if v.verdict == "not-moving":
        return f"serving, but not moving: {progress}; the offline backstop is not delivering"
    if v.verdict in ("dead-letters", "consumer-excess"):
        return f"a delivery daemon is serving and messages move; {progress}"
    if v.verdict == "unverified" and v.pipeline == "unknown" and v.responder == "answered":
        return (
            f"the daemon answers, but whether messages move is unknown ({progress}): not "
            "green without that evidence (a manager or delivery cred can read it)"
        )
    if v.verdict == "unverified":
        return (
            f"a ready lease is held but its responder is {v.responder_text}: durable delivery "
            "is unconfirmed (use an agent cred, or open mode, to probe it)"
        )
    return {
        "not-ready": "a delivery daemon is still binding (lease not ready): durable joins may "
        "fail until it is ready",
        "no-lease": "no delivery daemon: durable-class channels are live only and offline "
        "members miss messages; start one with `cotal-tui daemon` or `cotal-tui up`",
        "stale": f"the lease was not renewed for over {STALE_AFTER_MS // 1000}s (its TTL): its "
        "daemon is gone and durable delivery is down until the record expires and another "
        "daemon binds",
        "clock-skew": "the lease writer's clock is ahead of ours: the lease age is unknown, so "
        "the daemon's liveness cannot be judged",
        "no-responder": f"a lease is held but {v.responder_text}: durable joins and leaves "
        "fail and fan-out may be stalled; check the daemon holding the lease",
        "refused": "the delivery lease could not be read with this credential: durable "
        "delivery is unknown",
        "unreachable": "the broker is unreachable: durable delivery is unknown",
        "quorum-lost": "a space stream or the daemon's consumer has no leader (the cluster has "
        f"lost quorum): {QUORUM_LOST_CONSEQUENCE}",
        "stalled": "the daemon answers but its fan-out or reader has work waiting and acked "
        "nothing for a while: offline members get nothing until it resumes",
        "node-lost": "a node of the cluster is gone (a replica offline or not current, or fewer "
        "nodes routed than the streams name): the space runs without a spare, and the offline "
        "backstop may pause until NATS moves the leaders it held",
    }[v.verdict]


def _lease(
    read: LeaseRead,
    now_ms: int,
    verdict: LeaseVerdict | None,
    responder_ms: float | None,
    progress: str = "",
) -> dict[str, Any] | None:
    if verdict is None and read.lease is None:
        return None
    out: dict[str, Any] = {"holder": None, "ready": None, "since": None, "revision": None}
    out["ageMs"] = None
    if read.lease is not None:
        out.update(
            holder=read.lease.holder,
            ready=read.lease.ready,
            since=read.lease.since,
            revision=read.revision,
            ageMs=max(0, now_ms - read.lease.since),
        )
    if verdict is not None:
        out.update(
            verdict=verdict.verdict,
            green=verdict.green,
            responder=verdict.responder_text,
            responderMs=None if responder_ms is None else round(responder_ms, 1),
            consequence=consequence(verdict, progress),
        )
    return out


def build_snapshot(
    ep: Endpoint,
    server: str,
    lease: LeaseRead,
    rows: list[Any],
    verdict: LeaseVerdict | None = None,
    responder_ms: float | None = None,
    progress: str = "",
) -> dict[str, Any]:
    now_ms = int(time.time() * 1000)
    entries = [
        {
            "id": p.card.id,
            "name": p.card.name,
            "role": p.card.role,
            "kind": p.card.kind,
            "status": p.status,
            "activity": p.activity,
            "attention": p.attention,
            "ts": p.ts,
            "ageMs": max(0, now_ms - p.ts),
        }
        for p in ep.roster_entries()
    ]
    return {
        "schema": SCHEMA,
        "space": ep.space,
        "server": server,
        "generatedAt": now_ms,
        "connection": _connection(ep.connection_state, ep),
        "roster": {
            "view": ep.roster_view,
            "entries": entries,
            "refused": ep.roster.roster.refused,
        },
        "channels": [
            {
                "channel": r.channel,
                "description": r.description,
                "deliveryClass": r.delivery_class,
                **(
                    {"deliveryClassProblem": r.delivery_class_problem}
                    if r.delivery_class_problem
                    else {}
                ),
                "replay": r.replay,
                "messages": r.messages,
                "joined": r.joined,
                "deliveryHealth": r.delivery_health,
                "durableUnclosed": r.durable_unclosed,
            }
            for r in rows
        ],
        "lease": _lease(lease, now_ms, verdict, responder_ms, progress),
        "leaseRead": {"known": lease.known, "error": lease.error},
        "pendingBootJoins": [_pending(p) for p in ep.pending_boot_joins()],
        "pendingLeaves": [_pending(p) for p in ep.pending_leaves()],
    }


def eviction_lines(delivery: dict[str, Any]) -> list[str]:
    """``evictedBeforeRouting`` in plain words (nothing when the daemon counted none)."""
    counts = delivery.get("evictedBeforeRouting")
    unknown = below_floor_words(delivery)  # a count the daemon could not make, said so
    if not counts:
        return unknown
    return unknown + [
        f"lost before routing: {n} message(s) on "
        + ("an unknown channel" if ch == "?" else f"#{ch}")
        + " were evicted from CHAT before the delivery daemon routed them — they never reached "
        "offline durable members"
        for ch, n in sorted(counts.items())
        if n
    ]


def render_text(s: dict[str, Any]) -> str:
    conn = s["connection"]
    roster = s["roster"]
    lines = [
        f"space {s['space']} on {s['server']} ({conn['mode']} mode, {conn['state']})",
        f"roster: {roster['view']}"
        + ("" if roster["view"] == "current" else " — not the truth, do not rely on it"),
    ]
    for e in roster["entries"]:
        role = f" ({e['role']})" if e["role"] else ""
        activity = f" — {e['activity']}" if e["activity"] else ""
        age = e["ageMs"] / 1000
        lines.append(
            f"  {e['status']:<8} {e['name']}{role}{activity}  [{e['kind']}, {age:.1f}s ago]"
        )
    if not roster["entries"]:
        lines.append("  (nobody)")
    lines.append("channels:")
    for c in s["channels"]:
        desc = f" — {c['description']}" if c["description"] else ""
        replay = "replay on" if c["replay"] else "replay off"
        lines.append(
            f"  #{c['channel']}{desc} ({c['deliveryClass']}, {replay}, {c['messages']} retained)"
        )
        if c.get("deliveryClassProblem"):
            lines.append(f"    ⚠ {c['deliveryClassProblem']}")
    if not s["channels"]:
        lines.append("  (none)")
    lease = s["lease"]
    if lease is None or lease["holder"] is None:
        known = s["leaseRead"]["known"]
        lines.append("delivery lease: none" if known else "delivery lease: unknown (cannot read)")
    else:
        state = "ready" if lease["ready"] else "not ready"
        lines.append(
            f"delivery lease: {lease['holder']} ({state}, renewed {lease['ageMs'] / 1000:.1f}s ago)"
        )
    if lease is not None and "verdict" in lease:
        lines.append(f"delivery: {lease['verdict']} — {lease['consequence']}")
    d = s.get("delivery")
    if d is not None:

        def fig(n: Any, ms: Any) -> str:
            if n is None:
                return "unknown"
            return f"{n} pending" + (f", oldest {ms / 1000:.1f}s" if ms is not None else "")

        lines.append(
            f"pipeline: {d['state']} — unrouted {fig(d['fanoutPending'], d['fanoutOldestMs'])}; "
            f"untransferred {fig(d['readerPending'], d['readerOldestMs'])}; dead-lettered "
            + ("unknown" if d["deadLettered"] is None else str(d["deadLettered"]))
        )
        for why in d["unknown"].values():
            lines.append(f"  unknown: {why}")
    lines.extend(eviction_lines(s.get("delivery") or {}))
    cluster = s.get("cluster")
    if cluster and cluster["clustered"]:
        lines.append(
            f"cluster {cluster['name']}: {cluster['verdict']} — connected to "
            f"{cluster['connectedTo']}, {cluster['answering']}/"
            f"{len(cluster['nodesKnown'])} nodes answering ({cluster['detail']})"
        )
        for st in cluster["streams"]:
            if st["leader"] is None:
                lines.append(f"  {st['stream']}: no leader ({st['error']})")
            else:
                lag = f", lagging {', '.join(st['lagging'])}" if st["lagging"] else ""
                lines.append(
                    f"  {st['stream']}: R{st['replicas']} leader {st['leader']}, current "
                    f"{', '.join(st['current']) or 'none'}{lag}"
                )
    for key, label in (
        ("pendingBootJoins", "pending boot joins"),
        ("pendingLeaves", "pending leaves"),
    ):
        for p in s[key]:
            lines.append(f"{label}: #{p['channel']} attempt {p['attempt']} ({p['lastError']})")
    return "\n".join(lines)
