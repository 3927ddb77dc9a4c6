"""Starting a daemon over a stale lease held by its own identity (issue 11, cause 3).

A process that was killed (or a daemon that exited after the broker was gone) leaves
``lease.0`` behind under its identity for up to the bucket's 30 s max_age. A restart of the
same `up` / `console --daemon` then meets "a live lease already exists … held by <its own
id>". :func:`start_daemon` handles exactly that case, and nothing else:

- when the holder file (``server/holder_file.py``) proves the record is our own dead process's
  (same identity, same revision, process gone), the lease is taken over by a CAS on that
  revision at once;
- otherwise, with ``wait=True``, it waits for the record to expire, saying what it waits for
  with a countdown; if the record is rewritten meanwhile, some live process renews it, so it
  stops waiting and reports the lease as held (never two live daemons);
- a lease held by another identity is refused as before (:class:`LeaseHeld` propagates).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from cotal_tui.delivery.daemon import DeliveryDaemon
from cotal_tui.mesh.lease import LeaseHeld
from cotal_tui.server.holder_file import HolderFile

COUNTDOWN_EVERY_S = 5.0
RETRY_S = 1.0


class HolderBusy(RuntimeError):
    """Another live process of this state dir holds the holder file: its daemon is serving."""


def claim_holder(holder: HolderFile | None) -> None:
    if holder is not None and not holder.lock():
        raise HolderBusy(
            f"another live process holds {holder.path} — it runs this space's delivery daemon "
            "under the same identity. Not binding."
        )


async def start_daemon(
    daemon: DeliveryDaemon,
    holder: HolderFile | None,
    say: Callable[[str], None],
    *,
    wait: bool,
    countdown_every_s: float = COUNTDOWN_EVERY_S,
    retry_s: float = RETRY_S,
) -> None:
    """``daemon.start()``, taking over or waiting out a stale lease of our own identity."""
    tried: set[int] = set()
    seen_revision: int | None = None
    last_said = 0.0
    while True:
        try:
            await daemon.start()
            return
        except LeaseHeld as exc:
            if exc.holder != daemon.daemon_id:
                raise
            why = None
            if holder is not None and exc.revision not in tried:
                why = holder.proves_dead_self(exc.holder, exc.revision, daemon_running=False)
            if why is not None:
                tried.add(exc.revision)
                say(
                    f"lease.0 is held by {exc.holder} — our own identity, last written by "
                    f"{why}; taking it over (CAS on revision {exc.revision})"
                )
                daemon.take_over_revision = exc.revision
                continue
            if not wait:
                raise
            if seen_revision is not None and exc.revision != seen_revision:
                raise  # rewritten while we waited: a live process renews it
            seen_revision = exc.revision
            now = time.monotonic()
            if now - last_said >= countdown_every_s:
                last_said = now
                say(
                    f"lease.0 is held by {exc.holder} — this daemon's own identity, not proven "
                    f"to be a dead process of ours; waiting for it to expire: "
                    f"~{exc.expires_in_s:.0f}s left"
                )
            await asyncio.sleep(retry_s)
