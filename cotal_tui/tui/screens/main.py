"""The main screen: top bar, the five panes, notice line, `:`/`/` line, footer."""

from __future__ import annotations

from rich.markup import escape
from textual import events, on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import Footer, Input, Static

from cotal_tui.console.format import STATUS_GLYPH, age_text
from cotal_tui.console.snapshot import Snapshot
from cotal_tui.tui.render import RowFilter
from cotal_tui.tui.widgets.panes import (
    ChannelsPane,
    FeedPane,
    LeaseBody,
    LeasePane,
    Pane,
    PendingPane,
    RosterPane,
    update_if_changed,
)
from cotal_tui.tui.widgets.table import RowTable

LINK_GLYPH = {
    "connected": "●",
    "connecting": "◌",
    "reconnecting": "◐",
    "closed": "⨯",
    "unreachable": "⨯",
}


def acl_text(channels: tuple[str, ...] | None) -> str:
    if channels is None:
        return "any"
    return " ".join(f"#{ch}" for ch in channels) or "none"


def who_text(snap: Snapshot) -> str:
    """``me operator``, or for a console running as an agent ``as alice (agent) · read #a #b ·
    post #a``: what its cred lets it read and post, before anyone asks why a post failed."""
    if snap.self_kind != "agent":
        return f"me {snap.self_name}"
    return (
        f"as [b]{snap.self_name}[/b] (agent) · read {acl_text(snap.acl_read)} · "
        f"post {acl_text(snap.acl_post)}"
    )


def cred_text(snap: Snapshot) -> str:
    """The cred label (``observer desk.creds``); as an agent only its file, since ``(agent)``
    already names the profile."""
    if snap.self_kind == "agent":
        return snap.credential.rsplit(" ", 1)[-1]
    return snap.credential


def peers_text(snap: Snapshot) -> str:
    """Other peers that are not offline (you and offline ones are not counted)."""
    n = snap.roster.others_online
    if n is None:
        n = sum(1 for r in snap.roster.rows if not r.is_self and r.status != "offline")
    return f"{n} peer{'' if n == 1 else 's'} online"


class TopBar(Horizontal):
    def compose(self) -> ComposeResult:
        yield Static("", id="topbar-main")
        yield Static("DEMO", id="demo-badge", classes="badge")
        yield Static("READ-ONLY", id="ro-badge", classes="badge")

    def apply(self, snap: Snapshot, *, compact: bool = False) -> None:
        link = snap.connection
        since = f" {age_text(link.for_ms)}" if link.for_ms is not None else ""
        err = f" ({link.last_error})" if link.last_error and link.state != "connected" else ""
        rate = sum(snap.feed.rate[-11:-1]) / 10  # whole seconds only: changes once a second
        cred = f" · cred {escape(cred_text(snap))}" if snap.credential else ""
        if compact:  # the essentials first, so a narrow terminal clips only the tail
            text = (
                f"[b]{snap.space}[/b] · {LINK_GLYPH.get(link.state, '?')} {link.state}{since} · "
                f"{who_text(snap)} · {peers_text(snap)}{cred}{err}"
            )
        else:
            text = (
                f"cotal-tui · space [b]{snap.space}[/b] · "
                f"{LINK_GLYPH.get(link.state, '?')} {link.state}{since}{err} · "
                f"{who_text(snap)}{cred} · {peers_text(snap)} "
                f"({STATUS_GLYPH['working']} {snap.roster.counts.get('working', 0)} working) · "
                f"{rate:.1f} msg/s"
            )
        main = self.query_one("#topbar-main", Static)
        update_if_changed(main, text)
        main.set_class(link.state != "connected", "-down")
        self.query_one("#demo-badge").display = snap.demo
        self.query_one("#ro-badge").display = snap.read_only


COMPACT_WIDTH = 120
"""Below this many columns the panes do not fit side by side: one pane at a time."""
PANE_ORDER = ("roster", "channels", "lease", "pending", "feed")


def summary_text(snap: Snapshot, shown: str, titles: dict[str, str]) -> str:
    """The one-line strip kept visible while one pane fills the screen."""
    pending = len(snap.pending.rows)
    link = snap.connection.state
    index = PANE_ORDER.index(shown) + 1 if shown in PANE_ORDER else 0
    return (
        f"lease {snap.lease.verdict.upper()} · {pending} pending · "
        f"{LINK_GLYPH.get(link, '?')} {link} · [b]{index}/5 {titles.get(shown, shown)}[/b] "
        "· 1-5 switch · m maximize"
    )


class MainScreen(Screen[None]):
    BINDINGS = [Binding("m", "toggle_maximize", "Maximize")]

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.maximized_pane = False
        """One pane at a time by choice (m), even on a wide terminal."""
        self.compact = False
        """One pane at a time because the terminal is narrower than COMPACT_WIDTH."""
        self.shown = "roster"
        self._last: Snapshot | None = None

    def compose(self) -> ComposeResult:
        yield TopBar(id="topbar")
        yield Static("", id="summary")
        with Horizontal(id="body"):
            with Vertical(id="left"):
                yield RosterPane(id="roster")
                yield ChannelsPane(id="channels")
            with Vertical(id="right"):
                yield LeasePane(id="lease")
                yield PendingPane(id="pending")
                yield FeedPane(id="feed")
        yield Static("", id="notice")
        yield Input(id="command-line", select_on_focus=False)
        yield Footer()

    def on_mount(self) -> None:
        line = self.query_one("#command-line", Input)
        line.display = False
        line.cursor_blink = getattr(self.app, "CURSOR_BLINK", True)
        self.query_one("#roster-table", RowTable).focus()
        self._layout(self.size.width)

    def on_resize(self, event: events.Resize) -> None:
        self._layout(event.size.width)

    def action_toggle_maximize(self) -> None:
        self.maximized_pane = not self.maximized_pane
        self._layout(self.size.width)

    def on_descendant_focus(self, event: events.DescendantFocus) -> None:
        node = event.widget
        while node is not None and not isinstance(node, Pane):
            node = node.parent  # type: ignore[assignment]
        if isinstance(node, Pane) and node.id and node.id != self.shown:
            self.shown = node.id
            self._layout(self.size.width)

    def _layout(self, width: int) -> None:
        """Side by side when it fits; else (or when maximized) only the shown pane, with the
        summary strip above it."""
        self.compact = 0 < width < COMPACT_WIDTH
        single = self.compact or self.maximized_pane
        self.set_class(single, "-single")
        for pane in self.query(Pane):
            pane.display = not single or pane.id == self.shown
        left_has = self.shown in ("roster", "channels")
        self.query_one("#left").display = not single or left_has
        self.query_one("#right").display = not single or not left_has
        self.query_one("#summary").display = single
        if self._last is not None:
            self._apply_summary(self._last)

    def _apply_summary(self, snap: Snapshot) -> None:
        if not self.has_class("-single"):
            return
        titles = {p.id or "": p.TITLE for p in self.query(Pane)}
        strip = self.query_one("#summary", Static)
        update_if_changed(strip, summary_text(snap, self.shown, titles))

    def apply(self, snap: Snapshot, row_filter: RowFilter | None) -> None:
        self._last = snap
        self.query_one(TopBar).apply(snap, compact=self.compact)
        self._apply_summary(snap)
        for pane in self.query(Pane):
            pane.apply(snap, row_filter)

    def set_notice(self, text: str, outcome: str) -> None:
        notice = self.query_one("#notice", Static)
        update_if_changed(notice, text)
        for cls in ("ok", "refused", "failed", "invalid", "info"):
            notice.set_class(cls == outcome, f"-{cls}")

    @on(RowTable.Activated)
    def _activated(self, event: RowTable.Activated) -> None:
        self.app.open_detail(event.table.id, event.key)  # type: ignore[attr-defined]

    @on(RowTable.Copied)
    def _copied(self, event: RowTable.Copied) -> None:
        self.set_notice(f"copied {event.key} to the clipboard (OSC 52)", "info")

    @on(LeaseBody.Opened)
    def _lease_opened(self) -> None:
        self.app.open_detail("lease", None)  # type: ignore[attr-defined]

    @on(LeaseBody.DeadLettersOpened)
    def _dead_letters_opened(self) -> None:
        self.app.open_detail("dead-letters", None)  # type: ignore[attr-defined]
