"""The console's config file (`--config FILE`, default `<state-dir>/console.json` when present).

    {"theme": "nord", "name": "ops-desk", "channels": ["general", "ops"],
     "readOnly": false, "daemon": true}

Every field is optional (an absent file means all defaults); unknown fields are refused, so a
typo ("readonly") is named instead of silently ignored. Command-line flags win over the file:
`--theme`, `--name`, `--read-only` and `--daemon` override it, `--channel` adds to its channels.
`effective()` does that merge; `live_change()` says what a later edit of the file changes while
the console runs (theme and channels live; name, readOnly and daemon at the next start).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator
from pydantic.alias_generators import to_camel

from cotal_tui.protocol.channels import assert_valid_channel, is_concrete_channel
from cotal_tui.protocol.errors import InvalidChannel, InvalidName
from cotal_tui.protocol.peers import assert_valid_name

CONFIG_FILE = "console.json"
DEFAULT_NAME = "operator"


class ConsoleConfigError(ValueError):
    """The config file cannot be used; the text names the file, the field and the rule."""


class ConsoleConfig(BaseModel):
    """What the file may say (camelCase JSON)."""

    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True
    )

    theme: str | None = None
    """A Textual theme name (checked against the themes the console knows when applied)."""
    name: str | None = None
    """Your name on the roster (default operator)."""
    channels: tuple[str, ...] = ()
    """Channels to join at start (a leading '#' is allowed); edits join and leave live."""
    read_only: bool = False
    daemon: bool = False
    """Host the delivery daemon in the console."""

    @field_validator("theme")
    @classmethod
    def _theme(cls, value: str | None) -> str | None:
        if value is not None and not value.strip():
            raise ValueError("must be a theme name, not blank (omit the field for the default)")
        return value

    @field_validator("name")
    @classmethod
    def _name(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                assert_valid_name(value)
            except InvalidName as exc:
                raise ValueError(str(exc)) from None
        return value

    @field_validator("channels")
    @classmethod
    def _channels(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        out: dict[str, None] = {}
        for raw in value:
            channel = raw[1:] if raw.startswith("#") else raw
            try:
                assert_valid_channel(channel)
            except InvalidChannel as exc:
                raise ValueError(str(exc)) from None
            if not is_concrete_channel(channel):
                raise ValueError(f'"{raw}" is a pattern; only a concrete channel can be joined')
            out.setdefault(channel, None)
        return tuple(out)


def _describe(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"]) or "(top level)"
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = "unknown field (known: theme, name, channels, readOnly, daemon)"
        elif err["type"] in ("tuple_type", "list_type"):
            msg = 'must be a list of channel names, e.g. ["general", "ops"]'
        parts.append(f"{loc}: {msg}")
    return "; ".join(parts)


def parse_console_config(text: str, source: str | Path = "console config") -> ConsoleConfig:
    """Parse the file's text; raise ConsoleConfigError naming `source`, the field and the rule."""
    if not text.strip():
        return ConsoleConfig()
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConsoleConfigError(
            f"{source}: not JSON ({exc.msg} at line {exc.lineno} column {exc.colno})"
        ) from None
    if not isinstance(data, dict):
        raise ConsoleConfigError(f"{source}: must be a JSON object of settings")
    try:
        return ConsoleConfig.model_validate(data)
    except ValidationError as exc:
        raise ConsoleConfigError(f"{source}: {_describe(exc)}") from None


def config_path(explicit: str | None, state_dir: str | Path) -> Path:
    """`--config FILE`, else `<state-dir>/console.json` (which may not exist: defaults then)."""
    return Path(explicit) if explicit else Path(state_dir) / CONFIG_FILE


def load_console_config(path: Path, *, required: bool) -> tuple[ConsoleConfig, str | None]:
    """The config and the text it came from; an absent file is the defaults unless `required`."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        if required:
            raise ConsoleConfigError(
                f"--config {path}: no such file; create it or drop --config"
            ) from None
        return ConsoleConfig(), None
    except OSError as exc:
        raise ConsoleConfigError(f"{path}: cannot read it ({exc.strerror or exc})") from None
    return parse_console_config(text, path), text


@dataclass(frozen=True)
class ConsoleFlags:
    """What the command line said; None / False / () = not given, the file decides."""

    theme: str | None = None
    name: str | None = None
    channels: tuple[str, ...] = ()
    read_only: bool = False
    daemon: bool = False


@dataclass(frozen=True)
class Effective:
    """The settings in force: the file, overridden (or for channels extended) by the flags."""

    theme: str | None
    name: str
    channels: tuple[str, ...]
    read_only: bool
    daemon: bool


def effective(config: ConsoleConfig, flags: ConsoleFlags) -> Effective:
    channels = dict.fromkeys(config.channels)
    for ch in flags.channels:
        channels.setdefault(ch[1:] if ch.startswith("#") else ch, None)
    return Effective(
        theme=flags.theme or config.theme,
        name=flags.name or config.name or DEFAULT_NAME,
        channels=tuple(channels),
        read_only=flags.read_only or config.read_only,
        daemon=flags.daemon or config.daemon,
    )


@dataclass(frozen=True)
class LiveChange:
    """What an edit changes while running."""

    theme_changed: bool
    theme: str | None
    join: tuple[str, ...]
    leave: tuple[str, ...]
    restart_only: tuple[str, ...]
    """camelCase names of fields whose new value applies at the next start."""

    @property
    def empty(self) -> bool:
        return not (self.theme_changed or self.join or self.leave or self.restart_only)


def live_change(old: Effective, new: Effective) -> LiveChange:
    """Channels listed by a flag are in both, so a file edit never leaves them."""
    restart = [
        field
        for field, a, b in (
            ("name", old.name, new.name),
            ("readOnly", old.read_only, new.read_only),
            ("daemon", old.daemon, new.daemon),
        )
        if a != b
    ]
    return LiveChange(
        theme_changed=old.theme != new.theme,
        theme=new.theme,
        join=tuple(c for c in new.channels if c not in old.channels),
        leave=tuple(c for c in old.channels if c not in new.channels),
        restart_only=tuple(restart),
    )
