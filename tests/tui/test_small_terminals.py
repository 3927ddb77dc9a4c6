"""Issue 12 item 11: below ~120 columns one pane at a time, a one-line summary strip always
visible, number keys (and focus) switch panes, `m` maximizes on a wide terminal, `?` lists it."""

from __future__ import annotations

from tui_helpers import settle, static_text

from cotal_tui.tui.screens.main import PANE_ORDER


def shown(app) -> list[str]:
    return [p for p in PANE_ORDER if app.screen.query_one(f"#{p}").display]


async def test_narrow_terminal_shows_one_pane_and_the_summary(make_rig):
    rig = make_rig(tick_interval=None)
    async with rig.app.run_test(size=(80, 24)) as pilot:
        await settle(pilot, rig)
        assert shown(rig.app) == ["roster"]
        strip = static_text(rig.app, "#summary")
        assert "lease SERVING" in strip and "2 pending" in strip and "connected" in strip
        for key, pane in zip("12345", PANE_ORDER, strict=True):
            await pilot.press(key)
            rig.app.tick()
            await pilot.pause()
            assert shown(rig.app) == [pane], (key, shown(rig.app))
            assert rig.app.screen.query_one("#summary").display
        # The feed shows its messages at 80x24 (it used to show no text).
        rows = rig.app.screen.query_one("#feed-table").rows
        assert rows and any("release" in "".join(c[0] for c in r.cells) for r in rows)


async def test_wide_terminal_shows_every_pane_and_m_maximizes(make_rig):
    rig = make_rig(tick_interval=None)
    async with rig.app.run_test(size=(200, 50)) as pilot:
        await settle(pilot, rig)
        assert shown(rig.app) == list(PANE_ORDER)
        assert not rig.app.screen.query_one("#summary").display
        await pilot.press("2", "m")
        await pilot.pause()
        assert shown(rig.app) == ["channels"]
        assert rig.app.screen.query_one("#summary").display
        await pilot.press("m")
        await pilot.pause()
        assert shown(rig.app) == list(PANE_ORDER)


async def test_resizing_switches_layout(make_rig):
    rig = make_rig(tick_interval=None)
    async with rig.app.run_test(size=(160, 44)) as pilot:
        await settle(pilot, rig)
        assert shown(rig.app) == list(PANE_ORDER)
        await pilot.resize_terminal(100, 30)
        await pilot.pause()
        assert shown(rig.app) == ["roster"]
        await pilot.resize_terminal(160, 44)
        await pilot.pause()
        assert shown(rig.app) == list(PANE_ORDER)


async def test_help_lists_maximize(make_rig):
    rig = make_rig(tick_interval=None)
    async with rig.app.run_test(size=(160, 44)) as pilot:
        await settle(pilot, rig)
        groups = dict(rig.app.help_groups())
        assert any(desc == "Maximize" and key == "m" for key, desc in groups["Global"]), groups
