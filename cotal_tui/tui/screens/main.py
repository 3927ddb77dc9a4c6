"""The main screen: top bar, the five panes, notice line, `:`/`/` line, footer."""

from __future__ import annotations

from textual import on
from textual.app import ComposeResult
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


class TopBar(Horizontal):
    def compose(self) -> ComposeResult:
        yield Static("", id="topbar-main")
        yield Static("DEMO", id="demo-badge", classes="badge")
        yield Static("READ-ONLY", id="ro-badge", classes="badge")

    def apply(self, snap: Snapshot) -> None:
        link = snap.connection
        since = f" {age_text(link.for_ms)}" if link.for_ms is not None else ""
        err = f" ({link.last_error})" if link.last_error and link.state != "connected" else ""
        rate = sum(snap.feed.rate[-11:-1]) / 10  # whole seconds only: changes once a second
        text = (
            f"cotal-tui · space [b]{snap.space}[/b] · "
            f"{LINK_GLYPH.get(link.state, '?')} {link.state}{since}{err} · "
            f"{who_text(snap)} · {len(snap.roster.rows)} peers "
            f"({STATUS_GLYPH['working']} {snap.roster.counts.get('working', 0)} working) · "
            f"{rate:.1f} msg/s"
        )
        main = self.query_one("#topbar-main", Static)
        update_if_changed(main, text)
        main.set_class(link.state != "connected", "-down")
        self.query_one("#demo-badge").display = snap.demo
        self.query_one("#ro-badge").display = snap.read_only


class MainScreen(Screen[None]):
    def compose(self) -> ComposeResult:
        yield TopBar(id="topbar")
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

    def apply(self, snap: Snapshot, row_filter: RowFilter | None) -> None:
        self.query_one(TopBar).apply(snap)
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
