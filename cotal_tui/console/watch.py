"""`ConsoleWatcher`: the console's live edits of its config file and its creds file.

One asyncio task (owned by `ConsoleSession`, started by `start()`, stopped by `stop()`) watches
the directories holding the two files with `watchfiles.awatch`. As `up` does for the channel
seed, the file's *content* decides (editors that save by rename work; an edit made before the
watcher was armed is caught on its first tick), and a bad edit changes nothing:

- config: theme switches at once; channels newly listed are joined, channels dropped from the
  list are left (never one given by `--channel`); name, readOnly and daemon apply at the next
  start (said so). A file that does not parse, or names an unknown theme, is refused with a
  notice and the previous config stays in force.
- creds: the new file must be a NATS creds file for the same identity (a different user key
  needs a restart: the instance id, durables and ACL are bound to it); then the endpoint's
  connection reconnects, and nats-py re-reads the file on every connect, so the new JWT is used.

Every outcome reaches the operator through `LiveHooks.notice` (the TUI's notice line, the plain
stream's `#` lines).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass, replace
from pathlib import Path

from watchfiles import awatch

from cotal_tui.console.commands import CommandResult
from cotal_tui.console.config import (
    ConsoleConfigError,
    ConsoleFlags,
    Effective,
    effective,
    live_change,
    parse_console_config,
)
from cotal_tui.server.nats_jwt import JwtError, decode_jwt, parse_creds

log = logging.getLogger(__name__)

Notice = Callable[[str, str], None]
"""(text, outcome) with outcome one of ok / refused / failed / invalid / info."""


def _log_notice(text: str, outcome: str) -> None:
    log.info("console %s: %s", outcome, text)


@dataclass
class LiveHooks:
    """Where live edits land on a display; the session works without one (notices are logged)."""

    notice: Notice = _log_notice
    themes: Callable[[], Collection[str]] | None = None
    """The theme names a display knows; None = no display, any theme name is accepted."""
    set_theme: Callable[[str | None], None] | None = None
    """Switch the theme; None means back to the console's default."""


@dataclass
class WatchedConfig:
    path: Path
    flags: ConsoleFlags
    running: Effective
    """What is in force now (restart-only fields keep their start values)."""
    text: str | None
    """The content last applied (None: the file was absent)."""


class CredsChangeRefused(ValueError):
    """A rewritten creds file that cannot replace the running one; the text says why."""


def creds_identity_of(text: str) -> str:
    """The user key a creds file's text authenticates as; raise CredsChangeRefused if broken."""
    try:
        creds = parse_creds(text)
        claims = decode_jwt(creds.jwt, verify=False)
        seed_key = creds.public
    except (JwtError, ValueError, KeyError, IndexError) as exc:
        raise CredsChangeRefused(f"not a usable NATS creds file ({exc})") from None
    sub = str(claims.get("sub", ""))
    if sub != seed_key:
        raise CredsChangeRefused(
            f"its JWT is for {sub or 'no user'} but its seed is {seed_key}: the pair does not match"
        )
    return sub


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except OSError:
        return None


class ConsoleWatcher:
    """Owns the watch task; `join`/`leave` run the console's own commands, `reconnect` the link."""

    def __init__(
        self,
        *,
        hooks: LiveHooks,
        config: WatchedConfig | None = None,
        creds: Path | None = None,
        identity: str | None = None,
        join: Callable[[str], Awaitable[CommandResult]] | None = None,
        leave: Callable[[str], Awaitable[CommandResult]] | None = None,
        reconnect: Callable[[], Awaitable[None]] | None = None,
        debounce_ms: int = 150,
    ) -> None:
        self.hooks = hooks
        self.config = config
        self.creds = creds.resolve() if creds is not None else None
        self.creds_text = _read(self.creds) if self.creds is not None else None
        self.identity = identity
        self.join = join
        self.leave = leave
        self.reconnect = reconnect
        self.debounce_ms = debounce_ms
        self.applied = 0
        """Edits applied (config or creds): tests wait on it, never on time."""
        self.refused = 0
        self._missing: set[Path] = set()
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.armed = asyncio.Event()

    def dirs(self) -> list[Path]:
        out: dict[Path, None] = {}
        if self.config is not None:
            out.setdefault(self.config.path.resolve().parent, None)
        if self.creds is not None:
            out.setdefault(self.creds.parent, None)
        return [d for d in out if d.is_dir()]

    def start(self) -> None:
        if self._task is not None or not self.dirs():
            return
        self._stop.clear()
        self._task = asyncio.get_running_loop().create_task(self._run(), name="console-watch")

    async def stop(self) -> None:
        self._stop.set()
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(BaseException):
                await task

    def _names(self) -> set[str]:
        names = {self.creds.name} if self.creds is not None else set()
        if self.config is not None:
            names.add(self.config.path.name)
        return names

    async def _run(self) -> None:
        names = self._names()
        # Only our two files wake the loop (the state dir also holds the embedded server's
        # store, busy with every message); the 1 s timeout tick re-reads them anyway, so an
        # event this filter misses is caught a second later.
        async for _changes in awatch(
            *self.dirs(),
            watch_filter=lambda _change, path: Path(path).name in names,
            recursive=False,
            stop_event=self._stop,
            debounce=self.debounce_ms,
            step=50,
            yield_on_timeout=True,
            rust_timeout=1000,
        ):
            self.armed.set()
            try:
                await self.check_once()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - a watcher bug must not end the watching
                log.exception("console watch step failed")
                self.hooks.notice(f"watching the console's files failed once: {exc}", "failed")

    async def check_once(self) -> None:
        """Compare both files with what was applied; apply or refuse what changed."""
        if self.config is not None:
            text = _read(self.config.path)
            self._gone(self.config.path, text, self.config.text, "keeping the settings in force")
            if text is not None and text != self.config.text:
                await self._config_edit(text)
        if self.creds is not None:
            text = _read(self.creds)
            self._gone(
                self.creds,
                text,
                self.creds_text,
                "a reconnect fails until it is back, so restore it",
            )
            if text is not None and text != self.creds_text:
                await self._creds_edit(text)

    def _gone(self, path: Path, text: str | None, applied: str | None, consequence: str) -> None:
        """Say once that a watched file vanished (an absent file is never applied)."""
        if text is not None:
            self._missing.discard(path)
        elif applied is not None and path not in self._missing:
            self._missing.add(path)
            self.hooks.notice(f"{path} was removed or cannot be read; {consequence}", "info")

    # -- config --------------------------------------------------------------------------------

    def _refuse_config(self, why: str) -> None:
        self.refused += 1
        self.hooks.notice(f"config edit refused: {why}; keeping the previous config", "invalid")

    async def _config_edit(self, text: str) -> None:
        cfg = self.config
        assert cfg is not None
        cfg.text = text  # judged once per content; a fix is a new content
        try:
            parsed = parse_console_config(text, cfg.path)
        except ConsoleConfigError as exc:
            self._refuse_config(str(exc))
            return
        new = effective(parsed, cfg.flags)
        change = live_change(cfg.running, new)
        if change.theme_changed and change.theme is not None and self.hooks.themes is not None:
            known = self.hooks.themes()
            if change.theme not in known:
                self._refuse_config(
                    f"{cfg.path}: theme: {change.theme!r} is not a known theme "
                    f"(known: {', '.join(sorted(known))})"
                )
                return
        old = cfg.running
        cfg.running = replace(
            new,
            theme=new.theme if change.theme_changed else old.theme,
            name=old.name,
            read_only=old.read_only,
            daemon=old.daemon,
        )
        self.applied += 1
        said: list[str] = []
        outcomes: set[str] = set()
        if change.theme_changed:
            if self.hooks.set_theme is not None:
                self.hooks.set_theme(change.theme)
            said.append(f"theme {change.theme or 'default'}")
        for channel, fn, verb in [
            *((c, self.join, "join") for c in change.join),
            *((c, self.leave, "leave") for c in change.leave),
        ]:
            if fn is None:
                said.append(f"{verb} #{channel} skipped (no endpoint)")
                outcomes.add("refused")
                continue
            result = await fn(channel)
            said.append(result.text.rstrip("."))
            outcomes.add(result.outcome)
        if change.restart_only:
            said.append(f"{', '.join(change.restart_only)} apply at the next start")
        if not said:
            said.append("nothing to change live")
        # A join or leave that did not happen is the headline, never an all-green "applied".
        outcome = next((o for o in ("failed", "refused", "invalid") if o in outcomes), "ok")
        self.hooks.notice(f"config {cfg.path} applied: {'; '.join(said)}", outcome)

    # -- creds ---------------------------------------------------------------------------------

    async def _creds_edit(self, text: str) -> None:
        assert self.creds is not None
        self.creds_text = text
        try:
            ident = creds_identity_of(text)
            if self.identity is not None and ident != self.identity:
                raise CredsChangeRefused(
                    f"it is for identity {ident}, not {self.identity} — an identity change "
                    "needs a restart of the console"
                )
        except CredsChangeRefused as exc:
            self.refused += 1
            self.hooks.notice(
                f"creds edit refused: {self.creds}: {exc}; still connected with the previous "
                "credential (it is used again on the next reconnect, so fix the file)",
                "refused",
            )
            return
        self.applied += 1
        if self.reconnect is None:
            self.hooks.notice(f"creds {self.creds} changed; used at the next connect", "info")
            return
        self.hooks.notice(
            f"creds {self.creds} changed (same identity): reconnecting with the new JWT", "info"
        )
        await self.reconnect()
