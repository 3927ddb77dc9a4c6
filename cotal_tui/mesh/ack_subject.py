"""The delivery count and stream sequence of a JetStream message, read from its ack subject.

nats-py's ``Msg.metadata`` builds a ``Metadata`` object (sequence pair, timestamp conversion,
stream and consumer names) the first time it is read; the daemon needs two integers per message.
The ack subject is ``$JS.ACK.<stream>.<consumer>.<delivered>.<sseq>.<cseq>.<ts>.<pending>``
(9 tokens), or with a domain and account hash ``$JS.ACK.<domain>.<hash>.<stream>.<consumer>.
<delivered>.<sseq>.<cseq>.<ts>.<pending>[.<token>]`` (11 or 12 tokens). Anything else falls back
to ``Msg.metadata``.
"""

from __future__ import annotations

from typing import Any


def ack_numbers(msg: Any) -> tuple[int, int] | None:
    """(delivered count, stream sequence) from the ack subject, or None when it has neither."""
    reply = msg.reply
    if not reply or not reply.startswith("$JS.ACK."):
        return None
    parts = reply.split(".")
    n = len(parts)
    try:
        if n == 9:
            return int(parts[4]), int(parts[5])
        if n >= 11:
            return int(parts[6]), int(parts[7])
    except ValueError:
        return None
    return None


def deliveries(msg: Any) -> int:
    """How many times JetStream delivered ``msg`` (1 when it is not a JetStream message)."""
    numbers = ack_numbers(msg)
    if numbers is not None:
        return numbers[0]
    try:
        return int(msg.metadata.num_delivered)
    except Exception:  # noqa: BLE001 - not a JetStream message: treat as first delivery
        return 1


def stream_seq(msg: Any) -> int:
    """The message's stream sequence (0 when it is not a JetStream message)."""
    numbers = ack_numbers(msg)
    if numbers is not None:
        return numbers[1]
    try:
        return int(msg.metadata.sequence.stream)
    except Exception:  # noqa: BLE001 - not a JetStream delivery
        return 0
