"""`ConsoleApp`: the Textual console over a `ConsoleModel` and a command `Dispatcher`.

The app owns one interval timer: every tick it asks the model for a snapshot and hands it to the
main screen. Nothing else redraws. Commands typed on the `:` line or picked in the palette go
through the same `Dispatcher`, whose words land on the notice line.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable
from pathlib import Path

from textual import on
from textual.app import App
from textual.binding import Binding
from textual.css.query import NoMatches
from textual.theme import Theme
from textual.widgets import Input

from cotal_tui.console.commands import (
    VERBS,
    Command,
    CommandParseError,
    Dispatcher,
    parse_command,
)
from cotal_tui.console.model import ConsoleModel
from cotal_tui.console.snapshot import Snapshot
from cotal_tui.tui import render
from cotal_tui.tui.collector import FULL_PASS_EVERY_S, CollectorPlan
from cotal_tui.tui.commands import VerbProvider
from cotal_tui.tui.messages import CommandOutcome
from cotal_tui.tui.render import RowFilter
from cotal_tui.tui.screens.detail import DetailScreen
from cotal_tui.tui.screens.help import HelpGroup, HelpScreen
from cotal_tui.tui.screens.main import MainScreen
from cotal_tui.tui.widgets.panes import FeedPane, Pane
from cotal_tui.tui.widgets.table import RowTable

STYLES_DIR = Path(__file__).resolve().parents[2] / "styles"

MONO_THEME = Theme(
    name="cotal-mono",
    primary="#c6c6c6",
    secondary="#9e9e9e",
    accent="#eeeeee",
    warning="#d0d0d0",
    error="#ffffff",
    success="#bcbcbc",
    foreground="#e4e4e4",
    background="#121212",
    surface="#1c1c1c",
    panel="#303030",
    dark=True,
)
"""Greys only (all in the xterm-256 grey ramp): meaning rides on glyphs and words, never hue."""

HIDDEN_HELP_ACTIONS = ("scroll_", "page_left", "page_right", "command_palette")
"""Scrolling bindings inherited from ScrollView are noise in a help card about this console."""

PANE_TABLES = {
    "1": ("#roster-table", "Roster"),
    "2": ("#channels-table", "Channels"),
    "3": ("#lease-body", "Delivery lease"),
    "4": ("#pending-table", "Pending joins & leaves"),
    "5": ("#feed-table", "Feed"),
}


class ConsoleApp(App[int]):
    CSS_PATH = [STYLES_DIR / "console.tcss"]
    TITLE = "cotal-tui console"
    COMMANDS = App.COMMANDS | {VerbProvider}
    CURSOR_BLINK = True
    """Snapshot tests turn this off so a caret never flickers into a baseline."""
    BINDINGS = [
        Binding("q", "quit", "Quit"),
        Binding("question_mark", "help", "Help"),
        Binding("colon", "command_line", "Command"),
        Binding("slash", "filter", "Filter"),
        Binding("escape", "back", "Back", show=False),
        *(
            Binding(key, f"focus_pane('{sel}')", f"Focus {title}", show=False)
            for key, (sel, title) in PANE_TABLES.items()
        ),
    ]

    def __init__(
        self,
        model: ConsoleModel,
        dispatcher: Dispatcher,
        *,
        tick_interval: float | None = 0.1,
        theme: str | None = None,
        on_start: Callable[[], Awaitable[None]] | None = None,
        on_stop: Callable[[], Awaitable[None]] | None = None,
        notice: str | None = None,
    ) -> None:
        super().__init__()
        self.on_start = on_start
        self.on_stop = on_stop
        self.initial_notice = notice
        self.model = model
        self.dispatcher = dispatcher
        self.tick_interval = tick_interval
        self.requested_theme = theme
        self.row_filter: RowFilter | None = None
        self.line_mode: str = "command"
        self.filter_before_edit: RowFilter | None = None
        self.last_result = None
        self.main: MainScreen | None = None
        self.collector = CollectorPlan()
        self.register_theme(MONO_THEME)

    # -- lifecycle ----------------------------------------------------------------------------

    async def on_mount(self) -> None:
        self.base_theme = self.theme
        if self.requested_theme:
            if self.requested_theme in self.available_themes:
                self.theme = self.requested_theme
            else:
                known = ", ".join(sorted(self.available_themes))
                self.call_later(
                    self.set_notice,
                    f"unknown theme {self.requested_theme!r}; known: {known}",
                    "invalid",
                )
        self.main = MainScreen()
        await self.push_screen(self.main)
        self.model.start()
        if self.on_start is not None:
            self.run_worker(self.on_start(), name="console-start", exit_on_error=False)
        if self.initial_notice:
            self.set_notice(self.initial_notice, "info")
        self.tick()
        self.collector.hold()  # collector.py: full GC passes were the p99 at 5,000 peers
        self.set_interval(FULL_PASS_EVERY_S, self.collector.full_pass, name="console-full-gc")
        if self.tick_interval:
            self.set_interval(self.tick_interval, self.tick, name="console-tick")

    async def on_unmount(self) -> None:
        self.collector.release()
        if self.on_stop is not None:
            await self.on_stop()
        await self.model.stop()

    def tick(self) -> Snapshot:
        try:
            snap = self.model.tick()
        except Exception as exc:  # noqa: BLE001 - a source bug must not take the console down
            last = self.model.snapshot
            if last is None:
                raise
            self.set_notice(
                f"console tick failed ({type(exc).__name__}: {exc}); the panes show the last "
                f"snapshot, {render.age_text(self.model.clock() - last.now)} old",
                "failed",
            )
            return last
        if self.main is not None and self.main.is_mounted and not self._closing:
            try:
                self.main.apply(snap, self.row_filter)
            except NoMatches:  # the screen is being torn down under a late tick
                pass
            # collector.py: the young passes land after the paint, not inside the next tick
            self.call_after_refresh(self.collector.between_ticks)
        return snap

    # -- notice, command line, filter ---------------------------------------------------------

    def set_notice(self, text: str, outcome: str = "info") -> None:
        if self.main is None or not self.main.is_mounted or self._closing:
            return
        try:
            self.main.set_notice(text, outcome)
        except NoMatches:  # the screen is being torn down under a late tick
            pass

    def apply_theme(self, name: str | None) -> None:
        """Switch the theme live (a config-file edit); None goes back to the default."""
        self.theme = name or getattr(self, "base_theme", self.theme)

    def notify_sort(self, pane: str, column: str, reverse: bool) -> None:
        self.set_notice(f"{pane} sorted by {column} {'▼' if reverse else '▲'}", "info")
        self.tick()

    def _line(self) -> Input:
        assert self.main is not None
        return self.main.query_one("#command-line", Input)

    def open_command_line(self, text: str = "") -> None:
        self.line_mode = "command"
        line = self._line()
        line.placeholder = "command: " + " | ".join(v.usage for v in VERBS[:4]) + " …"
        line.value = text
        line.display = True
        line.cursor_position = len(text)
        line.focus()
        line.border_title = ":"

    def action_command_line(self) -> None:
        self.open_command_line("")

    def action_filter(self) -> None:
        self.line_mode = "filter"
        line = self._line()
        line.placeholder = "filter roster & feed: regex, !regex inverts, empty clears"
        self.filter_before_edit = self.row_filter
        line.value = self.row_filter.text if self.row_filter else ""
        line.display = True
        line.cursor_position = len(line.value)
        line.focus()

    def _close_line(self) -> None:
        line = self._line()
        self.line_mode = "closed"
        line.display = False
        line.value = ""
        assert self.main is not None
        self.main.query_one("#roster-table", RowTable).focus() if self.focused is line else None

    def action_back(self) -> None:
        if self.main is not None and self._line().display:
            self._close_line()
        elif self.row_filter is not None:
            self.row_filter = None
            self.set_notice("filter cleared", "info")
            self.tick()

    def set_filter(self, text: str, *, final: bool = False) -> bool:
        """Apply a filter as typed; an invalid pattern on Enter restores the filter from before."""
        try:
            self.row_filter = RowFilter.parse(text)
        except re.error as exc:
            if final:
                self.row_filter = self.filter_before_edit
                kept = f"/{self.row_filter.text}/" if self.row_filter else "no filter"
                self.set_notice(f"filter: invalid regex {text!r} ({exc}); kept {kept}", "invalid")
                self.tick()
            return False
        self.tick()
        return True

    @on(Input.Changed, "#command-line")
    def _line_changed(self, event: Input.Changed) -> None:
        if self.line_mode == "filter" and event.input.display:
            self.set_filter(event.value)

    @on(Input.Submitted, "#command-line")
    def _line_submitted(self, event: Input.Submitted) -> None:
        value = event.value
        mode = self.line_mode
        self._close_line()
        if mode == "filter":
            if self.set_filter(value, final=True):
                self.set_notice(
                    f"filter /{value}/ on roster and feed (Esc clears)"
                    if value
                    else "filter cleared",
                    "info",
                )
        else:
            self.run_command_line(value)

    def default_channel(self) -> str | None:
        if self.main is None:
            return None
        key = self.main.query_one("#channels-table", RowTable).cursor_key
        return key

    def run_command_line(self, line: str) -> None:
        """Parse and dispatch one `:` line; the outcome arrives as a CommandOutcome."""
        try:
            command = parse_command(line, default_channel=self.default_channel())
        except CommandParseError as exc:
            self.set_notice(str(exc), "invalid")
            return
        self.run_command(command, line)

    def run_command(self, command: Command, line: str = "") -> None:
        """Dispatch a command object (keys use this; no text round trip to get wrong)."""
        self.run_worker(self._dispatch(line, command), group="commands", exit_on_error=False)

    async def _dispatch(self, line: str, command) -> None:
        result = await self.dispatcher.run(command, self.model.snapshot)
        self.post_message(CommandOutcome(line, result))

    def on_command_outcome(self, message: CommandOutcome) -> None:
        self.last_result = message.result
        self.set_notice(message.result.text, message.result.outcome)
        self.tick()

    # -- focus, help, details -----------------------------------------------------------------

    def action_focus_pane(self, selector: str) -> None:
        if self.main is not None:
            self.main.query_one(selector).focus()

    def action_help(self) -> None:
        groups = self.help_groups()
        self.push_screen(HelpScreen(groups[:2], groups[2:]))

    def help_groups(self) -> list[HelpGroup]:
        focused = self.focused
        pane = None
        node = focused
        while node is not None and not isinstance(node, Pane):
            node = node.parent
        pane = node
        grouped: dict[tuple[bool, str], tuple[list[str], str]] = {}
        for _key, active in self.screen.active_bindings.items():
            binding = active.binding
            if binding.action.startswith(HIDDEN_HELP_ACTIONS):
                continue
            is_local = active.node in (focused, pane)
            desc = binding.description or binding.action
            if not active.enabled:
                desc += " (disabled here)"
            keys, _ = grouped.setdefault((is_local, binding.action), ([], desc))
            label = self.get_key_display(binding)
            if label not in keys:
                keys.append(label)
        local = [("/".join(k), d) for (loc, _), (k, d) in grouped.items() if loc]
        global_ = [("/".join(k), d) for (loc, _), (k, d) in grouped.items() if not loc]
        title = f"{pane.TITLE} pane" if isinstance(pane, Pane) else "Focused"
        verbs = [(f":{v.usage}", v.help) for v in VERBS]
        if self.dispatcher.read_only:
            verbs = [(k, d + " — refused: --read-only") for k, d in verbs]
        return [
            (title, local),
            ("Global", global_),
            ("Commands (: line or Ctrl+P)", verbs),
            ("Filter (/)", [("regex", "case-insensitive, roster and feed"), ("!regex", "invert")]),
            ("Palette", [("ctrl+p", "command palette: the same verbs, theme, quit")]),
        ]

    def open_detail(self, table_id: str | None, key: str | None) -> None:
        snap = self.model.snapshot
        if snap is None:
            return
        if table_id == "roster-table":
            row = next((r for r in snap.roster.rows if r.id == key), None)
            if row is not None:
                self.push_screen(
                    DetailScreen(
                        f"Agent {row.name}",
                        render.agent_detail(row, snap.feed.entries, snap.now),
                        render.escape(json.dumps(dict(row.raw), indent=2, sort_keys=True)),
                        kind="agent",
                    )
                )
        elif table_id == "channels-table":
            row = next((c for c in snap.channels.rows if c.name == key), None)
            if row is not None:
                self.model.mark_read(row.name)
                self.push_screen(
                    DetailScreen(f"Channel #{row.name}", render.channel_detail(row), kind="channel")
                )
        elif table_id == "feed-table":
            entry = next((e for e in snap.feed.entries if str(e.seq) == key), None)
            if entry is not None:
                self.push_screen(
                    DetailScreen(
                        f"Message {entry.id}",
                        render.message_detail(entry),
                        render.message_raw(entry),
                        kind="message",
                    )
                )
        elif table_id == "pending-table":
            row = next((p for p in snap.pending.rows if render.pending_key(p) == key), None)
            if row is not None:
                body = "\n".join(
                    [
                        render.kv("operation", row.operation),
                        render.kv("owner", row.owner or "this console's own endpoint"),
                        render.kv("channel", "#" + row.channel),
                        render.kv("attempt", row.attempt),
                        render.kv("next try", render.countdown_text(row.next_retry_in_ms)),
                        render.kv("waiting", render.age_text(row.waiting_ms)),
                        render.kv("last error", row.last_error or "—"),
                        "",
                        "[dim]r in the pane retries now[/]",
                    ]
                )
                self.push_screen(
                    DetailScreen(f"Pending {row.operation} #{row.channel}", body, kind="pending")
                )
        elif table_id == "lease":
            self.push_screen(
                DetailScreen(
                    "Delivery lease record",
                    render.lease_detail(snap.lease, snap.daemon),
                    render.lease_raw(snap.lease),
                    kind="lease",
                )
            )
        elif table_id == "dead-letters":
            self.push_screen(
                DetailScreen(
                    "Dead letters",
                    render.dead_letter_detail(snap.lease),
                    render.dead_letter_raw(snap.lease),
                    kind="dead-letters",
                )
            )

    def feed_pane(self) -> FeedPane:
        assert self.main is not None
        return self.main.query_one(FeedPane)
