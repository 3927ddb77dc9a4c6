"""Channel predicates (PROTOCOL.md §1.5): concreteness, NATS matching, the policy validator.

:func:`subject_matches` is NATS token matching applied literally: a wildcard in the *subject*
position is just a token, so ``a.*`` and ``a.>`` match each other. The same function decides
channel-vs-pattern questions (ACL checks, filter collapsing), so one rule serves all of them.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

from cotal_tui.protocol.errors import InvalidChannel
from cotal_tui.protocol.jsstr import js_trim

_SAFE_SEGMENT = re.compile(r"[A-Za-z0-9_-]+")


def is_concrete_channel(channel: str) -> bool:
    """True when no trimmed dot-segment is ``*`` or ``>``; publishes must be concrete."""
    return not any(js_trim(seg) in ("*", ">") for seg in channel.split("."))


def subject_matches(pattern: str, subject: str) -> bool:
    """NATS semantics on dot tokens: ``*`` one token, ``>`` one or more (so ``a.>`` ≠ ``a``)."""
    pat = pattern.split(".")
    sub = subject.split(".")
    for i, tok in enumerate(pat):
        if tok == ">":
            return len(sub) > i
        if i >= len(sub):
            return False
        if tok != "*" and tok != sub[i]:
            return False
    return len(pat) == len(sub)


def assert_valid_channel(channel: str) -> str:
    """The policy validator: a policy string must equal its wire token, so no ACL can alias.

    Returns the channel unchanged, or raises :class:`InvalidChannel`. No length limit (0.6.0).
    """
    segments = channel.split(".")
    if any(seg == "" for seg in segments):
        raise InvalidChannel(
            f'invalid channel "{channel}": empty segment (no leading/trailing/double dots)'
        )
    last = len(segments) - 1
    for i, seg in enumerate(segments):
        if seg == ">" and i != last:
            raise InvalidChannel(
                f"invalid channel \"{channel}\": '>' is only valid as the last segment"
            )
        if seg in ("*", ">"):
            continue
        if not _SAFE_SEGMENT.fullmatch(seg):
            raise InvalidChannel(
                f'invalid channel "{channel}": segment "{seg}" must be a NATS-safe token '
                "([A-Za-z0-9_-]), '*', or '>' — policy channel names can't contain characters "
                "the wire layer would rewrite"
            )
    return channel


def channel_in_allow(allow: Iterable[str], channel: str) -> bool:
    """True when some allow pattern matches ``channel`` (subscribe ⊆ allow, join check, reader)."""
    return any(subject_matches(pattern, channel) for pattern in allow)


def collapse_filter_subjects(subjects: Sequence[str]) -> list[str]:
    """Dedupe, then drop every entry matched by a *different* entry (mutual matches drop both)."""
    unique = list(dict.fromkeys(subjects))
    return [s for s in unique if not any(o != s and subject_matches(o, s) for o in unique)]


def normalize_mentions(mentions: Iterable[str] | None) -> list[str] | None:
    """Trim, lowercase, drop empties, dedupe in order; None when nothing is left (field omitted)."""
    if mentions is None:
        return None
    seen: dict[str, None] = {}
    for m in mentions:
        norm = js_trim(m).lower()
        if norm:
            seen.setdefault(norm, None)
    return list(seen) or None
