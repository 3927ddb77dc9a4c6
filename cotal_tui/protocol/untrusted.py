"""One rule for untrusted bytes: every decode of wire data goes through :func:`decode_untrusted`.

Any agent can put bytes on a subject the daemon, the endpoint or the console reads. Those bytes
are decoded by one rule, in this order, each step cheap before the next costly one:

1. **size**: more than ``max_bytes`` is refused unread (``oversized``);
2. **UTF-8**: bytes that are not UTF-8 are refused (``not-utf8``);
3. **nesting**: the bracket depth outside strings is counted *before* parsing (a C-speed
   strip of string literals, then a running sum over the brackets left); deeper than
   ``max_depth`` is refused (``too-deep``). Python's parser and pydantic recurse per level, so
   an unbounded depth is a ``RecursionError`` (or worse) waiting for one message;
4. **JSON**: a strict parse that refuses ``NaN``/``Infinity``/``-Infinity``
   (``non-finite-number``: ``JSON.parse`` refuses them, so the reference never sees them) and
   anything else that is not JSON (``not-json``);
5. **shape**: where an object is expected, anything else is refused (``not-an-object``);
   a record model's ``decode`` adds ``invalid-record`` for JSON that breaks its schema.

The outcome is a value, never an exception: :class:`Decoded` or :class:`Refused` with a named
reason and a one-line detail. A caller decides per message (ack, term, dead-letter, skip), so
one hostile message can never fail a batch or end a task.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from itertools import accumulate
from typing import Any, Final, Literal

# The server's default ``max_payload`` (1 MiB): nothing larger can arrive on a subject.
MAX_WIRE_BYTES: Final = 1_048_576

# Legitimate Cotal envelopes nest a handful of levels (message → parts → data → …); 64 leaves a
# structured ``data`` part plenty of room and keeps every recursive walk (parse, validation,
# re-serialization) far from Python's recursion limit.
MAX_DEPTH: Final = 64

RefusalReason = Literal[
    "oversized",
    "not-utf8",
    "too-deep",
    "not-json",
    "non-finite-number",
    "not-an-object",
    "invalid-record",
]
REFUSAL_REASONS: tuple[RefusalReason, ...] = (
    "oversized",
    "not-utf8",
    "too-deep",
    "not-json",
    "non-finite-number",
    "not-an-object",
    "invalid-record",
)


@dataclass(frozen=True)
class Decoded:
    """The bytes passed the rule; ``value`` is the parsed JSON value."""

    value: Any

    @property
    def ok(self) -> Literal[True]:
        return True


@dataclass(frozen=True)
class Refused:
    """The bytes were refused; ``reason`` names the rule, ``detail`` says what was seen."""

    reason: RefusalReason
    detail: str

    @property
    def ok(self) -> Literal[False]:
        return False

    def __str__(self) -> str:
        return f"{self.reason}: {self.detail}"


Outcome = Decoded | Refused

# A JSON string literal (the unrolled form: no backtracking, no recursion in the regex engine).
_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_BRACKETS = b"[]{}"
_NOT_BRACKETS = bytes(b for b in range(256) if b not in _BRACKETS)
_STEP = {ord("["): 1, ord("{"): 1, ord("]"): -1, ord("}"): -1}


class _NonFinite(ValueError):
    pass


def _reject_constant(name: str) -> Any:
    raise _NonFinite(f"{name} is not a JSON value")


def nesting_depth(raw: bytes) -> int:
    """The deepest bracket nesting of ``raw`` outside string literals, without parsing it.

    Exact for valid JSON (a ``"`` outside a string always opens one, as the parser lexes it);
    for invalid JSON the count may be high, never dangerously low (an unterminated string's
    brackets are counted). One regex strip and one running sum, both in C iterators.
    """
    brackets = _STRING.sub(b"", raw).translate(None, _NOT_BRACKETS)
    if not brackets:
        return 0
    return max(0, max(accumulate(_STEP[b] for b in brackets)))


def decode_untrusted(
    raw: bytes | bytearray | memoryview | str,
    *,
    max_bytes: int = MAX_WIRE_BYTES,
    max_depth: int = MAX_DEPTH,
    want_object: bool = True,
) -> Outcome:
    """Decode wire bytes by the rule above; never raises for any input."""
    if isinstance(raw, str):
        try:
            data = raw.encode("utf-8")
        except UnicodeEncodeError:
            return Refused("not-utf8", "text holds a lone surrogate")
    else:
        data = bytes(raw)
    if len(data) > max_bytes:
        return Refused("oversized", f"{len(data)} bytes, more than the {max_bytes}-byte bound")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        return Refused("not-utf8", f"invalid UTF-8 at byte {exc.start}")
    if data.count(b"[") + data.count(b"{") > max_depth:  # else it cannot be too deep
        depth = nesting_depth(data)
        if depth > max_depth:
            return Refused(
                "too-deep", f"nested {depth} levels, more than the {max_depth}-level bound"
            )
    try:
        value = json.loads(text, parse_constant=_reject_constant)
    except _NonFinite as exc:
        return Refused("non-finite-number", str(exc))
    except RecursionError:  # belt and braces: the depth scan should have caught it
        return Refused("too-deep", "nested deeper than the parser can follow")
    except ValueError as exc:
        return Refused("not-json", _short(str(exc)))
    if want_object and not isinstance(value, dict):
        return Refused("not-an-object", f"a JSON {_json_type(value)}, not an object")
    return Decoded(value)


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _short(text: str, cap: int = 120) -> str:
    line = text.splitlines()[0] if text else "invalid"
    return line if len(line) <= cap else line[: cap - 3] + "..."
