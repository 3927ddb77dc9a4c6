"""Channel registry rules (§3.3): durations, effective values, write validation, merge.

Values are accepted as models or as the decoded wire dicts (camelCase keys), because the
registry cache holds whatever the KV watch delivered. Effective values follow one rule each:
channel value, else the ``=defaults`` value, else the built-in default. On dicts the reference's
JavaScript semantics are kept: ``null`` falls through ``??`` like an absent key, but a present
``null`` that the reference would dereference (a ``null`` ``replayWindow``) raises
:class:`JsTypeError`, and effective values are returned as stored.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from typing import Any

from cotal_tui.protocol.errors import InvalidChannelConfig, InvalidDuration, JsTypeError
from cotal_tui.protocol.jsstr import ABSENT, js_string, js_trim, utf16_len
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
    A non-string (``null`` from the wire) raises :class:`JsTypeError` like the reference.
    """
    if text is None:
        raise JsTypeError("Cannot read properties of null (reading 'trim')")
    if not isinstance(text, str):
        raise JsTypeError("s.trim is not a function")
    m = _DURATION.fullmatch(js_trim(text))
    if not m:
        raise InvalidDuration(f'invalid duration "{text}" — expected <number><s|m|h|d>, e.g. "24h"')
    digits, unit = m.groups()
    try:
        value = float(int(digits)) * _UNIT_MS[unit]
    except OverflowError:
        return math.inf
    return int(value) if math.isfinite(value) else value


def _coalesce(ch: Mapping[str, Any], d: Mapping[str, Any], key: str) -> Any:
    """``ch?.[key] ?? d?.[key]``: ``null`` and absent both fall through; ABSENT when neither."""
    value = ch.get(key)
    if value is not None:
        return value
    return d.get(key, ABSENT)


def effective_replay(channel: ConfigLike, defaults: ConfigLike) -> bool:
    """Channel value, else default, else ``true`` (``null`` counts as unset)."""
    value = _coalesce(_wire(channel), _wire(defaults), "replay")
    return True if value is None or value is ABSENT else value


def effective_replay_window_ms(channel: ConfigLike, defaults: ConfigLike) -> int | float | None:
    """The replay window in ms, or None for "the whole retained window"."""
    value = _coalesce(_wire(channel), _wire(defaults), "replayWindow")
    return None if value is ABSENT else parse_duration(value)


def effective_delivery_class(channel: ConfigLike, defaults: ConfigLike) -> str:
    """Channel value, else default, else ``durable`` (``null`` counts as unset)."""
    value = _coalesce(_wire(channel), _wire(defaults), "deliveryClass")
    return "durable" if value is None or value is ABSENT else value


def delivery_class_reading(channel: ConfigLike, defaults: ConfigLike) -> tuple[str, str | None]:
    """The effective class as the reference acts on it, and what is wrong with the stored value.

    The reference validates ``deliveryClass`` only on write; on read, ``effectiveDeliveryClass``
    returns whatever is stored and every path tests ``=== "durable"``. So a stored ``5`` or
    ``"bogus"`` reads as *not durable* — live, no offline backstop — everywhere. This project
    follows that reading (``"live"``), and returns the problem text so it is shown, not silent.
    """
    value = effective_delivery_class(channel, defaults)
    if value in DELIVERY_CLASSES:
        return value, None
    shown = shown_delivery_class(value)
    return "live", (
        f'deliveryClass {shown} is neither "live" nor "durable": read as the reference '
        "does, as not durable (live, no offline backstop)"
    )


def shown_delivery_class(value: Any) -> str:
    """A stored ``deliveryClass`` as an operator should see it (JSON text, bounded)."""
    try:
        text = json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError):
        text = js_string(value)
    return text if len(text) <= 24 else text[:21] + "..."


def invalid_delivery_class(channel: ConfigLike, defaults: ConfigLike) -> str | None:
    """The stored effective ``deliveryClass`` as text when it is invalid, else None."""
    value = effective_delivery_class(channel, defaults)
    return None if value in DELIVERY_CLASSES else shown_delivery_class(value)


def _check_delivery_class(c: Mapping[str, Any]) -> None:
    value = c.get("deliveryClass", ABSENT)
    if value is not ABSENT and value not in DELIVERY_CLASSES:
        raise InvalidChannelConfig(
            f'invalid deliveryClass "{js_string(value)}" — expected "live" or "durable"'
        )


def _js_length(value: Any) -> int | None:
    """``value.length`` for a decoded JSON value (None where JS gives ``undefined``)."""
    if value is None:
        raise JsTypeError("Cannot read properties of null (reading 'length')")
    if isinstance(value, str):
        return utf16_len(value)
    if isinstance(value, list):
        return len(value)
    return None


def _check_text(c: Mapping[str, Any], key: str, what: str, cap: int) -> None:
    value = c.get(key, ABSENT)
    if value is ABSENT:
        return
    length = _js_length(value)
    if length is not None and length > cap:
        raise InvalidChannelConfig(f"channel {what} too long ({length} > {cap} chars)")


def validate_channel_config(cfg: ConfigLike) -> None:
    """Refuse a channel write that breaks a rule; text is never truncated."""
    c = _wire(cfg)
    _check_text(c, "description", "description", MAX_CHANNEL_DESCRIPTION)
    _check_text(c, "instructions", "instructions", MAX_CHANNEL_INSTRUCTIONS)
    validate_channel_defaults(c)


def validate_channel_defaults(cfg: ConfigLike) -> None:
    """Refuse a ``=defaults`` write with a bad replay window or delivery class."""
    c = _wire(cfg)
    window = c.get("replayWindow", ABSENT)
    if window is not ABSENT:
        parse_duration(window)
    _check_delivery_class(c)


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
