"""Drill-down cards: agent, channel, lease record, message. Esc goes back; r shows raw JSON."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static


class DetailScreen(ModalScreen[None]):
    BINDINGS = [
        Binding("escape,b", "app.pop_screen", "Back"),
        Binding("r", "toggle_raw", "Raw JSON"),
        Binding("q", "app.quit", "Quit", show=False),
    ]

    def __init__(self, title: str, body: str, raw: str | None = None, *, kind: str) -> None:
        super().__init__(classes=f"detail detail-{kind}")
        self.card_title = title
        self.body = body
        self.raw = raw
        self.showing_raw = False

    def compose(self) -> ComposeResult:
        with Vertical(id="detail-box") as box:
            box.border_title = self.card_title
            box.border_subtitle = "Esc back" + (" · r raw JSON" if self.raw is not None else "")
            with VerticalScroll(id="detail-scroll"):
                yield Static(self.body, id="detail-body")

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "toggle_raw" and self.raw is None:
            return None
        return True

    def action_toggle_raw(self) -> None:
        if self.raw is None:
            return
        self.showing_raw = not self.showing_raw
        self.query_one("#detail-body", Static).update(self.raw if self.showing_raw else self.body)
