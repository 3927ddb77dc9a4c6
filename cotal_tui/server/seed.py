"""The channel-registry seed: `{"defaults": {...}, "channels": {"<name>": {...}}}`.

`load_channel_seed` validates the whole file with the protocol's rules before anything is written
and refuses it whole, naming the offending entry. `apply_channel_seed` merges each entry over the
stored value (a registry write is a merge, PROTOCOL §3.3) and writes only what changed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nats.aio.client import Client
from nats.js.errors import KeyNotFoundError

from cotal_tui.protocol import (
    CHANNEL_DEFAULTS_KEY,
    ChannelConfig,
    ChannelDefaults,
    assert_valid_channel,
    channel_bucket,
    is_concrete_channel,
    validate_channel_config,
    validate_channel_defaults,
)
from cotal_tui.protocol.untrusted import Decoded, decode_untrusted

SEED_KEYS = ("defaults", "channels")


class ChannelSeedError(ValueError):
    """A channel seed file is unusable; nothing from it was written."""


@dataclass(frozen=True)
class ChannelSeed:
    """A validated seed: `defaults` (None when absent) and each channel's config patch."""

    defaults: dict[str, Any] | None = None
    channels: dict[str, dict[str, Any]] = field(default_factory=dict)


def _wire(
    model: type[ChannelConfig] | type[ChannelDefaults], raw: dict[str, Any]
) -> dict[str, Any]:
    return model.from_wire(raw).to_wire()


def parse_channel_seed(data: Any, *, source: str = "channel seed") -> ChannelSeed:
    """Validate decoded seed JSON; raise `ChannelSeedError` naming the first bad entry."""
    if not isinstance(data, dict):
        raise ChannelSeedError(
            f'{source}: expected a JSON object {{"defaults": {{...}}, "channels": {{...}}}}, '
            f"got {type(data).__name__}"
        )
    unknown = sorted(set(data) - set(SEED_KEYS))
    if unknown:
        raise ChannelSeedError(
            f"{source}: unknown top-level key(s) {', '.join(map(repr, unknown))}; "
            'only "defaults" and "channels" are allowed'
        )
    defaults: dict[str, Any] | None = None
    if "defaults" in data:
        raw = data["defaults"]
        if not isinstance(raw, dict):
            raise ChannelSeedError(f'{source}: "defaults" must be an object')
        try:
            validate_channel_defaults(raw)
            defaults = _wire(ChannelDefaults, raw)
        except ValueError as exc:
            raise ChannelSeedError(f'{source}: "defaults": {exc}') from exc
    channels: dict[str, dict[str, Any]] = {}
    raw_channels = data.get("channels", {})
    if not isinstance(raw_channels, dict):
        raise ChannelSeedError(f'{source}: "channels" must be an object of name → config')
    for name, raw in raw_channels.items():
        where = f'{source}: channel "{name}"'
        try:
            assert_valid_channel(name)
        except ValueError as exc:
            raise ChannelSeedError(f"{where}: {exc}") from exc
        if not is_concrete_channel(name):
            raise ChannelSeedError(
                f"{where}: a registry entry needs a concrete channel (no '*' or '>'); "
                'wildcard channels take their settings from "defaults"'
            )
        if not isinstance(raw, dict):
            raise ChannelSeedError(f"{where}: the config must be an object")
        try:
            validate_channel_config(raw)
            channels[name] = _wire(ChannelConfig, raw)
        except ValueError as exc:
            raise ChannelSeedError(f"{where}: {exc}") from exc
    return ChannelSeed(defaults=defaults, channels=channels)


def load_channel_seed(source: str | Path | dict[str, Any]) -> ChannelSeed:
    """Read and validate a seed file (or already-decoded JSON)."""
    if isinstance(source, dict):
        return parse_channel_seed(source)
    path = Path(source)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ChannelSeedError(
            f"channel seed {path}: cannot read it ({exc.strerror or exc}); check --channels"
        ) from exc
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ChannelSeedError(
            f"channel seed {path}: not valid JSON (line {exc.lineno}, column {exc.colno}: "
            f"{exc.msg})"
        ) from exc
    return parse_channel_seed(data, source=f"channel seed {path}")


def _encode(value: dict[str, Any]) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


async def apply_channel_seed(nc: Client, space: str, seed: ChannelSeed) -> list[str]:
    """Merge each seed entry over the stored one; return the keys actually written."""
    kv = await nc.jetstream().key_value(channel_bucket(space))
    entries: list[tuple[str, dict[str, Any]]] = []
    if seed.defaults is not None:
        entries.append((CHANNEL_DEFAULTS_KEY, seed.defaults))
    entries += list(seed.channels.items())
    written: list[str] = []
    for key, patch in entries:
        current: dict[str, Any] = {}
        try:
            entry = await kv.get(key)
            if entry.value:
                decoded = decode_untrusted(entry.value)  # an unreadable value merges as unset
                if isinstance(decoded, Decoded):
                    current = decoded.value
        except KeyNotFoundError:
            pass
        merged = {**current, **patch}
        if merged == current and current:
            continue
        await kv.put(key, _encode(merged))
        written.append(key)
    return written
