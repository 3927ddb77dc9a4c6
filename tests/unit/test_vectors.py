"""Every case of tests/vectors/protocol.json, run against our Python counterpart.

Conventions (from the file's "notes"): ``throws``/``errorType`` for errors, ``outIsUndefined``
for an undefined return (None here), ``inUndefined`` for undefined arguments (None here), short
``in`` arrays for omitted trailing arguments. A reference function with no entry in ADAPTERS
fails the test: nothing is skipped silently.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import cotal_tui.protocol as p

VECTORS = json.loads(
    (Path(__file__).parent.parent / "vectors" / "protocol.json").read_text(encoding="utf-8")
)
CASES = VECTORS["cases"]


def _plain(fn: Callable[..., Any]) -> Callable[..., Any]:
    return fn


def _opts(fn: Callable[..., Any], fixed: int) -> Callable[..., Any]:
    """Reference ``fn(a, b, {camelOpts})`` -> ``fn(a, b, snake_opts=...)``."""
    names = {
        "ackWaitMs": "ack_wait_ms",
        "inactiveThresholdMs": "inactive_threshold_ms",
        "shard": "shard",
        "shards": "shards",
    }

    def call(*args: Any) -> Any:
        kwargs = {names[k]: v for k, v in (args[fixed] if len(args) > fixed else {}).items()}
        return fn(*args[:fixed], **kwargs)

    return call


def _parse_subject(s: str) -> Any:
    parsed = p.parse_subject(s)
    return parsed._asdict() if parsed else None


def _parse_member_key(s: str) -> Any:
    parsed = p.parse_member_key(s)
    return parsed._asdict() if parsed else None


def _durable_eligible(rec: dict[str, Any], seq: int) -> bool:
    result = p.durable_eligible(rec, seq)
    try:
        model = p.MembershipRecord.from_wire(rec)
    except p.RecordError:
        return result  # a malformed record only has the raw-dict (JavaScript) reading
    if None not in rec.values():
        assert p.durable_eligible(model, seq) == result
    return result


def _resolve_peer(entries: list[dict[str, Any]], query: str, opts: Any = None) -> Any:
    self_id = (opts or {}).get("selfId")
    found = p.resolve_peer(entries, query, self_id=self_id)
    models = [p.Presence.from_wire(e) for e in entries]
    found_model = p.resolve_peer(models, query, self_id=self_id)
    assert (found_model.to_wire() if found_model else None) == (
        p.Presence.from_wire(found).to_wire() if found else None
    )
    return found


def _parse_join_link(link: str) -> Any:
    return p.parse_join_link(link).to_dict()


def _format_join_link(opts: dict[str, Any]) -> str:
    return p.format_join_link(**opts)


ADAPTERS: dict[str, Callable[..., Any]] = {
    "token": p.token,
    "spacePrefix": p.space_prefix,
    "chatWildcard": p.chat_wildcard,
    "spaceWildcard": p.space_wildcard,
    "presenceBucket": p.presence_bucket,
    "channelBucket": p.channel_bucket,
    "membersBucket": p.members_bucket,
    "aclBucket": p.acl_bucket,
    "deliveryBucket": p.delivery_bucket,
    "aclKey": p.acl_key,
    "chatStream": p.chat_stream,
    "dmStream": p.dm_stream,
    "taskStream": p.task_stream,
    "inboxStream": p.inbox_stream,
    "dlvStream": p.dlv_stream,
    "dmDurable": p.dm_durable,
    "taskDurable": p.task_durable,
    "dlvDurable": p.dlv_durable,
    "chatHistDurable": p.chat_hist_durable,
    "chatDurable": p.chat_durable,
    "traceSubject": p.trace_subject,
    "controlSubject": p.control_subject,
    "chatSubject": p.chat_subject,
    "unicastSubject": p.unicast_subject,
    "anycastSubject": p.anycast_subject,
    "controlServiceSubject": p.control_service_subject,
    "dinboxSubject": p.dinbox_subject,
    "dlvSubject": p.dlv_subject,
    "parseSubject": _parse_subject,
    "deliveryOf": p.delivery_of,
    "parseDinboxOwner": p.parse_dinbox_owner,
    "isConcreteChannel": p.is_concrete_channel,
    "assertValidChannel": p.assert_valid_channel,
    "subjectMatches": p.subject_matches,
    "channelInAllow": p.channel_in_allow,
    "collapseFilterSubjects": p.collapse_filter_subjects,
    "normalizeMentions": p.normalize_mentions,
    "memberKey": p.member_key,
    "parseMemberKey": _parse_member_key,
    "leaseKey": p.lease_key,
    "fanoutDurable": p.fanout_durable,
    "readerDurable": p.reader_durable,
    "partition": p.partition,
    "durableEligible": _durable_eligible,
    "parseDuration": p.parse_duration,
    "effectiveReplay": p.effective_replay,
    "effectiveDeliveryClass": p.effective_delivery_class,
    "effectiveReplayWindowMs": p.effective_replay_window_ms,
    "validateChannelConfig": p.validate_channel_config,
    "validateChannelDefaults": p.validate_channel_defaults,
    "assertValidName": p.assert_valid_name,
    "parseJoinLink": _parse_join_link,
    "formatJoinLink": _format_join_link,
    "resolvePeer": _resolve_peer,
    "dmDurableConfig": _opts(p.dm_durable_config, 2),
    "dlvDurableConfig": _opts(p.dlv_durable_config, 2),
    "taskDurableConfig": _opts(p.task_durable_config, 2),
    "inboxReaderConfig": _opts(p.inbox_reader_config, 1),
    "fanoutDurableConfig": _opts(p.fanout_durable_config, 1),
}

# The reference's ``errorType`` -> the named Python class we raise for it. A per-function entry
# wins; otherwise ``Error`` is some ProtocolError, ``TypeError`` a JsTypeError, and a named
# reference error class (``AmbiguousPeerError``) the class of the same name.
ERROR_TYPES: dict[tuple[str, str], type[Exception]] = {
    ("chatSubject", "Error"): p.InvalidChannel,
    ("assertValidChannel", "Error"): p.InvalidChannel,
    ("parseDuration", "Error"): p.InvalidDuration,
    ("effectiveReplayWindowMs", "Error"): p.InvalidDuration,
    ("assertValidName", "Error"): p.InvalidName,
    ("parseJoinLink", "Error"): p.InvalidJoinLink,
    ("parseJoinLink", "TypeError"): p.InvalidUrl,
    ("parseJoinLink", "URIError"): p.UriMalformed,
}


def _expected_error(name: str, error_type: str) -> type[Exception]:
    if (name, error_type) in ERROR_TYPES:
        return ERROR_TYPES[(name, error_type)]
    if error_type == "Error":
        return p.ProtocolError
    if error_type == "TypeError":
        return p.JsTypeError
    named = getattr(p, error_type, None)
    assert isinstance(named, type) and issubclass(named, Exception), (
        f"no Python error class for {name}/{error_type}"
    )
    return named


PARAMS = [
    pytest.param(name, i, case, id=f"{name}[{i}]")
    for name, cases in CASES.items()
    for i, case in enumerate(cases)
]


def test_every_reference_function_has_a_counterpart() -> None:
    missing = sorted(set(CASES) - set(ADAPTERS))
    assert not missing, f"no Python counterpart for reference functions: {missing}"


@pytest.mark.parametrize(("name", "index", "case"), PARAMS)
def test_vector(name: str, index: int, case: dict[str, Any]) -> None:
    fn = ADAPTERS.get(name)
    assert fn is not None, f"reference function {name} has no Python counterpart"
    args = list(case["in"])
    for i in case.get("inUndefined", []):
        args[i] = None
    if "throws" in case:
        expected_type = _expected_error(name, case["errorType"])
        with pytest.raises(expected_type) as info:
            fn(*args)
        assert str(info.value) == case["throws"]
        return
    result = fn(*args)
    if case.get("outIsUndefined"):
        assert result is None
        return
    if isinstance(result, tuple):
        result = list(result)
    assert result == case["out"]
    assert type(result) is not float or case["out"] == result


CONSTANT_NAMES = sorted(VECTORS["constants"])


@pytest.mark.parametrize("name", CONSTANT_NAMES)
def test_constant(name: str) -> None:
    assert getattr(p, name) == VECTORS["constants"][name]
