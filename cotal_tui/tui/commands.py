"""Ctrl+P palette provider: the same verbs as the `:` line, plus ready-made entries per channel."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from functools import partial

from textual.command import DiscoveryHit, Hit, Hits, Provider

from cotal_tui.console.commands import VERBS, RetryNow

Entry = tuple[str, str, Callable[[], object]]


class VerbProvider(Provider):
    """Verbs open the `:` line prefilled; concrete entries (join #ops) run at once.

    Leaving is never one keystroke from the palette: it prefills the line so Enter confirms.
    """

    def _entries(self) -> Iterator[Entry]:
        app = self.app
        for verb in VERBS:
            yield (
                f":{verb.usage}",
                verb.help,
                partial(app.open_command_line, verb.name + " "),  # type: ignore[attr-defined]
            )
        snap = app.model.snapshot  # type: ignore[attr-defined]
        if snap is None:
            return
        for ch in snap.channels.rows:
            if ch.joined:
                yield (
                    f"leave #{ch.name}",
                    "prefill the leave (Enter confirms)",
                    partial(app.open_command_line, f"leave #{ch.name}"),  # type: ignore[attr-defined]
                )
                yield (
                    f"post #{ch.name}",
                    "compose a post",
                    partial(app.open_command_line, f"post #{ch.name} "),  # type: ignore[attr-defined]
                )
            else:
                yield (
                    f"join #{ch.name}",
                    f"join the {ch.delivery_class} channel #{ch.name}",
                    partial(app.run_command_line, f"join #{ch.name}"),  # type: ignore[attr-defined]
                )
        for status in ("working", "waiting", "idle"):
            yield (
                f"status {status}",
                "set your own presence status",
                partial(app.run_command_line, f"status {status}"),  # type: ignore[attr-defined]
            )
        for op in snap.pending.rows:
            label = RetryNow(op.channel, op.operation, op.owner).label
            yield (
                f"retry {label}",
                f"retry now (attempt {op.attempt})",
                partial(app.run_command_line, f"retry {label}"),  # type: ignore[attr-defined]
            )

    async def discover(self) -> Hits:
        for text, help_text, callback in self._entries():
            yield DiscoveryHit(text, callback, help=help_text)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for text, help_text, callback in self._entries():
            score = matcher.match(text)
            if score > 0:
                yield Hit(score, matcher.highlight(text), callback, text=text, help=help_text)
