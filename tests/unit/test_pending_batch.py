"""PendingBatch (delivery/daemon_context.py): a batch's PubAcks counted into one future.

It must never say "all replied" while publishes are still being handed over (replies can come
back between chunks), must count a failed reply as not stored, and must ignore replies after the
caller settled or the tracker stopped.
"""

from __future__ import annotations

import asyncio

from cotal_tui.delivery.daemon_context import PendingBatch, PublishFailed


async def test_done_only_after_release_and_every_reply() -> None:
    batch = PendingBatch(3, asyncio.get_running_loop())
    batch.remaining += 2  # two publishes handed over so far
    batch.resolve(0, None)
    batch.resolve(1, PublishFailed("no"))
    assert not batch.done.done(), "done while the batch was still being handed over"
    batch.remaining += 1
    batch.release()  # handed over: now only the third reply is awaited
    assert not batch.done.done()
    batch.resolve(2, None)
    assert batch.done.done()
    assert batch.results == [True, False, True]
    assert [str(e) for e in batch.errors] == ["no"]


async def test_nothing_sent_is_done_at_release() -> None:
    batch = PendingBatch(2, asyncio.get_running_loop())
    batch.release()
    assert batch.done.done() and batch.results == [False, False]


async def test_replies_after_settling_or_stopping_do_not_count() -> None:
    loop = asyncio.get_running_loop()
    settled = PendingBatch(1, loop)
    settled.remaining += 1
    settled.release()
    settled.open = False  # what settle() does once it stops waiting
    settled.resolve(0, None)
    assert settled.results == [False]
    stopped = PendingBatch(1, loop)
    stopped.remaining += 1
    stopped.abandon()
    assert stopped.done.cancelled()
    stopped.resolve(0, None)
    assert stopped.results == [False]


async def test_a_failed_chunk_forgets_only_its_own_batch() -> None:
    """Tokens are shared by every batch: another batch may take some in the failed chunk's
    range while this one awaited a send; those must stay awaited."""
    from cotal_tui.delivery.daemon_context import Waiter, _drop_unsent

    loop = asyncio.get_running_loop()
    mine, other = PendingBatch(3, loop), PendingBatch(1, loop)
    waiters: dict[str, Waiter] = {"5": (mine, 0), "6": (other, 0), "8": (mine, 2)}
    # token 7 was answered already (popped by its reply)
    assert _drop_unsent(waiters, mine, 5, 8) == 2
    assert waiters == {"6": (other, 0)}


async def test_replies_fill_the_batch_as_resolve_would() -> None:
    """AckTracker._on_reply fills a batch's slots, errors and wake-up through
    PendingBatch.resolve (a success, a failure, a 503 and a late reply)."""
    from types import SimpleNamespace

    from cotal_tui.delivery.daemon_context import AckTracker

    tracker = AckTracker.__new__(AckTracker)
    tracker._prefix = "_INBOX.x."
    batch = PendingBatch(4, asyncio.get_running_loop())
    tracker._futures = {str(i): (batch, i) for i in range(4)}
    batch.remaining += 4
    batch.release()

    def reply(token: str, data: bytes, headers: dict[str, str] | None = None) -> None:
        tracker._on_reply(SimpleNamespace(subject="_INBOX.x." + token, data=data, headers=headers))

    reply("0", b'{"stream":"S","seq":1}')
    reply("1", b'{"error":{"code":503}}')
    reply("2", b"", {"Status": "503"})
    reply("0", b'{"stream":"S","seq":1}')  # a duplicate: its token is gone
    assert not batch.done.done() and batch.results == [True, False, False, False]
    reply("3", b'{"stream":"S","seq":4}')
    assert batch.done.done() and batch.results == [True, False, False, True]
    assert len(batch.errors) == 2 and tracker._futures == {}
    late = PendingBatch(1, asyncio.get_running_loop())
    tracker._futures = {"9": (late, 0)}
    late.remaining += 1
    late.open = False  # settled before its reply came
    reply("9", b'{"stream":"S","seq":9}')
    assert late.results == [False]
