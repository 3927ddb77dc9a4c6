"""Words and glyphs shared by every surface (TUI, --plain, check): no Textual, no Rich."""

from __future__ import annotations

import time
from collections.abc import Sequence

from cotal_tui.console.source import Ms

STATUS_ORDER = {"working": 0, "waiting": 1, "idle": 2, "offline": 3}
STATUS_GLYPH = {"working": "●", "waiting": "◐", "idle": "○", "offline": "⊘"}
"""Shape AND colour AND word: the glyph is never the only carrier of a status."""

SPARK_BARS = " ▁▂▃▄▅▆▇█"


def age_text(ms: int | float | None) -> str:
    """A compact duration: 850ms, 12s, 4m05s, 3h12m, 2d4h; "unknown" for None."""
    if ms is None:
        return "unknown"
    ms = int(ms)
    if ms < 0:
        return "-" + age_text(-ms)
    if ms < 1_000:
        return f"{ms}ms"
    s = ms // 1000
    if s < 60:
        return f"{s}s"
    m, s = divmod(s, 60)
    if m < 60:
        return f"{m}m{s:02d}s"
    h, m = divmod(m, 60)
    if h < 48:
        return f"{h}h{m:02d}m"
    d, h = divmod(h, 24)
    return f"{d}d{h}h"


def countdown_text(ms: int | None) -> str:
    if ms is None:
        return "unscheduled"
    if ms <= 0:
        return "due now"
    return "in " + age_text(ms)


def clock_text(ts: Ms) -> str:
    """Wall-clock time of day in the local time zone (tests pin TZ=UTC)."""
    return time.strftime("%H:%M:%S", time.localtime(ts / 1000))


def stamp_text(ts: Ms) -> str:
    t = time.localtime(ts / 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", t) + f".{int(ts) % 1000:03d}"


def sparkline(values: Sequence[int | float], width: int | None = None) -> str:
    """Unicode block sparkline scaled to the window's own maximum; blank when all zero."""
    vals = list(values)[-width:] if width else list(values)
    top = max(vals, default=0)
    if top <= 0:
        return SPARK_BARS[1] * len(vals)
    steps = len(SPARK_BARS) - 2
    return "".join(
        SPARK_BARS[0 + 1 + round(v / top * steps)] if v > 0 else SPARK_BARS[1] for v in vals
    )


def one_line(text: str, limit: int = 200) -> str:
    """Collapse whitespace and escape control/bidi characters so a message cannot forge lines."""
    out: list[str] = []
    for ch in text:
        code = ord(ch)
        if ch in "\r\n\t":
            out.append(" ")
        elif code < 0x20 or code == 0x7F or 0x202A <= code <= 0x202E or 0x2066 <= code <= 0x2069:
            out.append(f"\\u{code:04x}")
        else:
            out.append(ch)
    flat = "".join(out)
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"
