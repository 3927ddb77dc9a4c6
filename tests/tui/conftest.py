"""Console test rig: fixed clock and data, UTC, colours pinned, SVG baselines under snapshots/."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import pytest_textual_snapshot

from cotal_tui.console.commands import Dispatcher
from cotal_tui.console.fixtures import (
    FixtureCommands,
    FixtureData,
    FixtureSource,
    MutableClock,
    demo_data,
)
from cotal_tui.console.model import ConsoleModel, ModelOptions
from cotal_tui.tui.app import ConsoleApp

REPO = Path(__file__).resolve().parents[2]
SNAPSHOT_DIR = REPO / "snapshots"
SIZE = (160, 44)


class RepoSVGExtension(pytest_textual_snapshot.SVGImageExtension):
    """Baselines live in the repo's snapshots/<test module>/, not tests/__snapshots__."""

    @classmethod
    def dirname(cls, *, test_location) -> str:  # type: ignore[override]
        return str(SNAPSHOT_DIR / test_location.basename)


@pytest.fixture(autouse=True)
def _pinned_environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("TZ", "UTC")
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.setenv("TEXTUAL_ANIMATIONS", "none")
    monkeypatch.setattr(pytest_textual_snapshot, "SVGImageExtension", RepoSVGExtension)
    time.tzset()
    yield
    time.tzset()


class SnapshotConsoleApp(ConsoleApp):
    CURSOR_BLINK = False


@dataclass
class Rig:
    app: ConsoleApp
    source: FixtureSource
    commands: FixtureCommands
    model: ConsoleModel
    clock: MutableClock

    @property
    def expected_messages(self) -> int:
        return len(self.source.data.messages)


@pytest.fixture
def make_rig() -> Callable[..., Rig]:
    def build(
        data: FixtureData | None = None,
        *,
        read_only: bool = False,
        demo: bool = True,
        theme: str | None = None,
        tick_interval: float | None = 0.1,
    ) -> Rig:
        clock = MutableClock()
        source = FixtureSource(data if data is not None else demo_data())
        commands = FixtureCommands(source)
        model = ConsoleModel(
            source, clock=clock, options=ModelOptions(read_only=read_only, demo=demo)
        )
        app = SnapshotConsoleApp(
            model,
            Dispatcher(commands, read_only=read_only),
            tick_interval=tick_interval,
            theme=theme,
        )
        return Rig(app, source, commands, model, clock)

    return build


@pytest.fixture
async def space(request: pytest.FixtureRequest, tmp_path: Path):
    """A real local space (embedded nats-server, auth mode) named by the test module's SPACE."""
    from cotal_tui.server.local import start_local_space

    local = await start_local_space(request.module.SPACE, state_dir=tmp_path / ".cotal", port=0)
    try:
        yield local
    finally:
        local.stop()
