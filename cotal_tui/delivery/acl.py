"""The durable read-ACL registry (PROTOCOL §3.5): ``allowSubscribe`` per owner.

An owner whose record is missing, deleted, undecodable or has no ``allowSubscribe`` array is
*unknown* (the trusted reader defers its entries); a present ``[]`` reads nothing (drop).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass

from cotal_tui.mesh.kv import KeyExists, KvBucket, KvEntry, RevisionMismatch
from cotal_tui.protocol.errors import AclCasExhausted
from cotal_tui.protocol.names import ACL_CAS_ATTEMPTS, acl_key
from cotal_tui.protocol.untrusted import Decoded, decode_untrusted


@dataclass(frozen=True)
class AclEntry:
    """An owner's read ACL: its patterns, the record's ``revision`` field, the KV revision."""

    allow_subscribe: tuple[str, ...]
    revision: int
    kv_revision: int


def decode_acl(value: bytes, kv_revision: int = 0) -> AclEntry | None:
    outcome = decode_untrusted(value)
    if not isinstance(outcome, Decoded):
        return None
    data = outcome.value
    allow = data.get("allowSubscribe")
    if not isinstance(allow, list):
        return None
    rev = data.get("revision")
    revision = rev if isinstance(rev, int) and not isinstance(rev, bool) else 0
    return AclEntry(tuple(str(p) for p in allow if isinstance(p, str)), revision, kv_revision)


def acl_entry(entry: KvEntry) -> AclEntry | None:
    """A watched ACL-bucket entry as an :class:`AclEntry` (None: unknown), the decoder of the
    delivery daemon's ACL cache (delivery/fresh_cache.py)."""
    return decode_acl(entry.value, entry.revision)


async def read_acl(kv: KvBucket, owner: str) -> AclEntry | None:
    """The owner's ACL, or None when unknown (see module doc)."""
    entry = await kv.get(acl_key(owner))
    if entry is None:
        return None
    return decode_acl(entry.value, entry.revision)


def encode_acl(allow_subscribe: list[str], revision: int) -> bytes:
    body = {
        "allowSubscribe": list(allow_subscribe),
        "revision": revision,
        "updatedAt": int(time.time() * 1000),
    }
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()


async def commit_acl(kv: KvBucket, owner: str, allow_subscribe: list[str]) -> AclEntry:
    """Write the whole record in one put (create, else CAS update), up to 5 attempts."""
    key = acl_key(owner)
    for _ in range(ACL_CAS_ATTEMPTS):
        current = await kv.get(key)
        try:
            if current is None:
                revision = 1
                kv_rev = await kv.create(key, encode_acl(allow_subscribe, revision))
            else:
                prev = decode_acl(current.value)
                revision = (prev.revision if prev else 0) + 1
                kv_rev = await kv.update(
                    key, encode_acl(allow_subscribe, revision), current.revision
                )
        except (KeyExists, RevisionMismatch):
            continue
        return AclEntry(tuple(allow_subscribe), revision, kv_rev)
    raise AclCasExhausted(owner)


async def delete_acl(kv: KvBucket, owner: str) -> None:
    await kv.purge(acl_key(owner))
