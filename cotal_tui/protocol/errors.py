"""Named errors of the wire rules. Messages that travel on the wire match the reference exactly.

Each class says which rule was broken; callers catch the class, and show the message (which
names the offending value) to the operator or put it in a ``ControlReply.error``.
"""

from __future__ import annotations


class ProtocolError(ValueError):
    """Base of every rule violation raised by ``cotal_tui.protocol``."""


class JsTypeError(ProtocolError, TypeError):
    """A value of the wrong JSON type where the reference would fail with a JavaScript TypeError.

    Raised for e.g. a ``null`` ``replayWindow`` (``Cannot read properties of null (reading
    'trim')``): the message is the reference's, so a reply or log line reads the same.
    """


class InvalidChannel(ProtocolError):
    """A channel string breaks the channel grammar (empty segment, misplaced ``>``, unsafe char)."""


class InvalidDuration(ProtocolError):
    """A ``replayWindow`` is not ``<digits><s|m|h|d>``."""


class InvalidChannelConfig(ProtocolError):
    """A channel-registry write breaks a rule (too long, unknown deliveryClass)."""


class InvalidName(ProtocolError):
    """An agent name breaks the name rules (blank, surrounding whitespace, multi-line, ``/``)."""


class AmbiguousPeerError(ProtocolError):
    """A name matches more than one peer; the caller must use the exact instance id."""

    def __init__(self, message: str, candidates: list[object]) -> None:
        super().__init__(message)
        self.candidates = candidates


class InvalidJoinLink(ProtocolError):
    """A join link is not a usable ``cotal://`` / ``cotals://`` link."""


class InvalidUrl(InvalidJoinLink):
    """The URL parser refused the link (the reference's ``TypeError: Invalid URL``)."""

    def __init__(self) -> None:
        super().__init__("Invalid URL")


class UriMalformed(InvalidJoinLink):
    """A percent-escape does not decode to UTF-8 (the reference's ``URIError: URI malformed``)."""

    def __init__(self) -> None:
        super().__init__("URI malformed")


class RecordError(ProtocolError):
    """A record or envelope does not parse: the message names the field and the rule.

    ``reason`` names the rule for counting and dead-lettering: one of the decoding rule's
    refusals (``oversized``, ``too-deep``, ``not-json``, ... see ``protocol.untrusted``), or
    ``invalid-record`` when the JSON parsed but breaks the record's schema.
    """

    def __init__(self, message: str, reason: str = "invalid-record") -> None:
        super().__init__(message)
        self.reason = reason


class StaleMembershipWrite(ProtocolError):
    """A membership write carries a generation other than the stored one (fail closed).

    Raised for a commit older than the stored record, and for a leave naming another generation
    (a stale leave racing a rejoin). The reference words both as ``generation <a> < current <b>``,
    even when ``a > b``; the text travels in ``ctl.delivery`` replies, so it is kept verbatim.
    """

    def __init__(self, channel: str, owner: str, generation: int, current: int) -> None:
        super().__init__(
            f"stale membership write for {channel}/{owner}: "
            f"generation {generation} < current {current}"
        )
        self.channel = channel
        self.owner = owner
        self.generation = generation
        self.current = current


class CasExhausted(ProtocolError):
    """A compare-and-set loop lost the race five times in a row."""


class MembersCasExhausted(CasExhausted):
    def __init__(self, key: str) -> None:
        super().__init__(f"members CAS exhausted retries for {key}")
        self.key = key


class AclCasExhausted(CasExhausted):
    def __init__(self, owner: str) -> None:
        super().__init__(f"acl CAS exhausted retries for {owner}")
        self.owner = owner


class LeaseHeld(ProtocolError):
    """Another delivery daemon holds a live lease; this one must not bind."""

    def __init__(self, shard: int = 0) -> None:
        super().__init__(
            f"a live lease already exists for shard {shard} — another delivery daemon is "
            "running. Not binding."
        )
        self.shard = shard


class LeaseLost(ProtocolError):
    """A renew CAS failed: another holder took the lease; exit so the holder stays single."""

    def __init__(self, detail: str) -> None:
        super().__init__(f"lost the lease ({detail}) — exiting so the holder is single")
        self.detail = detail
