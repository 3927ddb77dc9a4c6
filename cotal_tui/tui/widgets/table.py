"""`RowTable`: a read-mostly table on Textual's Line API.

Why not `DataTable`: the console replaces whole row sets ten times a second (1,000 roster rows
with ageing heartbeats), and DataTable's per-cell updates and width recalculation are the CPU
trap noted in CONSOLE.md §3.4. Here a tick swaps one tuple and marks the widget dirty; only the
visible lines are ever rendered. For the big tables (roster, channels) a `RowMirror` replaces only
the rows whose model object changed, and `LazyRows` builds a row only when its line is drawn.
Cells name a component class instead of a colour, so every style comes from the stylesheet's
theme variables.
"""

from __future__ import annotations

from bisect import bisect_left
from collections import deque
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from itertools import compress
from operator import is_, is_not
from typing import Any

from rich.segment import Segment
from rich.style import Style
from textual import events
from textual.binding import Binding
from textual.geometry import Region, Size
from textual.message import Message
from textual.scroll_view import ScrollView
from textual.strip import Strip

LINE_CACHE_MAX = 256
"""Rendered lines kept per table (by row object): a few pages, so a scroll back re-renders
nothing. Not more: each line is a Strip with its own caches (a dozen objects), and thousands of
them kept alive made every full garbage collection walk them."""

Cell = tuple[str, str | None]
"""Text and the component class that styles it (None: the row's style)."""


@dataclass(frozen=True, slots=True)
class Column:
    label: str
    width: int | None = None
    """Fixed width in cells; None for the one flexible column that takes the rest."""
    justify: str = "left"


@dataclass(frozen=True, slots=True)
class Row:
    key: str
    cells: tuple[Cell, ...]
    style: str | None = None
    """A component class applied to the whole row (e.g. dimmed offline peers)."""


class LazyRows(Sequence[Row]):
    """Table rows built only when asked for: a 5,000-row roster renders its visible page.

    Holds the items in display order and builds (and keeps) a `Row` per item on first access,
    by index; `key(i)` and `index_of(key)` answer without building anything.
    """

    __slots__ = ("items", "_build", "_key_of", "_built", "_at")

    def __init__(
        self,
        items: list[Any],
        build: Callable[[Any], Row],
        key_of: Callable[[Any], str],
        at: dict[str, int],
    ) -> None:
        self.items = items
        self._build = build
        self._key_of = key_of
        self._built: dict[int, tuple[Any, Row]] = {}
        """Index → (the item the row was built from, the row)."""
        self._at = at

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index):  # type: ignore[override]
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self.items)))]
        if index < 0:
            index += len(self.items)
        item = self.items[index]
        hit = self._built.get(index)
        if hit is not None and hit[0] is item:
            return hit[1]
        row = self._build(item)
        if len(self._built) >= BUILT_MAX:
            self._built.clear()
        self._built[index] = (item, row)
        return row

    def key(self, index: int) -> str:
        return self._key_of(self.items[index])

    def built(self, index: int) -> Row | None:
        """The row built for the item now at `index`; None when none is (nothing is built)."""
        hit = self._built.get(index)
        return hit[1] if hit is not None and hit[0] is self.items[index] else None

    def index_of(self, key: str) -> int | None:
        return self._at.get(key)

    def forget(self, index: int) -> Row | None:
        """Drop the row built at `index` (its item was replaced); returns it (its rendered line
        is stale)."""
        hit = self._built.pop(index, None)
        return None if hit is None else hit[1]

    def prune(self) -> list[Row]:
        """Drop every built row whose item is no longer the one at its index; returns them.
        Costs one look per built row (at most BUILT_MAX), whatever changed."""
        items, built = self.items, self._built
        gone = [i for i, (item, _) in built.items() if items[i] is not item]
        return [built.pop(i)[1] for i in gone]


BUILT_MAX = 512
"""Rows a `LazyRows` keeps built (a few pages); past it they are dropped and rebuilt on draw."""


class RowMirror:
    """Table rows mirrored from a model's row tuple, touching only the rows that changed.

    The model hands back the same row objects while nothing changed and keeps its order, so an
    identity compare of the old and new tuples (in C) finds the changed positions; each is
    replaced in place, and its table row is built only if it is ever drawn (`LazyRows`).
    While the pane shows the model's own order (no filter, no sort: `stays` is None and the
    shown items are the model's), the whole update runs in C: the changed positions, their
    keys compared old against new, the new items stored in place; Python work is per built row only.
    Anything else (rows came or went, the order moved, the pane's filter or sort changed, a
    change that moves a row under that filter or sort) re-orders every item with `order`, which
    is what the pane would have drawn anyway.
    """

    def __init__(self) -> None:
        self.items: tuple[Any, ...] = ()
        self.rows: LazyRows | None = None
        self.changed: list[int] | None = None
        """Row indices replaced in place by the last `update` (ascending); None when it
        re-ordered all."""
        self.stale: list[Row] = []
        """Rows built for items the last `update` replaced (their rendered lines are stale)."""
        self._params: Hashable = object()
        self._as_model = False
        """The shown items are the model's items, in the model's order."""

    def update(
        self,
        items: tuple[Any, ...],
        params: Hashable,
        order: Callable[[tuple[Any, ...]], list[Any]],
        build: Callable[[Any], Row],
        key_of: Callable[[Any], str],
        stays: Callable[[Any, Any], bool] | None,
    ) -> LazyRows:
        """The rows for `items` under `params` (filter, sort); `order` gives the items shown,
        in order; `stays(old, new)` says whether a changed item keeps its place and visibility
        (same sort key, same filter verdict); None when every change does. `key_of` is best an
        `operator.attrgetter` (it then runs in C on the fast path)."""
        old = self.items
        rows = self.rows
        self.stale = []
        if rows is not None and params == self._params and len(items) == len(old):
            if items is old:
                self.changed = []
                return rows
            changed = list(compress(range(len(items)), map(is_not, items, old)))
            if stays is None and self._as_model:
                if list(map(key_of, map(items.__getitem__, changed))) == list(
                    map(key_of, map(old.__getitem__, changed))
                ):
                    deque(map(rows.items.__setitem__, changed, map(items.__getitem__, changed)), 0)
                    self.stale = rows.prune()
                    self.items = items
                    self.changed = changed
                    return rows
            else:
                done: list[int] = []
                for i in changed:
                    new, was = items[i], old[i]
                    key = key_of(new)
                    if key != key_of(was) or (stays is not None and not stays(was, new)):
                        break
                    at = rows.index_of(key)
                    if at is not None:  # None: filtered out before and after
                        rows.items[at] = new
                        done.append(at)
                        built = rows.forget(at)
                        if built is not None:
                            self.stale.append(built)
                else:
                    self.items = items
                    done.sort()
                    self.changed = done
                    return rows
        self.items = items
        self._params = params
        shown = order(items)
        self._as_model = len(shown) == len(items) and all(map(is_, shown, items))
        self.rows = LazyRows(shown, build, key_of, {key_of(x): i for i, x in enumerate(shown)})
        self.changed = None
        return self.rows


def _index_of(rows: Sequence[Row], key: str) -> int | None:
    if isinstance(rows, LazyRows):
        return rows.index_of(key)
    for i, row in enumerate(rows):
        if row.key == key:
            return i
    return None


def _fit(text: str, width: int, justify: str) -> str:
    if width <= 0:
        return ""
    if len(text) > width:
        return text[: width - 1] + "…" if width > 1 else text[:width]
    return text.rjust(width) if justify == "right" else text.ljust(width)


class RowTable(ScrollView, can_focus=True):
    """Header plus rows, a cursor row, and Enter to activate it."""

    COMPONENT_CLASSES = {
        "rowtable--header",
        "rowtable--cursor",
        "rowtable--cursor-blur",
        "rowtable--dim",
        "rowtable--empty",
        "status--working",
        "status--waiting",
        "status--idle",
        "status--offline",
        "sev--healthy",
        "sev--info",
        "sev--degraded",
        "sev--critical",
        "sev--unknown",
        "cell--muted",
        "cell--accent",
        "cell--mention",
    }

    BINDINGS = [
        Binding("up,k", "cursor(-1)", "Up", show=False),
        Binding("down,j", "cursor(1)", "Down", show=False),
        Binding("pageup", "page(-1)", "Page up", show=False),
        Binding("pagedown", "page(1)", "Page down", show=False),
        Binding("home,g", "edge(0)", "First", show=False),
        Binding("end,G", "edge(1)", "Last", show=False),
        Binding("enter", "activate", "Open"),
        Binding("s", "sort", "Sort"),
        Binding("S", "reverse", "Reverse sort", show=False),
        Binding("y", "copy_key", "Copy id", show=False),
    ]

    class Activated(Message):
        """Enter (or a double click) on a row."""

        def __init__(self, table: RowTable, key: str) -> None:
            super().__init__()
            self.table = table
            self.key = key

        @property
        def control(self) -> RowTable:
            return self.table

    class CursorMoved(Message):
        def __init__(self, table: RowTable, index: int, at_end: bool, by_user: bool) -> None:
            super().__init__()
            self.table = table
            self.index = index
            self.at_end = at_end
            self.by_user = by_user

        @property
        def control(self) -> RowTable:
            return self.table

    class SortRequested(Message):
        def __init__(self, table: RowTable, reverse_only: bool) -> None:
            super().__init__()
            self.table = table
            self.reverse_only = reverse_only

        @property
        def control(self) -> RowTable:
            return self.table

    def __init__(
        self,
        columns: Sequence[Column],
        *,
        empty_text: str = "nothing here",
        min_flex: int = 8,
        sortable: bool = True,
        name: str | None = None,
        id: str | None = None,
        classes: str | None = None,
    ) -> None:
        super().__init__(name=name, id=id, classes=classes)
        self.columns: tuple[Column, ...] = tuple(columns)
        self.rows: Sequence[Row] = ()
        self.cursor = 0
        self.empty_text = empty_text
        self.min_flex = min_flex
        self.sortable = sortable
        self.sort_marker: tuple[int, bool] | None = None
        self.tail = False
        self._rowtable_style_cache: dict[str | None, Style] = {}
        self._base_style: Style | None = None
        self._line_cache: dict[int, tuple[Row, tuple[int, bool, bool, int], Strip]] = {}

    # -- data -------------------------------------------------------------------------------

    def set_rows(self, rows: Sequence[Row], *, follow_end: bool = False) -> None:
        """Replace the rows; the cursor stays on the same key when it still exists.

        `follow_end` pins the view to the newest rows (tail mode): the table then shows the last
        page without scrolling, so a steady stream costs line repaints, never a scroll reflow.
        """
        old_key = self.cursor_key
        new = rows if isinstance(rows, LazyRows) else tuple(rows)
        old = self.rows
        old_offset = self._offset()
        same = new is old or (
            not isinstance(new, LazyRows)
            and not isinstance(old, LazyRows)
            and len(new) == len(old)
            and all(a is b for a, b in zip(new, old, strict=True))
        )
        was_tail = self.tail
        if same and follow_end == was_tail and not (follow_end and self.cursor != len(new) - 1):
            return
        self.rows = new
        old_cursor, old_scroll = self.cursor, round(self.scroll_y)
        self.tail = follow_end
        if follow_end:
            self.cursor = max(0, len(new) - 1)
        elif old_key is not None:
            at = _index_of(new, old_key)
            self.cursor = at if at is not None else min(self.cursor, max(0, len(new) - 1))
        else:
            self.cursor = 0
        self._update_virtual_size()
        if not follow_end:
            if was_tail:
                self.scroll_to(y=old_offset, animate=False, immediate=True)
            self._scroll_cursor_into_view()
        if was_tail != follow_end or (
            not follow_end and (self.cursor != old_cursor or round(self.scroll_y) != old_scroll)
        ):
            self.refresh()
        else:
            self._refresh_changed_lines(old, old_offset, new, self._offset())

    def update_rows(self, rows: LazyRows, changed: Sequence[int], stale: Sequence[Row]) -> None:
        """The rows at the `changed` indices (ascending) were replaced in place (same keys, same
        order, same length): the cursor and scroll stay; only visible changed lines repaint.
        `stale`: the rows they replaced, whose rendered lines are dropped."""
        self.rows = rows
        cache = self._line_cache
        for row in stale:
            cache.pop(id(row), None)
        top, height, width = self._offset(), self._page_height(), self.size.width
        shown = changed[bisect_left(changed, top) : bisect_left(changed, top + height)]
        if len(shown) > height * 3 // 4:
            self.refresh()
            return
        for i in shown:
            self.refresh(Region(0, i - top + 1, width, 1))

    def shown_range(self) -> range:
        """Indices of the rows on screen."""
        top = self._offset()
        return range(top, min(len(self.rows), top + self._page_height()))

    def _offset(self) -> int:
        """Index of the first row on screen."""
        if self.tail:
            return max(0, len(self.rows) - self._page_height())
        return round(self.scroll_y)

    def _update_virtual_size(self) -> None:
        height = min(len(self.rows), self._page_height()) if self.tail else len(self.rows)
        self.virtual_size = Size(self._total_width(self.size.width), height + 1)

    def _refresh_changed_lines(
        self, old: Sequence[Row], old_top: int, new: Sequence[Row], top: int
    ) -> None:
        """Repaint only the visible lines whose row object changed (most ticks change few)."""
        height = self._page_height()
        width = self.size.width
        changed = [
            y
            for y in range(height)
            if (old[old_top + y] if old_top + y < len(old) else None)
            is not (new[top + y] if top + y < len(new) else None)
            or (top + y == self.cursor) != (old_top + y == self.cursor)
        ]
        if len(changed) > height * 3 // 4:
            self.refresh()
            return
        for y in changed:
            self.refresh(Region(0, y + 1, width, 1))

    @property
    def cursor_key(self) -> str | None:
        if not 0 <= self.cursor < len(self.rows):
            return None
        rows = self.rows
        return rows.key(self.cursor) if isinstance(rows, LazyRows) else rows[self.cursor].key

    def set_sort_marker(self, column: int | None, reverse: bool = False) -> None:
        self.sort_marker = None if column is None else (column, reverse)
        self.refresh()

    # -- geometry ---------------------------------------------------------------------------

    def _widths(self, total: int) -> list[int]:
        fixed = sum(c.width or 0 for c in self.columns) + max(0, len(self.columns) - 1)
        flex = [i for i, c in enumerate(self.columns) if c.width is None]
        rest = max(self.min_flex, total - fixed)
        widths = [c.width or 0 for c in self.columns]
        for i in flex:
            widths[i] = rest // max(1, len(flex))
        return widths

    def _total_width(self, viewport: int) -> int:
        return sum(self._widths(viewport)) + max(0, len(self.columns) - 1)

    def on_resize(self, event: events.Resize) -> None:
        self._update_virtual_size()
        if not self.tail:
            self._scroll_cursor_into_view()

    def _page_height(self) -> int:
        return max(1, self.scrollable_content_region.height - 1)

    def _scroll_cursor_into_view(self) -> None:
        page = self._page_height()
        top = round(self.scroll_y)
        if self.cursor < top:
            self.scroll_to(y=self.cursor, animate=False, immediate=True)
        elif self.cursor >= top + page:
            self.scroll_to(y=self.cursor - page + 1, animate=False, immediate=True)

    # -- rendering --------------------------------------------------------------------------

    def _cstyle(self, name: str | None) -> Style:
        if name is None:
            return Style()
        cached = self._rowtable_style_cache.get(name)
        if cached is None:
            cached = self.get_component_rich_style(name, partial=True)
            self._rowtable_style_cache[name] = cached
        return cached

    def notify_style_update(self) -> None:
        self._rowtable_style_cache.clear()
        self._line_cache.clear()
        self._base_style = None
        super().notify_style_update()

    @property
    def base_style(self) -> Style:
        """`rich_style` walks the ancestors each call; it only changes with the styles."""
        if self._base_style is None:
            self._base_style = self.rich_style
        return self._base_style

    def render_line(self, y: int) -> Strip:
        width = self.scrollable_content_region.width
        widths = self._widths(width)
        base = self.base_style
        if y == 0:
            labels = []
            for i, col in enumerate(self.columns):
                label = col.label
                if self.sort_marker is not None and self.sort_marker[0] == i:
                    label += " ▼" if self.sort_marker[1] else " ▲"
                labels.append(_fit(label, widths[i], col.justify))
            text = " ".join(labels)
            strip = Strip([Segment(text, base + self._cstyle("rowtable--header"))])
            return self._finish(strip, width, base + self._cstyle("rowtable--header"))
        index = self._offset() + y - 1
        if not self.rows:
            if y == 1:
                seg = Segment(self.empty_text, base + self._cstyle("rowtable--empty"))
                return self._finish(Strip([seg]), width, base)
            return Strip.blank(width, base)
        if index >= len(self.rows):
            return Strip.blank(width, base)
        row = self.rows[index]
        is_cursor = index == self.cursor
        params = (width, is_cursor, is_cursor and self.has_focus, round(self.scroll_x))
        hit = self._line_cache.get(id(row))
        if hit is not None and hit[0] is row and hit[1] == params:
            return hit[2]
        strip = self._render_row(row, widths, width, base, is_cursor)
        if len(self._line_cache) > LINE_CACHE_MAX:
            self._line_cache.clear()
        self._line_cache[id(row)] = (row, params, strip)
        return strip

    def _render_row(
        self, row: Row, widths: list[int], width: int, base: Style, is_cursor: bool
    ) -> Strip:
        row_style = base + self._cstyle(row.style)
        segments: list[Segment] = []
        for i, col in enumerate(self.columns):
            if i:
                segments.append(Segment(" ", row_style))
            text, cls = row.cells[i] if i < len(row.cells) else ("", None)
            style = row_style + self._cstyle(cls) if cls else row_style
            if row.style:
                style = style + self._cstyle(row.style)
            segments.append(Segment(_fit(text, widths[i], col.justify), style))
        strip = Strip(segments)
        if is_cursor:
            cursor = "rowtable--cursor" if self.has_focus else "rowtable--cursor-blur"
            strip = strip.apply_style(self._cstyle(cursor))
            return self._finish(strip, width, row_style + self._cstyle(cursor))
        return self._finish(strip, width, row_style)

    def _finish(self, strip: Strip, width: int, pad_style: Style) -> Strip:
        scroll_x = round(self.scroll_x)
        strip = strip.extend_cell_length(scroll_x + width, pad_style)
        return strip.crop(scroll_x, scroll_x + width)

    # -- interaction ------------------------------------------------------------------------

    def _move(self, index: int) -> None:
        if not self.rows:
            return
        index = max(0, min(len(self.rows) - 1, index))
        if self.tail and index != len(self.rows) - 1:
            offset = self._offset()
            self.tail = False
            self._update_virtual_size()
            self.scroll_to(y=offset, animate=False, immediate=True)
            self.refresh()
        if index != self.cursor:
            self.cursor = index
            self._scroll_cursor_into_view()
            self.refresh()
        self.post_message(self.CursorMoved(self, index, index == len(self.rows) - 1, by_user=True))

    def action_cursor(self, delta: int) -> None:
        self._move(self.cursor + delta)

    def action_page(self, direction: int) -> None:
        self._move(self.cursor + direction * self._page_height())

    def action_edge(self, end: int) -> None:
        self._move(len(self.rows) - 1 if end else 0)

    def action_activate(self) -> None:
        key = self.cursor_key
        if key is not None:
            self.post_message(self.Activated(self, key))

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in ("sort", "reverse") and not self.sortable:
            return False  # arrival or retry order is the meaning here: no sort key to offer
        return True

    def action_copy_key(self) -> None:
        """Copy the selected row's id (peer id, channel, message seq) via OSC 52."""
        key = self.cursor_key
        if key is not None:
            self.app.copy_to_clipboard(key)
            self.post_message(self.Copied(self, key))

    class Copied(Message):
        def __init__(self, table: RowTable, key: str) -> None:
            super().__init__()
            self.table = table
            self.key = key

    def action_sort(self) -> None:
        self.post_message(self.SortRequested(self, reverse_only=False))

    def action_reverse(self) -> None:
        self.post_message(self.SortRequested(self, reverse_only=True))

    def on_click(self, event: events.Click) -> None:
        if event.y == 0:
            self.post_message(self.SortRequested(self, reverse_only=False))
            return
        index = self._offset() + event.y - 1
        if 0 <= index < len(self.rows):
            self._move(index)
            if event.chain >= 2:
                self.action_activate()

    def on_focus(self) -> None:
        self.refresh()

    def on_blur(self) -> None:
        self.refresh()
