"""Issue 10 case 5: an invalid stored deliveryClass reads as the reference reads it (not
durable) and is shown, not silent: the console's channel row and detail carry the bad value."""

from __future__ import annotations

import pytest

from cotal_tui.console.snapshot import ChannelRow
from cotal_tui.protocol.channel_config import delivery_class_reading, invalid_delivery_class
from cotal_tui.tui.render import channel_detail, channel_row


@pytest.mark.parametrize(
    ("channel", "defaults", "cls", "shown"),
    [
        ({}, {}, "durable", None),
        ({"deliveryClass": "live"}, {}, "live", None),
        ({"deliveryClass": 5}, {}, "live", "5"),
        ({"deliveryClass": "bogus"}, {"deliveryClass": "durable"}, "live", '"bogus"'),
        ({}, {"deliveryClass": [1]}, "live", "[1]"),
        ({"deliveryClass": None}, {}, "durable", None),  # null falls through `??`
    ],
)
def test_class_reading(channel, defaults, cls, shown) -> None:
    reading, problem = delivery_class_reading(channel, defaults)
    assert reading == cls
    assert invalid_delivery_class(channel, defaults) == shown
    assert (problem is None) == (shown is None)
    if shown:
        assert shown in problem and "not durable" in problem


def _row(**kw) -> ChannelRow:
    base = dict(
        name="dur2",
        delivery_class="live",
        replay=True,
        replay_window=None,
        description=None,
        retained=3,
        joined=False,
        unread=0,
        rate=(0,),
        health=None,
        health_text=None,
        health_caveat=None,
        durable_unclosed=False,
        mode=None,
        durable_membership=False,
        generation=None,
    )
    return ChannelRow(**{**base, **kw})


def test_console_row_and_detail_show_the_bad_value() -> None:
    row = channel_row(_row(class_invalid="5"))
    assert ("⚠ 5", "sev--degraded") in row.cells
    detail = channel_detail(_row(class_invalid="5"))
    assert "stored value 5 is neither live nor durable" in detail
    plain = channel_row(_row())
    assert ("live", "cell--muted") in plain.cells
