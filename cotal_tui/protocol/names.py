"""Names of streams, durables, KV buckets and keys; the numeric constants (§1.6, §1.7, §2-§5).

Every name takes the *raw* space or id and tokenizes it itself, so callers never pre-sanitize.
``=defaults`` can never collide with a channel key because :func:`token` never emits ``=``.
"""

from __future__ import annotations

from typing import NamedTuple

from cotal_tui.protocol.jsstr import js_number_str, utf16_units
from cotal_tui.protocol.subjects import token

# --- constants shared with the reference (tests/vectors/protocol.json "constants") -----------
CHANNEL_DEFAULTS_KEY = "=defaults"
FANOUT_DURABLE = "fanout"
INBOX_READER_DURABLE = "reader"
MAX_CHANNEL_DESCRIPTION = 200
MAX_CHANNEL_INSTRUCTIONS = 2000
MAX_MSGS_PER_SUBJECT = 1000
PLANE3_DEDUP_WINDOW_MS = 7_200_000
DINBOX_MAX_ACK_PENDING = 1000
LEASE_TTL_MS = 30_000

# --- timings of the endpoint and daemon ---------------------------------------------------
PRESENCE_TTL_MS = 6000
HEARTBEAT_MS = 2000
SWEEP_MS = max(500, PRESENCE_TTL_MS // 3)
ACK_WAIT_MS = 60_000
OPEN_DM_INACTIVE_THRESHOLD_MS = 600_000
HISTORY_INACTIVE_THRESHOLD_MS = 30_000
HISTORY_BATCH = 256
HISTORY_FETCH_EXPIRES_MS = 5000
READER_MAX_REDELIVERIES = 10
LEASE_RENEW_MS = max(1000, LEASE_TTL_MS // 2)
LEASE_WAIT_POLL_MS = 200
LEASE_WAIT_TIMEOUT_MS = 8000
DAEMON_PROBE_MS = 2000
BROKER_GONE_MS = 15_000
DAEMON_SHUTDOWN_HARD_EXIT_MS = 2000
MEMBERS_CAS_ATTEMPTS = 5
ACL_CAS_ATTEMPTS = 5
DEDUP_ID_SET_SIZE = 4096
# ctl.delivery request timeouts (§5.2)
DURABLE_JOIN_TIMEOUT_MS = 30_000
DURABLE_LEAVE_TIMEOUT_MS = 5000
LIST_MEMBERSHIPS_TIMEOUT_MS = 5000
DELIVERY_QUEUE_GROUP = "delivery"
DEFAULT_PORT = 4222
PROTOCOL_VERSION = "0.2"


# --- KV buckets and keys ---------------------------------------------------------------------
def presence_bucket(space: str) -> str:
    return f"cotal_presence_{token(space)}"


def channel_bucket(space: str) -> str:
    return f"cotal_channels_{token(space)}"


def members_bucket(space: str) -> str:
    return f"cotal_members_{token(space)}"


def acl_bucket(space: str) -> str:
    return f"cotal_acl_{token(space)}"


def delivery_bucket(space: str) -> str:
    return f"cotal_delivery_{token(space)}"


def kv_stream(bucket: str) -> str:
    """The JetStream stream behind a KV bucket."""
    return f"KV_{bucket}"


def kv_subject(bucket: str, key: str) -> str:
    """The subject a KV put on ``key`` publishes to (and the grant that allows it)."""
    return f"$KV.{bucket}.{key}"


def member_key(channel: str, owner: str) -> str:
    return f"{channel}/{owner}"


class MemberKey(NamedTuple):
    channel: str
    owner: str


def parse_member_key(key: str) -> MemberKey | None:
    """Split at the first ``/``; both halves must be non-empty."""
    i = key.find("/")
    if i <= 0 or i >= len(key) - 1:
        return None
    return MemberKey(key[:i], key[i + 1 :])


def acl_key(owner: str) -> str:
    return token(owner)


def lease_key(shard: int | float) -> str:
    """``lease.<i>``; only ``lease.0`` is used (N=1)."""
    return f"lease.{js_number_str(shard)}"


def partition(n: int | float, key: str) -> int:
    """FNV-1a 32-bit over UTF-16 code units, mod ``n``; 0 when ``n <= 1`` (unused at N=1)."""
    if n <= 1:
        return 0
    h = 0x811C9DC5
    for unit in utf16_units(key):
        h ^= unit
        h = (h * 0x01000193) & 0xFFFFFFFF
    result = h % n  # JS ``%`` on non-negative operands, so a fractional n keeps a fraction
    return int(result) if float(result).is_integer() else result  # type: ignore[return-value]


# --- streams ---------------------------------------------------------------------------------
def chat_stream(space: str) -> str:
    return f"CHAT_{token(space)}"


def dm_stream(space: str) -> str:
    return f"DM_{token(space)}"


def task_stream(space: str) -> str:
    return f"TASK_{token(space)}"


def inbox_stream(space: str) -> str:
    return f"INBOX_{token(space)}"


def dlv_stream(space: str) -> str:
    return f"DLV_{token(space)}"


# --- durables --------------------------------------------------------------------------------
def dm_durable(id: str) -> str:  # noqa: A002 - the reference's parameter name
    return f"dm_{token(id)}"


def task_durable(role: str) -> str:
    return f"svc_{token(role)}"


def dlv_durable(owner: str) -> str:
    return f"dlv_{token(owner)}"


def chat_hist_durable(id: str) -> str:  # noqa: A002
    """Name of the agent's own ephemeral history consumer (created by name, not durable)."""
    return f"chathist_{token(id)}"


def chat_durable(id: str) -> str:  # noqa: A002
    """Removed legacy live-tail durable; kept so tests can assert an agent cannot create it."""
    return f"chat_{token(id)}"


def _sharded(base: str, shard: int | float | None, shards: int | float | None) -> str:
    """``base`` for one shard (the only supported setup), ``base_<i>`` otherwise; None = default."""
    shard = 0 if shard is None else shard
    shards = 1 if shards is None else shards
    return f"{base}_{js_number_str(shard)}" if shards > 1 else base


def fanout_durable(shard: int | float | None = 0, shards: int | float | None = 1) -> str:
    return _sharded(FANOUT_DURABLE, shard, shards)


def reader_durable(shard: int | float | None = 0, shards: int | float | None = 1) -> str:
    return _sharded(INBOX_READER_DURABLE, shard, shards)


def catchup_durable(owner: str, generation: int) -> str:
    """The daemon's activation catch-up consumer ``cu_<owner>_<generation>``."""
    return f"cu_{token(owner)}_{generation}"


def plane3_msg_id(msg_id: object, owner: str, generation: int | str) -> str:
    """``Nats-Msg-Id`` of a dinbox entry and of its DLV transfer: ``<msg.id>:<owner>:<gen>``.

    The reader passes a generation it read off an entry already formatted as JavaScript's
    ``String()`` would (``js_string``), since a reference-written entry may carry any JSON there.
    """
    return f"{msg_id}:{owner}:{generation}"
