"""The daemon's dead-letter store: where a message that cannot be routed goes, with why.

Not part of Cotal 0.6.0: the project's own stream, named so that it can never collide with a
reference stream or bucket (the reference's are ``CHAT_``, ``DM_``, ``TASK_``, ``INBOX_``,
``DLV_`` and ``KV_cotal_*``; its subjects all live under ``cotal.``):

- stream ``COTALTUI_DEAD_<token(space)>``, subjects ``cotaltui.<token(space)>.dead.<reason>``;
- limits retention, file storage, at most :data:`DEAD_LETTER_MAX_MSGS` records and
  :data:`DEAD_LETTER_MAX_BYTES` bytes, oldest discarded first (bounded: a flood of poison cannot
  grow it without end);
- one record per refused message, a JSON object (:class:`DeadLetter`):
  ``{subject, stream, seq, reason, detail, ts, size, by}``: the subject and stream sequence of
  the message that was refused (the message itself stays in its own stream, unmodified), the
  reason (one of :data:`DEAD_LETTER_REASONS`), a one-line detail, when (epoch ms), its size in
  bytes and the daemon id that refused it;
- counts: the stream's ``last_seq`` is the number of records since the store began (it never
  goes back, even when old records are discarded); records per reason are the retained records
  per subject.

A message is dead-lettered, and acked out of the pipeline, when it cannot be routed at all:
undecodable by the decoding rule (``protocol.untrusted``: ``oversized``, ``too-deep``,
``not-json``, ``non-finite-number``, ``not-utf8``, ``not-an-object``, ``invalid-record``), a
``spoofed-sender`` (``from.id`` is not the subject's sender), a ``channel-mismatch`` (the body's
``channel`` is not the subject's), an ``entry-oversized`` dinbox entry (the message fits the
server's ``max_payload`` but the entry around it does not), or ``delivery-failed`` (its routing
failed :data:`MAX_ROUTE_ATTEMPTS` times in a row).
"""

from __future__ import annotations

from typing import Final, Literal

from pydantic import StrictInt, StrictStr

from cotal_tui.protocol.consumers import StreamSpec
from cotal_tui.protocol.models import WireModel
from cotal_tui.protocol.subjects import token
from cotal_tui.protocol.untrusted import REFUSAL_REASONS

DEAD_LETTER_ROOT: Final = "cotaltui"
DEAD_LETTER_MAX_MSGS: Final = 1000
DEAD_LETTER_MAX_BYTES: Final = 1_048_576
# A message whose routing fails this many deliveries in a row is dead-lettered (the reference's
# reader gives up at READER_MAX_REDELIVERIES = 10 as well).
MAX_ROUTE_ATTEMPTS: Final = 10

DaemonReason = Literal["spoofed-sender", "channel-mismatch", "entry-oversized", "delivery-failed"]
DAEMON_REASONS: tuple[DaemonReason, ...] = (
    "spoofed-sender",
    "channel-mismatch",
    "entry-oversized",
    "delivery-failed",
)
DEAD_LETTER_REASONS: tuple[str, ...] = (*REFUSAL_REASONS, *DAEMON_REASONS)


def dead_letter_stream(space: str) -> str:
    return f"COTALTUI_DEAD_{token(space)}"


def dead_letter_prefix(space: str) -> str:
    return f"{DEAD_LETTER_ROOT}.{token(space)}.dead"


def dead_letter_subject(space: str, reason: str) -> str:
    """``cotaltui.<space>.dead.<reason>``; an unknown reason is filed as ``other``."""
    return f"{dead_letter_prefix(space)}.{reason if reason in DEAD_LETTER_REASONS else 'other'}"


def reason_of_subject(subject: str) -> str:
    return subject.rsplit(".", 1)[-1]


def dead_letter_stream_spec(space: str) -> StreamSpec:
    """The store as a stream spec (limits, file, bounded, oldest discarded first)."""
    return StreamSpec(
        name=dead_letter_stream(space),
        subjects=(f"{dead_letter_prefix(space)}.>",),
        discard="old",
        max_msgs=DEAD_LETTER_MAX_MSGS,
        max_bytes=DEAD_LETTER_MAX_BYTES,
    )


class DeadLetter(WireModel):
    """One dead-letter record (see the module text)."""

    subject: StrictStr
    stream: StrictStr
    seq: StrictInt
    reason: StrictStr
    detail: StrictStr
    ts: StrictInt
    size: StrictInt
    by: StrictStr

    record_name = "dead letter"


def short_detail(text: str, cap: int = 200) -> str:
    """One line of at most ``cap`` characters."""
    line = " ".join(text.split())
    return line if len(line) <= cap else line[: cap - 3] + "..."
