"""Messages shared across the console's widgets and screens."""

from __future__ import annotations

from textual.message import Message

from cotal_tui.console.commands import CommandResult


class CommandOutcome(Message):
    """A dispatched command finished (or was refused); the notice line shows its words."""

    def __init__(self, line: str, result: CommandResult) -> None:
        super().__init__()
        self.line = line
        self.result = result
