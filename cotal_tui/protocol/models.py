"""Pydantic models of every record and envelope on the wire (PROTOCOL.md §3, §4).

Wire rules, shared by every model through :class:`WireModel`:

- camelCase names on the wire (``joinCursor``), snake_case in Python (``join_cursor``);
- an optional field that is ``None`` is *omitted*, never sent as ``null``;
- unknown fields are ignored on input (envelopes that are forwarded verbatim — the message and
  its parts — keep them, so a Plane-3 transfer does not strip a newer peer's fields);
- a record parsed with ``from_wire``/``from_json`` re-serializes with its original key order
  (``model_copy(update=...)`` keeps it, new keys last), so a read-modify-write (the members
  tombstone, the channels merge) produces the same bytes the reference would; a record built
  in Python serializes in field order, which follows the reference's writers;
- ``from_json`` turns any parse failure into :class:`RecordError` naming the field and the rule.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, ClassVar, Literal, Self

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    SerializationInfo,
    SerializerFunctionWrapHandler,
    StrictBool,
    StrictInt,
    StrictStr,
    Tag,
    ValidationError,
    ValidationInfo,
    model_serializer,
    model_validator,
)
from pydantic.alias_generators import to_camel

from cotal_tui.protocol.errors import RecordError
from cotal_tui.protocol.untrusted import Decoded, Refused, decode_untrusted

Status = Literal["idle", "waiting", "working", "offline"]
CardKind = Literal["agent", "endpoint"]
Attention = Literal["open", "dnd", "focus"]
ChannelMode = Literal["quiet", "muted"]
DeliveryClass = Literal["live", "durable"]
MembershipState = Literal["durable-active", "live-confirmed"]
Plane3Reason = Literal["durable-channel", "live-mention"]

STATUSES: tuple[Status, ...] = ("idle", "waiting", "working", "offline")
DELIVERY_CLASSES: tuple[DeliveryClass, ...] = ("live", "durable")

# ``reason`` strings seen in durableJoin replies (§4.2).
REASON_CATCHUP_EVICTED = "activation catch-up window partially evicted by retention"
REASON_ACTIVATION_SUPERSEDED = "activation superseded by a concurrent leave or rejoin"


_WIRE_CONTEXT = "cotal_wire"
_NOT_JSON = ("not-json", "non-finite-number", "not-utf8")


def _describe(err: Any) -> str:
    loc = ".".join(str(p) for p in err.get("loc", ())) or "(record)"
    rule = err.get("msg", "invalid")
    if err.get("type") == "missing":
        return f"field `{loc}` is required but missing"
    got = err.get("input")
    shown = json.dumps(got, ensure_ascii=False) if _jsonable(got) else repr(got)
    if len(shown) > 80:
        shown = shown[:77] + "..."
    return f"field `{loc}`: {rule} (got {shown})"


def _jsonable(v: Any) -> bool:
    try:
        json.dumps(v)
    except (TypeError, ValueError):
        return False
    return True


class WireModel(BaseModel):
    """Base of every wire model: camelCase aliases, omitted optionals, remembered key order."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        serialize_by_alias=True,
        extra="ignore",
        frozen=True,
    )

    _wire_order: tuple[str, ...] | None = None
    record_name: ClassVar[str] = ""

    @model_validator(mode="wrap")
    @classmethod
    def _remember_order(cls, data: Any, handler: Any, info: ValidationInfo) -> Any:
        model = handler(data)
        wire = isinstance(info.context, dict) and info.context.get(_WIRE_CONTEXT)
        if wire and isinstance(data, dict) and isinstance(model, WireModel):
            model._wire_order = tuple(data)
        return model

    @model_serializer(mode="wrap")
    def _omit_none(
        self, handler: SerializerFunctionWrapHandler, info: SerializationInfo
    ) -> dict[str, Any]:
        out: dict[str, Any] = handler(self)
        for name, field in type(self).model_fields.items():
            if getattr(self, name) is None:
                out.pop(field.alias or name, None)
                out.pop(name, None)
        order = self._wire_order
        if order:
            ordered = {k: out[k] for k in order if k in out}
            ordered.update((k, v) for k, v in out.items() if k not in ordered)
            return ordered
        return out

    def __eq__(self, other: object) -> bool:
        """Equal when the fields are equal; the remembered key order is presentation only."""
        if type(self) is not type(other):
            return NotImplemented
        assert isinstance(other, WireModel)
        return (
            self.__dict__ == other.__dict__ and self.__pydantic_extra__ == other.__pydantic_extra__
        )

    def __hash__(self) -> int:
        return hash((type(self), json.dumps(self.model_dump(mode="json"), sort_keys=True)))

    # -- helpers ----------------------------------------------------------------------------
    @classmethod
    def from_wire(cls, data: Any) -> Self:
        """Validate a decoded JSON value; raise :class:`RecordError` naming field and rule."""
        try:
            return cls.model_validate(data, context={_WIRE_CONTEXT: True})
        except ValidationError as exc:
            raise cls._record_error(exc) from None

    @classmethod
    def from_json(cls, raw: bytes | bytearray | memoryview | str) -> Self:
        """Parse wire bytes by the decoding rule (``protocol.untrusted``): size and nesting
        bounds before parsing, no ``NaN``; every refusal and rule violation raises
        :class:`RecordError` whose ``reason`` names the rule."""
        outcome = decode_untrusted(raw, want_object=False)
        if isinstance(outcome, Refused):
            what = "is not valid JSON" if outcome.reason in _NOT_JSON else "was refused"
            raise RecordError(
                f"{cls._name()} {what} ({outcome}); the record was left untouched",
                outcome.reason,
            )
        return cls.from_wire(outcome.value)

    @classmethod
    def decode(cls, raw: bytes | bytearray | memoryview | str) -> Decoded | Refused:
        """:meth:`from_json` as an outcome that never raises: ``Decoded(record)`` or
        ``Refused(reason, detail)`` (``invalid-record`` when the JSON breaks the schema)."""
        try:
            return Decoded(cls.from_json(raw))
        except RecordError as exc:
            return Refused(exc.reason, str(exc))  # type: ignore[arg-type]
        except RecursionError:  # pragma: no cover - the depth bound runs first
            return Refused("too-deep", f"{cls._name()} nests deeper than validation can follow")

    def to_wire(self) -> dict[str, Any]:
        """The JSON object the reference would send (camelCase, no nulls, original key order)."""
        return self.model_dump(mode="json")

    def to_json(self) -> bytes:
        """Compact UTF-8 JSON, like ``JSON.stringify``."""
        return json.dumps(self.to_wire(), ensure_ascii=False, separators=(",", ":")).encode()

    @classmethod
    def _name(cls) -> str:
        return cls.record_name or cls.__name__

    @classmethod
    def _record_error(cls, exc: ValidationError) -> RecordError:
        problems = "; ".join(_describe(e) for e in exc.errors()[:3])
        more = exc.error_count() - 3
        suffix = f" (+{more} more)" if more > 0 else ""
        return RecordError(f"invalid {cls._name()} record: {problems}{suffix}")


class VerbatimModel(WireModel):
    """A wire model that keeps unknown fields, for envelopes forwarded byte-for-byte."""

    model_config = ConfigDict(extra="allow")


# --- presence (§3.2) ---------------------------------------------------------------------------
class Skill(WireModel):
    id: StrictStr
    name: StrictStr
    description: StrictStr | None = None


class AgentCard(WireModel):
    id: StrictStr
    name: StrictStr
    kind: CardKind
    role: StrictStr | None = None
    description: StrictStr | None = None
    tags: list[StrictStr] | None = None
    skills: list[Skill] | None = None
    meta: dict[str, Any] | None = None
    protocol_version: StrictStr | None = None


class Presence(WireModel):
    """The value at key ``card.id`` of ``cotal_presence_<space>``; re-put on every heartbeat."""

    card: AgentCard
    status: Status
    activity: StrictStr | None = None
    attention: Attention | None = None
    channel_modes: dict[str, ChannelMode] | None = None
    ts: StrictInt

    @property
    def is_offline(self) -> bool:
        return self.status == "offline"

    def as_offline(self) -> Presence:
        """The record a graceful stop (or the roster's stale rule) turns this one into."""
        return self.model_copy(
            update={"status": "offline", "attention": None, "channel_modes": None}
        )


class EndpointRef(VerbatimModel):
    id: StrictStr
    name: StrictStr
    role: StrictStr | None = None

    @classmethod
    def of(cls, card: AgentCard) -> EndpointRef:
        return cls(id=card.id, name=card.name, role=card.role)


# --- messages (§4.1) ---------------------------------------------------------------------------
class TextPart(VerbatimModel):
    kind: Literal["text"] = "text"
    text: StrictStr


class DataPart(VerbatimModel):
    kind: Literal["data"] = "data"
    data: Any


class ExtensionPart(VerbatimModel):
    """A reverse-DNS kind (``com.example.thing``): every field is kept verbatim."""

    kind: StrictStr


def _part_tag(v: Any) -> str:
    kind = v.get("kind") if isinstance(v, dict) else getattr(v, "kind", None)
    return kind if kind in ("text", "data") else "ext"


Part = Annotated[
    Annotated[TextPart, Tag("text")]
    | Annotated[DataPart, Tag("data")]
    | Annotated[ExtensionPart, Tag("ext")],
    Discriminator(_part_tag),
]


class CotalMessage(VerbatimModel):
    """The envelope of every chat, DM and anycast message; ``id`` doubles as ``Nats-Msg-Id``.

    The message class comes from the *subject*, never from ``channel``/``to``/``to_service``.
    """

    id: StrictStr
    ts: StrictInt
    space: StrictStr
    from_: EndpointRef = Field(alias="from")
    channel: StrictStr | None = None
    to: StrictStr | None = None
    to_service: StrictStr | None = None
    mentions: list[StrictStr] | None = None
    parts: list[Part]
    reply_to: StrictStr | None = None
    context_id: StrictStr | None = None

    @property
    def text(self) -> str:
        """The text parts joined by newlines (what a console shows)."""
        return "\n".join(p.text for p in self.parts if isinstance(p, TextPart))


# --- control plane (§4.2) ----------------------------------------------------------------------
class ControlRequest(WireModel):
    op: StrictStr
    args: dict[str, Any] | None = None
    from_: EndpointRef = Field(alias="from")


class ControlReply(WireModel):
    ok: StrictBool
    data: Any = None
    error: StrictStr | None = None

    @classmethod
    def success(cls, data: Any = None) -> ControlReply:
        return cls(ok=True, data=data)

    @classmethod
    def failure(cls, error: str) -> ControlReply:
        return cls(ok=False, error=error)


class DurableJoinArgs(WireModel):
    channel: StrictStr


class DurableLeaveArgs(WireModel):
    channel: StrictStr
    generation: StrictInt


class DurableJoinResult(WireModel):
    """``data`` of a ``durableJoin`` reply: ``durable: false`` comes with a ``reason``."""

    durable: StrictBool
    reason: StrictStr | None = None
    generation: StrictInt | None = None


class DurableLeaveResult(WireModel):
    channel: StrictStr
    already_left: StrictBool | None = None


class MembershipSummary(WireModel):
    channel: StrictStr
    generation: StrictInt
    activated: StrictBool


class ListMembershipsResult(WireModel):
    memberships: list[MembershipSummary]


# --- registries (§3.3-§3.6) --------------------------------------------------------------------
class ChannelDefaults(WireModel):
    """The value at key ``=defaults`` of the channels bucket."""

    replay: StrictBool | None = None
    replay_window: StrictStr | None = None
    delivery_class: DeliveryClass | None = None


class ChannelConfig(WireModel):
    """The value at a concrete channel's key; ``replay_window`` is a duration *string* (``24h``)."""

    replay: StrictBool | None = None
    replay_window: StrictStr | None = None
    delivery_class: DeliveryClass | None = None
    description: StrictStr | None = None
    instructions: StrictStr | None = None


class MembershipRecord(WireModel):
    """Durable membership at ``<channel>/<owner>``; a present ``leave_cursor`` is a tombstone."""

    channel: StrictStr
    owner: StrictStr
    state: MembershipState
    join_cursor: StrictInt
    generation: StrictInt
    activated: StrictBool | None = None
    writer_identity: StrictStr
    updated_at: StrictInt
    leave_cursor: StrictInt | None = None

    @property
    def is_tombstone(self) -> bool:
        return self.leave_cursor is not None


class AclRecord(WireModel):
    """Durable read ACL at ``token(owner)``; ``[]`` reads nothing, a missing row is unknown."""

    allow_subscribe: list[StrictStr]
    revision: StrictInt
    updated_at: StrictInt


class DeliveryLeaseInfo(WireModel):
    """The lease at ``lease.0``; ``since`` is re-stamped on every write, not the acquire time."""

    holder: StrictStr
    since: StrictInt
    ready: StrictBool


class Plane3Entry(WireModel):
    """A dinbox entry: the daemon's pre-auth copy of ``msg`` for one owner."""

    msg: CotalMessage
    channel: StrictStr
    seq: StrictInt
    reason: Plane3Reason
    generation: StrictInt


# KV operations carried in the ``KV-Operation`` header of delete/purge markers.
KV_OPERATION_HEADER = "KV-Operation"
KV_DELETE = "DEL"
KV_PURGE = "PURGE"


def is_kv_tombstone(headers: dict[str, str] | None) -> bool:
    """True for a KV delete or purge marker (empty body; not JSON; e.g. a released lease)."""
    return bool(headers) and headers.get(KV_OPERATION_HEADER) in (KV_DELETE, KV_PURGE)


MODELS: dict[str, type[WireModel]] = {
    m.__name__: m
    for m in (
        Skill,
        AgentCard,
        Presence,
        EndpointRef,
        TextPart,
        DataPart,
        ExtensionPart,
        CotalMessage,
        ControlRequest,
        ControlReply,
        DurableJoinArgs,
        DurableLeaveArgs,
        DurableJoinResult,
        DurableLeaveResult,
        MembershipSummary,
        ListMembershipsResult,
        ChannelDefaults,
        ChannelConfig,
        MembershipRecord,
        AclRecord,
        DeliveryLeaseInfo,
        Plane3Entry,
    )
}
