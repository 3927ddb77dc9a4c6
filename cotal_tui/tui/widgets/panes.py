"""The five panes. Each takes a whole `Snapshot` per tick and shows its source, age, staleness."""

from __future__ import annotations

import re
from operator import attrgetter

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.message import Message
from textual.widgets import Static

from cotal_tui.console.commands import RetryNow
from cotal_tui.console.format import age_text
from cotal_tui.console.snapshot import PendingRow, RosterRow, Snapshot, SourceView
from cotal_tui.tui import render
from cotal_tui.tui.render import RowFilter
from cotal_tui.tui.widgets.table import LazyRows, Row, RowMirror, RowTable

DIGITS = re.compile(r"\d+")
ROW_ID = attrgetter("id")
CHANNEL_NAME = attrgetter("name")


def update_if_changed(widget: Static, content: str) -> None:
    """Update a Static only when its words changed, and re-lay-out only when more than numbers did.

    A layout pass repaints the whole screen; ticking ages ("4s" → "5s") are kept on short lines
    that never wrap, so a change of digits alone can repaint just the widget.
    """
    last = getattr(widget, "_last_content", None)
    if last == content:
        return
    skeleton = DIGITS.sub("#", content)
    layout = last is None or getattr(widget, "_last_skeleton", None) != skeleton
    widget._last_content = content  # type: ignore[attr-defined]
    widget._last_skeleton = skeleton  # type: ignore[attr-defined]
    widget.update(content, layout=layout)


class Pane(Vertical):
    """A titled box whose subtitle is its evidence line."""

    TITLE = ""
    can_focus = False

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.row_cache = render.RowCache()

    def set_subtitle(self, text: str) -> None:
        if self.border_subtitle != text:
            self.border_subtitle = text

    def on_mount(self) -> None:
        self.border_title = self.TITLE

    def show_source(self, src: SourceView, prefix: str = "") -> None:
        self.set_subtitle(render.source_line(src, prefix=prefix))
        self.set_class(src.freshness == "stale", "-stale")
        self.set_class(src.freshness in ("failed", "unknown"), "-unknown")

    def apply(self, snap: Snapshot, row_filter: RowFilter | None) -> None:
        raise NotImplementedError

    @property
    def table(self) -> RowTable | None:
        tables = self.query(RowTable)
        return tables.first() if tables else None


class SortablePane(Pane):
    sort_labels: tuple[str, ...] = ()

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.sort_column = 0
        self.sort_reverse = False
        self.mirror = RowMirror()

    def show_rows(self, rows: LazyRows) -> None:
        """Hand the mirror's rows to the table: only the changed lines when it replaced few."""
        table = self.query_one(RowTable)
        if self.mirror.changed is None:
            table.set_rows(rows)
        elif self.mirror.changed:
            table.update_rows(rows, self.mirror.changed, self.mirror.stale)

    def on_row_table_sort_requested(self, event: RowTable.SortRequested) -> None:
        event.stop()
        if event.reverse_only:
            self.sort_reverse = not self.sort_reverse
        else:
            self.sort_column = (self.sort_column + 1) % len(self.sort_labels)
            self.sort_reverse = False
        table = event.table
        table.set_sort_marker(self.sort_column, self.sort_reverse)
        self.app.notify_sort(self.TITLE, self.sort_labels[self.sort_column], self.sort_reverse)  # type: ignore[attr-defined]


class RosterPane(SortablePane):
    """The roster. Its rows change only when a peer's record does; the beat column is the age at
    the snapshot's `now`, so each tick re-checks it on the rows on screen only (`_age_shown`)."""

    TITLE = "Roster"
    sort_labels = tuple(c.label for c in render.ROSTER_COLUMNS)

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.now = 0
        """The snapshot time the table's rows are built at."""

    def build_row(self, row: RosterRow) -> Row:
        return render.roster_row(row, self.now)

    def compose(self) -> ComposeResult:
        yield Static("", id="roster-banner", classes="banner")
        yield RowTable(render.ROSTER_COLUMNS, id="roster-table", empty_text="no peers seen")

    def on_mount(self) -> None:  # Pane.on_mount runs too: Textual calls every class's handler
        self.query_one(RowTable).set_sort_marker(0)

    def apply(self, snap: Snapshot, row_filter: RowFilter | None) -> None:
        roster = snap.roster
        banner = self.query_one("#roster-banner", Static)
        banner.display = roster.banner is not None
        if roster.banner is not None:
            update_if_changed(banner, roster.banner)
        sort, reverse = self.sort_column, self.sort_reverse
        rows = self.mirror.update(
            roster.rows,
            (row_filter, sort, reverse),
            lambda items: render.roster_order(items, row_filter, sort, reverse),
            self.build_row,
            ROW_ID,
            None
            if row_filter is None and not (sort or reverse)
            else lambda old, new: render.roster_stays(old, new, row_filter, sort, reverse),
        )
        self.now = snap.now
        self.show_rows(rows)
        self._age_shown(rows)
        prefix = render.roster_counts(snap)
        if row_filter is not None:
            prefix = f"filter /{row_filter.text}/ {len(rows)}/{len(roster.rows)} · {prefix}"
        self.show_source(roster.source, prefix=f"{prefix} · view {roster.view}")

    def _age_shown(self, rows: LazyRows) -> None:
        """Rebuild the rows on screen whose beat text is not their age at `now` any more (an
        age turned a whole second, or the row was built at an older snapshot). A row not built
        yet is built when drawn, at the `now` of that tick; one built earlier and scrolled back
        into view between ticks shows its older age until the next tick (≤ 100 ms)."""
        table = self.query_one(RowTable)
        if table.rows is not rows:
            return
        aged, stale = render.roster_aged(rows, table.shown_range(), self.now)
        if aged:
            table.update_rows(rows, aged, stale)


class ChannelsPane(SortablePane):
    TITLE = "Channels"
    sort_labels = tuple(c.label for c in render.CHANNEL_COLUMNS)
    BINDINGS = [
        Binding("a", "join_selected", "Join"),
        Binding("x", "leave_selected", "Leave"),
        Binding("p", "post_selected", "Post"),
    ]

    def compose(self) -> ComposeResult:
        yield RowTable(
            render.CHANNEL_COLUMNS, id="channels-table", empty_text="no channels", min_flex=30
        )

    def on_mount(self) -> None:  # Pane.on_mount runs too: Textual calls every class's handler
        self.query_one(RowTable).set_sort_marker(0)

    def apply(self, snap: Snapshot, row_filter: RowFilter | None) -> None:
        sort, reverse = self.sort_column, self.sort_reverse
        rows = self.mirror.update(
            snap.channels.rows,
            (sort, reverse),
            lambda items: render.channel_order(items, sort, reverse),
            render.channel_row,
            CHANNEL_NAME,
            None
            if not (sort or reverse)
            else lambda old, new: render.channel_stays(old, new, sort, reverse),
        )
        self.show_rows(rows)
        joined = sum(1 for c in snap.channels.rows if c.joined)
        self.show_source(snap.channels.source, prefix=f"{len(rows)} channels, {joined} joined")

    def _selected(self) -> str | None:
        return self.query_one(RowTable).cursor_key

    def action_join_selected(self) -> None:
        if (ch := self._selected()) is not None:
            self.app.open_command_line(f"join #{ch}")  # type: ignore[attr-defined]

    def action_leave_selected(self) -> None:
        if (ch := self._selected()) is not None:
            self.app.open_command_line(f"leave #{ch}")  # type: ignore[attr-defined]

    def action_post_selected(self) -> None:
        if (ch := self._selected()) is not None:
            self.app.open_command_line(f"post #{ch} ")  # type: ignore[attr-defined]


class LeaseBody(Static, can_focus=True):
    """The lease facts; focusable so Enter opens the record."""

    BINDINGS = [
        Binding("enter", "open", "Lease record"),
        Binding("d", "dead_letters", "Dead letters"),
    ]

    class Opened(Message):
        pass

    class DeadLettersOpened(Message):
        pass

    def action_open(self) -> None:
        self.post_message(self.Opened())

    def action_dead_letters(self) -> None:
        self.post_message(self.DeadLettersOpened())


class LeasePane(Pane):
    TITLE = "Delivery lease"

    def compose(self) -> ComposeResult:
        yield LeaseBody("", id="lease-body")

    def apply(self, snap: Snapshot, row_filter: RowFilter | None) -> None:
        body = self.query_one(LeaseBody)
        update_if_changed(body, render.lease_markup(snap.lease, snap.daemon))
        for sev in ("healthy", "info", "degraded", "critical", "unknown"):
            self.set_class(snap.lease.severity == sev, f"-sev-{sev}")
        lease_src, probe_src = snap.lease.source, snap.lease.responder_source
        probe_age = "never" if probe_src.age_ms is None else age_text(probe_src.age_ms) + " ago"
        self.show_source(lease_src)
        self.set_subtitle(
            f"{render.source_line(lease_src)} · probe {probe_age} {probe_src.freshness}"
        )
        self.set_class("stale" in (lease_src.freshness, probe_src.freshness), "-stale")


class PendingPane(Pane):
    TITLE = "Pending joins & leaves"
    BINDINGS = [Binding("r", "retry_selected", "Retry now")]

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._rows: dict[str, PendingRow] = {}

    def compose(self) -> ComposeResult:
        yield Static("", id="pending-headline", classes="headline")
        yield RowTable(
            render.PENDING_COLUMNS, id="pending-table", empty_text="nothing pending", sortable=False
        )

    def apply(self, snap: Snapshot, row_filter: RowFilter | None) -> None:
        pending = snap.pending
        count = len(pending.rows)
        update_if_changed(
            self.query_one("#pending-headline", Static),
            f"[b]{count} pending[/b] · {render.escape(pending.headline)}"
            if count
            else f"0 pending · {render.escape(pending.headline)}",
        )
        self.set_class(count > 0, "-waiting")
        self._rows = {render.pending_key(r): r for r in pending.rows}
        self.query_one(RowTable).set_rows(render.pending_rows(pending.rows))
        self.show_source(pending.source, prefix=f"{count} pending")

    def action_retry_selected(self) -> None:
        key = self.query_one(RowTable).cursor_key
        row = self._rows.get(key) if key is not None else None
        if row is not None:
            command = RetryNow(row.channel, row.operation, row.owner)
            self.app.run_command(command, f"retry {command.label}")  # type: ignore[attr-defined]


class FeedPane(Pane):
    TITLE = "Feed"
    BINDINGS = [Binding("f", "toggle_follow", "Follow/pause")]

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.follow = True
        self.new_while_paused = 0
        self._last_seen_seq = 0

    def compose(self) -> ComposeResult:
        yield RowTable(
            render.FEED_COLUMNS, id="feed-table", empty_text="no messages yet", sortable=False
        )

    def apply(self, snap: Snapshot, row_filter: RowFilter | None) -> None:
        feed = snap.feed
        last_seq = feed.last_seq or (feed.entries[-1].seq if feed.entries else 0)
        if not self.follow and last_seq > self._last_seen_seq:
            self.new_while_paused += last_seq - self._last_seen_seq
        self._last_seen_seq = last_seq
        rows = render.feed_rows(feed.entries, row_filter, self.row_cache)
        self.query_one(RowTable).set_rows(rows, follow_end=self.follow)
        # The subtitle repaints the whole pane: keep it still while following at high rates.
        prefix = (
            "following"
            if self.follow
            else f"paused ({self.new_while_paused} new, f follows) · {feed.received} received"
        )
        if row_filter is not None:
            prefix = f"filter /{row_filter.text}/ {len(rows)}/{len(feed.entries)} · {prefix}"
        self.show_source(feed.source, prefix=prefix)

    def set_follow(self, follow: bool) -> None:
        self.follow = follow
        if follow:
            self.new_while_paused = 0
        self.set_class(not follow, "-paused")

    def action_toggle_follow(self) -> None:
        self.set_follow(not self.follow)
        if self.follow:
            table = self.query_one(RowTable)
            table.set_rows(table.rows, follow_end=True)

    def on_row_table_cursor_moved(self, event: RowTable.CursorMoved) -> None:
        if event.by_user:
            self.set_follow(event.at_end)
