"""Channel registry rules (§3.3): durations, effective values, write validation, merge.

Values are accepted as models or as the decoded wire dicts (camelCase keys), because the
registry cache holds whatever the KV watch delivered. Effective values follow one rule each:
channel value, else the ``=defaults`` value, else the built-in default.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from cotal_tui.protocol.errors import InvalidChannelConfig, InvalidDuration
from cotal_tui.protocol.jsstr import js_trim, utf16_len
from cotal_tui.protocol.models import DELIVERY_CLASSES, ChannelConfig, ChannelDefaults, WireModel
from cotal_tui.protocol.names import MAX_CHANNEL_DESCRIPTION, MAX_CHANNEL_INSTRUCTIONS

_DURATION = re.compile(r"([0-9]+)([smhd])")
_UNIT_MS = {"s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}

ConfigLike = ChannelConfig | ChannelDefaults | Mapping[str, Any] | None


def _wire(cfg: ConfigLike) -> Mapping[str, Any]:
    if cfg is None:
        return {}
    if isinstance(cfg, WireModel):
        return cfg.to_wire()
    return cfg


def parse_duration(text: str) -> int | float:
    """``<digits><s|m|h|d>`` after a JS trim, in milliseconds, with JS double precision.

    Returns an ``int`` (the exact value of the double) unless the digits overflow a double, in
    which case the result is ``inf`` exactly as the reference's ``Number()`` gives ``Infinity``.
    """
    m = _DURATION.fullmatch(js_trim(text))
    if not m:
        raise InvalidDuration(f'invalid duration "{text}" — expected <number><s|m|h|d>, e.g. "24h"')
    digits, unit = m.groups()
    try:
        value = float(int(digits)) * _UNIT_MS[unit]
    except OverflowError:
        return float("inf")
    return int(value) if value != float("inf") else value


def effective_replay(channel: ConfigLike, defaults: ConfigLike) -> bool:
    ch, d = _wire(channel), _wire(defaults)
    for source in (ch, d):
        if source.get("replay") is not None:
            return bool(source["replay"])
    return True


def effective_replay_window_ms(channel: ConfigLike, defaults: ConfigLike) -> int | float | None:
    """The replay window in ms, or None for "the whole retained window"."""
    ch, d = _wire(channel), _wire(defaults)
    for source in (ch, d):
        if source.get("replayWindow") is not None:
            return parse_duration(source["replayWindow"])
    return None


def effective_delivery_class(channel: ConfigLike, defaults: ConfigLike) -> str:
    """Channel value, else default, else ``durable``."""
    ch, d = _wire(channel), _wire(defaults)
    for source in (ch, d):
        if source.get("deliveryClass") is not None:
            return str(source["deliveryClass"])
    return "durable"


def _check_delivery_class(value: Any) -> None:
    if value is not None and value not in DELIVERY_CLASSES:
        raise InvalidChannelConfig(
            f'invalid deliveryClass "{value}" — expected "live" or "durable"'
        )


def validate_channel_config(cfg: ConfigLike) -> None:
    """Refuse a channel write that breaks a rule; text is never truncated."""
    c = _wire(cfg)
    desc = c.get("description")
    if isinstance(desc, str) and utf16_len(desc) > MAX_CHANNEL_DESCRIPTION:
        raise InvalidChannelConfig(
            f"channel description too long ({utf16_len(desc)} > {MAX_CHANNEL_DESCRIPTION} chars)"
        )
    instr = c.get("instructions")
    if isinstance(instr, str) and utf16_len(instr) > MAX_CHANNEL_INSTRUCTIONS:
        raise InvalidChannelConfig(
            f"channel instructions too long ({utf16_len(instr)} > {MAX_CHANNEL_INSTRUCTIONS} chars)"
        )
    validate_channel_defaults(c)


def validate_channel_defaults(cfg: ConfigLike) -> None:
    """Refuse a ``=defaults`` write with a bad replay window or delivery class."""
    c = _wire(cfg)
    if c.get("replayWindow") is not None:
        parse_duration(c["replayWindow"])
    _check_delivery_class(c.get("deliveryClass"))


def merge_channel_config(existing: ConfigLike, patch: ConfigLike) -> ChannelConfig:
    """``{...existing, ...patch}``: existing key order kept, new keys appended; then validated."""
    merged = dict(_wire(existing))
    merged.update(_wire(patch))
    validate_channel_config(merged)
    return ChannelConfig.from_wire(merged)


def merge_channel_defaults(existing: ConfigLike, patch: ConfigLike) -> ChannelDefaults:
    merged = dict(_wire(existing))
    merged.update(_wire(patch))
    validate_channel_defaults(merged)
    return ChannelDefaults.from_wire(merged)
