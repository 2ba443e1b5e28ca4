"""EventHub: multiplexed live tails of Redis event logs, in order, without gaps or duplicates."""

from __future__ import annotations

import asyncio
import contextlib
import random
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis.asyncio as aredis
from django.conf import settings

from webapp.chat.eventlog import AsyncEventLog, stream_key
from webapp.chat.hub import EventHub, Frame, Subscription

TERMINAL = {"type": "response.completed", "finish_reason": "stop"}


def ev(rid: str, seq: int, *, terminal: bool = False) -> dict[str, Any]:
    body = dict(TERMINAL) if terminal else {"type": "content.delta", "text": f"t{seq}·"}
    return {**body, "response_id": rid, "seq": seq}


@pytest.fixture
async def redis_client() -> AsyncIterator[aredis.Redis]:
    client = aredis.Redis.from_url(settings.REDIS_URL)
    yield client
    await client.aclose()


@pytest.fixture
async def log(redis_client: aredis.Redis) -> AsyncEventLog:
    return AsyncEventLog(redis_client)


@pytest.fixture
async def hub() -> AsyncIterator[EventHub]:
    h = EventHub(settings.REDIS_URL)
    yield h
    # Bounded teardown: a hub is never stopped in production, so closing it is best effort.
    if h._task is not None:
        h._task.cancel()
        await asyncio.wait({h._task}, timeout=2)
    for client in (h._reader, h._control):
        with contextlib.suppress(Exception):
            await asyncio.wait_for(client.aclose(), timeout=2)


@pytest.fixture
def rids(redis_client: aredis.Redis) -> Any:
    made: list[str] = []

    def new() -> str:
        rid = str(uuid.uuid4())
        made.append(rid)
        return rid

    yield new
    # Keys are unique per test; they expire with the test database's flush at session start.


async def drain(sub: Subscription, *, until_seq: int, timeout: float = 10.0) -> list[int]:
    """Read the subscription's frames until `until_seq` (inclusive); return their seqs."""
    seqs: list[int] = []
    async with asyncio.timeout(timeout):
        while not seqs or seqs[-1] < until_seq:
            frame = await sub.queue.get()
            seqs.append(frame.seq)
    return seqs


async def nothing_more(sub: Subscription, wait: float = 0.3) -> None:
    await asyncio.sleep(wait)
    assert sub.queue.empty(), [sub.queue.get_nowait().seq for _ in range(sub.queue.qsize())]


# --- Subscription, pure -------------------------------------------------------------


def frame(seq: int, terminal: bool = False) -> Frame:
    return Frame(seq=seq, type="response.cancelled" if terminal else "content.delta", raw="{}")


def test_offer_buffers_ahead_of_a_gap_and_drops_duplicates() -> None:
    sub = Subscription(response_id="r", last=2)
    for seq in (5, 3, 2, 1, 3, 4, 5, 6):
        sub.offer(frame(seq))
    out = [sub.queue.get_nowait().seq for _ in range(sub.queue.qsize())]
    assert out == [3, 4, 5, 6]


def test_offer_stops_after_terminal() -> None:
    sub = Subscription(response_id="r", last=0)
    sub.offer(frame(3))
    sub.offer(frame(1))
    sub.offer(frame(2, terminal=True))
    sub.offer(frame(4))
    assert [sub.queue.get_nowait().seq for _ in range(sub.queue.qsize())] == [1, 2]
    assert sub.done and not sub._pending


# --- against Redis -------------------------------------------------------------------


async def test_subscribe_after_events_exist_fills_from_the_log(
    hub: EventHub, log: AsyncEventLog, rids: Any
) -> None:
    rid = rids()
    await log.append(rid, [ev(rid, s) for s in (1, 2, 3)])
    sub = await hub.subscribe(rid, 0)
    # The fill is done when subscribe returns: no waiting for the live tail.
    assert [sub.queue.get_nowait().seq for _ in range(3)] == [1, 2, 3]
    await log.append(rid, [ev(rid, 4), ev(rid, 5, terminal=True)])
    assert await drain(sub, until_seq=5) == [4, 5]
    assert sub.done


async def test_subscribe_before_events_exist_gets_them_live(
    hub: EventHub, log: AsyncEventLog, rids: Any
) -> None:
    rid = rids()
    sub = await hub.subscribe(rid, 0)
    assert sub.queue.empty()
    for s in range(1, 6):
        await log.append(rid, [ev(rid, s)])
    await log.append(rid, [ev(rid, 6, terminal=True)])
    assert await drain(sub, until_seq=6) == [1, 2, 3, 4, 5, 6]


async def test_frames_carry_the_log_text_unchanged(
    hub: EventHub, log: AsyncEventLog, rids: Any
) -> None:
    rid = rids()
    event = {"type": "reasoning.delta", "response_id": rid, "seq": 1, "text": "π ≈ 3.14 🌳"}
    sub = await hub.subscribe(rid, 0)
    await log.append(rid, [event])
    async with asyncio.timeout(5):
        got = await sub.queue.get()
    import json

    assert json.loads(got.raw) == event and got.type == "reasoning.delta"


async def test_after_seq_in_the_middle(hub: EventHub, log: AsyncEventLog, rids: Any) -> None:
    rid = rids()
    await log.append(rid, [ev(rid, s) for s in range(1, 11)])
    sub = await hub.subscribe(rid, 4)
    assert await drain(sub, until_seq=10) == list(range(5, 11))
    await log.append(rid, [ev(rid, 11, terminal=True)])
    assert await drain(sub, until_seq=11) == [11]


async def test_after_seq_at_the_end_gets_only_later_events(
    hub: EventHub, log: AsyncEventLog, rids: Any
) -> None:
    rid = rids()
    await log.append(rid, [ev(rid, s) for s in range(1, 4)])
    sub = await hub.subscribe(rid, 3)
    await nothing_more(sub, 0.1)
    await log.append(rid, [ev(rid, 4, terminal=True)])
    assert await drain(sub, until_seq=4) == [4]


async def test_fill_and_live_have_no_gap_or_duplicate_under_concurrent_appends(
    hub: EventHub, log: AsyncEventLog, rids: Any
) -> None:
    rid = rids()
    total = 300
    rng = random.Random(7)

    async def writer() -> None:
        seq = 0
        while seq < total:
            batch = min(rng.randint(1, 7), total - seq)
            events = [ev(rid, s, terminal=(s == total)) for s in range(seq + 1, seq + batch + 1)]
            await log.append(rid, events)
            seq += batch
            await asyncio.sleep(rng.random() / 500)

    async def reader(delay: float) -> tuple[int, list[int]]:
        await asyncio.sleep(delay)
        # Join at whatever point the log has reached, from a random earlier seq.
        length = await log.redis.xlen(stream_key(rid))
        after = rng.randint(0, length)
        sub = await hub.subscribe(rid, after)
        seqs = await drain(sub, until_seq=total, timeout=20)
        hub.unsubscribe(sub)
        return after, seqs

    results = await asyncio.gather(writer(), *(reader(rng.random() / 5) for _ in range(12)))
    for after, seqs in results[1:]:
        assert seqs == list(range(after + 1, total + 1))


async def test_many_subscriptions_on_many_streams(
    hub: EventHub, log: AsyncEventLog, rids: Any
) -> None:
    streams = [rids() for _ in range(40)]
    per_stream = 15
    subs = {rid: [await hub.subscribe(rid, 0) for _ in range(3)] for rid in streams}

    async def write(rid: str) -> None:
        for s in range(1, per_stream + 1):
            await log.append(rid, [ev(rid, s, terminal=(s == per_stream))])
            await asyncio.sleep(0)

    await asyncio.gather(*(write(rid) for rid in streams))
    for rid, group in subs.items():
        for sub in group:
            assert await drain(sub, until_seq=per_stream) == list(range(1, per_stream + 1)), rid


async def test_streams_added_while_the_hub_blocks_are_picked_up(
    hub: EventHub, log: AsyncEventLog, rids: Any
) -> None:
    first = rids()
    await hub.subscribe(first, 0)
    await asyncio.sleep(0.2)  # the hub is now blocked in XREAD on `first` only
    second = rids()
    sub = await hub.subscribe(second, 0)
    await log.append(second, [ev(second, 1)])
    # Well under the hub's 5 s block: the new stream was added by unblocking the read.
    assert await drain(sub, until_seq=1, timeout=2) == [1]


async def test_unsubscribe_stops_delivery_to_that_subscription_only(
    hub: EventHub, log: AsyncEventLog, rids: Any
) -> None:
    rid = rids()
    leaving = await hub.subscribe(rid, 0)
    staying = await hub.subscribe(rid, 0)
    await log.append(rid, [ev(rid, 1)])
    assert await drain(leaving, until_seq=1) == [1]
    hub.unsubscribe(leaving)
    hub.unsubscribe(leaving)  # twice is harmless
    await log.append(rid, [ev(rid, 2)])
    assert await drain(staying, until_seq=2) == [1, 2]
    await nothing_more(leaving)


async def test_last_unsubscribe_drops_the_stream_from_the_hub(
    hub: EventHub, log: AsyncEventLog, rids: Any
) -> None:
    rid, other = rids(), rids()
    sub = await hub.subscribe(rid, 0)
    keep = await hub.subscribe(other, 0)
    hub.unsubscribe(sub)
    assert rid not in hub._cursor and rid not in hub._subs
    await log.append(rid, [ev(rid, 1)])
    await log.append(other, [ev(other, 1)])
    assert await drain(keep, until_seq=1) == [1]
    await nothing_more(sub)
    # Subscribing again later starts from the given seq, not from a stale cursor.
    again = await hub.subscribe(rid, 0)
    assert await drain(again, until_seq=1) == [1]


async def test_terminal_event_ends_delivery(hub: EventHub, log: AsyncEventLog, rids: Any) -> None:
    rid = rids()
    sub = await hub.subscribe(rid, 0)
    await log.append(rid, [ev(rid, 1), ev(rid, 2, terminal=True)])
    assert await drain(sub, until_seq=2) == [1, 2]
    # A (misbehaving) later entry is never delivered after the terminal one.
    await log.append(rid, [ev(rid, 3)])
    await nothing_more(sub)
    assert sub.done


async def test_subscribing_to_a_finished_log_replays_it_and_ends(
    hub: EventHub, log: AsyncEventLog, rids: Any
) -> None:
    rid = rids()
    await log.append(rid, [ev(rid, 1), ev(rid, 2), ev(rid, 3, terminal=True)], final=True)
    sub = await hub.subscribe(rid, 1)
    assert sub.done
    assert [sub.queue.get_nowait().seq for _ in range(sub.queue.qsize())] == [2, 3]


async def test_a_bad_after_seq_does_not_poison_other_subscriptions(
    hub: EventHub, log: AsyncEventLog, rids: Any
) -> None:
    bad, good = rids(), rids()
    with contextlib.suppress(Exception):  # refusing it is fine; breaking the hub is not
        await hub.subscribe(bad, 2**64)
    sub = await hub.subscribe(good, 0)
    await log.append(good, [ev(good, 1)])
    assert await drain(sub, until_seq=1, timeout=3) == [1]
