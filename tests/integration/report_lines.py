"""`up`'s reporter (ok / info / fail), kept as lines for a test to read."""

from __future__ import annotations


class Lines:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def ok(self, text: str) -> None:
        self.lines.append(f"ok {text}")

    def info(self, text: str) -> None:
        self.lines.append(f"info {text}")

    def fail(self, text: str) -> None:
        self.lines.append(f"fail {text}")
