"""Live tails of event logs, multiplexed: one blocking XREAD per process.

Every socket that follows a live response gets a `Subscription`. Instead of one
blocking Redis read per socket, the process keeps one `EventHub` whose single
connection blocks in `XREAD` over all followed streams at once, and hands each
new entry to the subscriptions of its stream. When the set of streams changes,
the hub's read is interrupted with `CLIENT UNBLOCK` from a second connection.

A subscription first fills itself from the log (everything after its
`after_seq`), then receives live entries; it delivers strictly in seq order,
exactly once, buffering anything that arrives ahead of a gap.
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass, field
from typing import Any

import redis.asyncio as aredis
from django.conf import settings
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError

from webapp.chat.eventlog import KEY_PREFIX, entry_id, stream_key
from webapp.chat.events import TERMINAL_TYPES, Event

log = logging.getLogger(__name__)

BLOCK_MS = 5000
FILL_PAGE = 1000


@dataclass(eq=False)
class Frame:
    """An event with its JSON text, decoded once per process and sent as is."""

    seq: int
    type: str
    raw: str

    @property
    def terminal(self) -> bool:
        return self.type in TERMINAL_TYPES

    @classmethod
    def from_raw(cls, raw: str | bytes) -> Frame:
        text = raw.decode() if isinstance(raw, bytes) else raw
        event: Event = json.loads(text)
        return cls(seq=int(event["seq"]), type=str(event["type"]), raw=text)


@dataclass(eq=False)
class Subscription:
    response_id: str
    last: int
    queue: asyncio.Queue[Frame] = field(default_factory=asyncio.Queue)
    done: bool = False
    _pending: dict[int, Frame] = field(default_factory=dict)

    def offer(self, frame: Frame) -> None:
        """Take a frame from the log; deliver it once its predecessors are delivered."""
        if self.done or frame.seq <= self.last:
            return
        self._pending[frame.seq] = frame
        while (nxt := self._pending.pop(self.last + 1, None)) is not None:
            self.last = nxt.seq
            self.queue.put_nowait(nxt)
            if nxt.terminal:
                self.done = True
                self._pending.clear()
                return


class EventHub:
    def __init__(self, redis_url: str) -> None:
        # redis-py's default 5 s socket timeout would cut the blocking read short.
        self._reader = aredis.Redis.from_url(
            redis_url, single_connection_client=True, socket_timeout=BLOCK_MS / 1000 + 10
        )
        self._control = aredis.Redis.from_url(redis_url)
        self._reader_id: int | None = None
        self._refresh_id = True
        self._subs: dict[str, set[Subscription]] = {}
        self._cursor: dict[str, int] = {}
        self._changes = 0
        self._changes_seen = -1
        self._has_work = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def subscribe(self, response_id: str, after_seq: int) -> Subscription:
        """Follow a response's log from after `after_seq` on."""
        sub = Subscription(response_id=response_id, last=after_seq)
        self._subs.setdefault(response_id, set()).add(sub)
        if response_id not in self._cursor:
            self._cursor[response_id] = after_seq
            await self._changed()
        try:
            await self._fill(sub)
        except BaseException:
            # Never leave a cursor behind that would break the shared read.
            self.unsubscribe(sub)
            raise
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        subs = self._subs.get(sub.response_id)
        if subs is None:
            return
        subs.discard(sub)
        if not subs:
            # The hub drops the stream from its read on its next round.
            del self._subs[sub.response_id]
            self._cursor.pop(sub.response_id, None)
            self._changes += 1

    async def _fill(self, sub: Subscription) -> None:
        after = sub.last
        while True:
            entries: Any = await self._xrange(sub.response_id, after)
            for _entry_id, fields in entries:
                frame = Frame.from_raw(fields[b"e"])
                sub.offer(frame)
                after = frame.seq
            if len(entries) < FILL_PAGE or sub.done:
                return

    async def _xrange(self, response_id: str, after: int) -> Any:
        # Pooled connections opened before a Redis restart fail once each and are
        # then dropped by the pool: retry on a fresh one before failing the
        # subscription (issue 7, faults).
        for attempt in range(3):
            try:
                return await self._control.xrange(
                    stream_key(response_id), min=f"({entry_id(after)}", max="+", count=FILL_PAGE
                )
            except RedisConnectionError:
                if attempt == 2:
                    raise
                await asyncio.sleep(0.05)

    async def _changed(self) -> None:
        """Make the hub's blocking read pick up the new set of streams."""
        self._changes += 1
        wanted = self._changes
        self._has_work.set()
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="arbor-event-hub")
            return
        # Unblocking only works once the read is registered at Redis; retry
        # briefly until the hub has either been unblocked or started a new round.
        for _ in range(200):
            if self._changes_seen >= wanted:
                return
            try:
                if self._reader_id is not None and await self._control.client_unblock(
                    self._reader_id
                ):
                    return
            except RedisError as exc:
                # A pooled connection from before a Redis restart (issue 7, faults):
                # the pool drops it and the next try takes a fresh one. A failed
                # wake-up must not fail the subscription: at worst the hub picks
                # the stream up when its blocking read times out (BLOCK_MS).
                log.warning("event hub wake-up failed: %s", exc)
            await asyncio.sleep(0.001)
        # Never woken: the reader may have reconnected (new client id) without the
        # hub noticing; look the id up again before the next round.
        self._refresh_id = True

    async def _run(self) -> None:
        self._refresh_id = True
        while True:
            try:
                if self._refresh_id:
                    # After a failed read the connection is a new one (Redis may have
                    # restarted), and so is its id, which CLIENT UNBLOCK needs.
                    self._reader_id = await self._reader.client_id()
                    self._refresh_id = False
                await self._round()
            except asyncio.CancelledError:
                raise
            except Exception:  # the hub must outlive any single bad read
                log.exception("event hub read failed; retrying")
                self._refresh_id = True
                await asyncio.sleep(0.5)

    async def _round(self) -> None:
        if not self._cursor:
            self._has_work.clear()
            self._changes_seen = self._changes
            await self._has_work.wait()
            return
        self._changes_seen = self._changes
        streams: Any = {stream_key(rid): entry_id(seq) for rid, seq in self._cursor.items()}
        result: Any = await self._reader.xread(streams, block=BLOCK_MS, count=FILL_PAGE)
        for key, entries in result or []:
            rid = (key.decode() if isinstance(key, bytes) else key).removeprefix(KEY_PREFIX)
            subs = self._subs.get(rid)
            if not subs:
                continue
            for _entry_id, fields in entries:
                frame = Frame.from_raw(fields[b"e"])
                if frame.seq > self._cursor.get(rid, 0):
                    self._cursor[rid] = frame.seq
                for sub in list(subs):
                    sub.offer(frame)


_hubs: dict[asyncio.AbstractEventLoop, EventHub] = {}


def get_hub() -> EventHub:
    """Return this event loop's hub (one per process in Daphne)."""
    loop = asyncio.get_running_loop()
    hub = _hubs.get(loop)
    if hub is None:
        for old in [lp for lp in _hubs if lp.is_closed()]:
            del _hubs[old]
        hub = _hubs[loop] = EventHub(settings.REDIS_URL)
    return hub
