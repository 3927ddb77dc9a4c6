"""Read what the terminal shows, as plain text, for assertions on wording."""

from __future__ import annotations

import io

from rich.console import Console
from textual.app import App

from waiting import wait_for


def screen_text(app: App) -> str:
    width, height = app.size
    console = Console(
        width=width,
        height=height,
        file=io.StringIO(),
        force_terminal=True,
        color_system=None,
        record=True,
        legacy_windows=False,
        safe_box=False,
    )
    console.print(
        app.screen._compositor.render_update(full=True, screen_stack=app._background_screens)
    )
    return console.export_text()


async def settle(pilot, rig) -> None:
    """Wait until every fixture message reached the model and one tick has been drawn."""
    await wait_for(
        lambda: rig.app.tick().feed.received >= rig.expected_messages,
        what=f"the model to ingest {rig.expected_messages} fixture messages",
    )
    rig.app.tick()
    await pilot.pause()


async def run_line(pilot, rig, line: str):
    """Type a `:` command line and wait for its outcome; return the CommandResult."""
    rig.app.last_result = None
    await pilot.press("colon")
    # Typing char by char is Textual's Input, tested elsewhere; paste the line to keep runs short.
    rig.app.screen.query_one("#command-line").insert_text_at_cursor(line)
    await pilot.press("enter")
    return await wait_for(
        lambda: rig.app.last_result, what=f"an outcome for the command line {line!r}"
    )


def notice(app) -> str:
    return str(app.screen.query_one("#notice").render())


def static_text(app, selector: str) -> str:
    """The plain text of a Static's content, whitespace collapsed (wrapping does not matter)."""
    widget = app.screen.query_one(selector)
    return " ".join(str(widget.render()).split())
