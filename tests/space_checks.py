"""Checks of a provisioned space shared by the provisioning, `up` and auth tests."""

from __future__ import annotations

from typing import Any

from nats.aio.client import Client

# PROTOCOL §2.1 and §3.1, written out independently of the code under test.
_DEFAULTS: dict[str, Any] = {
    "retention": "limits",
    "storage": "file",
    "num_replicas": 1,
    "max_msgs_per_subject": -1,
    "max_msgs": -1,
    "max_bytes": -1,
    "max_age": 0.0,
    "discard": "old",
    "duplicate_window": 120.0,
    "allow_direct": False,
    "allow_rollup_hdrs": False,
    "deny_delete": False,
    "allow_msg_ttl": False,
}


def expected_streams(s: str) -> dict[str, dict[str, Any]]:
    kv = {
        "max_msgs_per_subject": 1,
        "discard": "new",
        "allow_direct": True,
        "allow_rollup_hdrs": True,
    }
    return {
        f"CHAT_{s}": {
            "subjects": [f"cotal.{s}.chat.>"],
            "max_msgs_per_subject": 1000,
            "allow_direct": True,
        },
        f"DM_{s}": {"subjects": [f"cotal.{s}.inst.>"]},
        f"TASK_{s}": {"subjects": [f"cotal.{s}.svc.>"], "retention": "workqueue"},
        f"INBOX_{s}": {
            "subjects": [f"cotal.{s}.dinbox.>"],
            "max_msgs_per_subject": 1000,
            "duplicate_window": 7200.0,
        },
        f"DLV_{s}": {
            "subjects": [f"cotal.{s}.dlv.>"],
            "max_msgs_per_subject": 1000,
            "duplicate_window": 7200.0,
        },
        f"KV_cotal_presence_{s}": {
            "subjects": [f"$KV.cotal_presence_{s}.>"],
            **kv,
            "max_age": 6.0,
            "duplicate_window": 6.0,
        },
        f"KV_cotal_channels_{s}": {"subjects": [f"$KV.cotal_channels_{s}.>"], **kv},
        f"KV_cotal_members_{s}": {"subjects": [f"$KV.cotal_members_{s}.>"], **kv},
        f"KV_cotal_acl_{s}": {"subjects": [f"$KV.cotal_acl_{s}.>"], **kv},
        f"KV_cotal_delivery_{s}": {
            "subjects": [f"$KV.cotal_delivery_{s}.>"],
            **kv,
            "max_age": 30.0,
            "duplicate_window": 30.0,
        },
        # The project's own dead-letter store (issue 10), not a reference stream: bounded.
        f"COTALTUI_DEAD_{s}": {
            "subjects": [f"cotaltui.{s}.dead.>"],
            "max_msgs": 1000,
            "max_bytes": 1_048_576,
        },
    }


def _plain(value: Any) -> Any:
    return value.value if hasattr(value, "value") else value


async def assert_space_streams(nc: Client, space: str, *, replicas: int = 1) -> None:
    js = nc.jetstream()
    for name, fields in expected_streams(space).items():
        config = (await js.stream_info(name)).config
        want = {**_DEFAULTS, "num_replicas": replicas, **fields}
        for key, value in want.items():
            got = _plain(getattr(config, key))
            if key in ("deny_delete", "allow_msg_ttl", "allow_direct", "allow_rollup_hdrs"):
                got = bool(got)
            assert got == value, f"{name}.{key}: got {got!r}, want {value!r}"
