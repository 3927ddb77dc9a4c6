"""`?`: the keys active where you pressed it, the focused pane's first, then the global ones."""

from __future__ import annotations

from collections.abc import Sequence

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.markup import escape
from textual.screen import ModalScreen
from textual.widgets import Static

HelpGroup = tuple[str, Sequence[tuple[str, str]]]


def help_markup(groups: Sequence[HelpGroup]) -> str:
    lines: list[str] = []
    for title, keys in groups:
        if not keys:
            continue
        if lines:
            lines.append("")
        lines.append(f"[b]{escape(title)}[/b]")
        for key, desc in keys:
            if len(key) > 14:
                lines.append(f"  [$accent]{escape(key)}[/]")
                lines.append(f"  {'':<14} {escape(desc)}")
            else:
                lines.append(f"  [$accent]{escape(key):<14}[/] {escape(desc)}")
    return "\n".join(lines)


class HelpScreen(ModalScreen[None]):
    BINDINGS = [
        Binding("escape,question_mark,b", "app.pop_screen", "Back"),
        Binding("q", "app.quit", "Quit", show=False),
    ]

    def __init__(self, keys: Sequence[HelpGroup], more: Sequence[HelpGroup]) -> None:
        super().__init__(classes="detail")
        self.keys = keys
        self.more = more

    def compose(self) -> ComposeResult:
        with Vertical(id="detail-box") as box:
            box.border_title = "Keys active here"
            box.border_subtitle = "Esc back"
            with Horizontal(id="help-columns"):
                with VerticalScroll(id="help-keys"):
                    yield Static(help_markup(self.keys), id="help-body")
                with VerticalScroll(id="help-more"):
                    yield Static(help_markup(self.more), id="help-verbs")
