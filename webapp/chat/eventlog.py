"""The per-response event log: one Redis Stream per response.

Entry ids are `0-<seq>`, chosen by the single writer of a response (the worker
that claimed it, or a service that ended it before any worker did). Redis
refuses an id that is not above the stream's top, so a replayed write can never
duplicate or reorder events. Each entry has one field, `e`, the event as JSON.

Readers: `read_after` for one-shot reads; `EventHub` (hub.py) for live tails.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any

import redis
import redis.asyncio as aredis
from django.conf import settings

from webapp.chat.events import Event

KEY_PREFIX = "arbor:events:"
CANCEL_PREFIX = "arbor:cancel:"
# Until a response ends its log is kept at least this long; then ARBOR_EVENT_LOG_TTL_S.
LIVE_TTL_S = 24 * 3600


def stream_key(response_id: str) -> str:
    return f"{KEY_PREFIX}{response_id}"


def cancel_key(response_id: str) -> str:
    return f"{CANCEL_PREFIX}{response_id}"


def encode(event: Event) -> str:
    return json.dumps(event, ensure_ascii=False, separators=(",", ":"))


def decode_entries(entries: Any) -> list[Event]:
    """Decode XRANGE/XREAD entries (redis-py returns bytes keys and values)."""
    return [json.loads(fields[b"e"]) for _entry_id, fields in entries or []]


def entry_id(seq: int) -> str:
    return f"0-{seq}"


# --- sync side (services, reaper) -------------------------------------------------

_sync_client: redis.Redis | None = None


def sync_redis() -> redis.Redis:
    """Return the process-wide Redis client (created on first use, not at import)."""
    global _sync_client
    if _sync_client is None:
        _sync_client = redis.Redis.from_url(settings.REDIS_URL)
    return _sync_client


def append_sync(response_id: str, events: list[Event], *, final: bool = False) -> None:
    """Append already-numbered events; with `final`, start the log's expiry clock."""
    client = sync_redis()
    key = stream_key(response_id)
    pipe = client.pipeline(transaction=False)
    for event in events:
        pipe.xadd(key, {"e": encode(event)}, id=entry_id(event["seq"]))
    pipe.expire(key, settings.ARBOR_EVENT_LOG_TTL_S if final else LIVE_TTL_S)
    pipe.execute()


def read_all_sync(response_id: str) -> list[Event]:
    return decode_entries(sync_redis().xrange(stream_key(response_id)))


def request_cancel_sync(response_id: str) -> None:
    sync_redis().set(cancel_key(response_id), b"1", ex=LIVE_TTL_S)


# --- async side (worker, consumers) ------------------------------------------------


@dataclass
class _Append:
    response_id: str
    events: list[Event]
    final: bool
    set_ttl: bool
    check_cancel: bool
    done: asyncio.Future[bool]


class AsyncEventLog:
    """Async writer and reader for event logs, over one shared connection pool.

    Appends are batched: every append requested during one pass of the event loop
    (by any of the process's streams, when they share this object) goes out in one
    pipeline, so a worker holding many streams pays one round trip per pass rather
    than one per stream. A busier loop makes bigger batches. Each append still
    succeeds or fails on its own (its commands' replies are checked separately).
    """

    def __init__(self, client: aredis.Redis) -> None:
        self.redis = client
        self._pending: list[_Append] = []
        self._flushes: set[asyncio.Task[None]] = set()

    async def append(
        self,
        response_id: str,
        events: list[Event],
        *,
        final: bool = False,
        set_ttl: bool = True,
        check_cancel: bool = True,
    ) -> bool:
        """Append numbered events; return whether a cancel was requested (if checked).

        The cancel flag is read in the same round trip, so checking it between
        chunks costs no extra round trip. `final` starts the log's expiry clock.
        A Redis error (the connection's, or a reply to one of these commands) is
        raised to this caller only.
        """
        loop = asyncio.get_running_loop()
        item = _Append(response_id, events, final, set_ttl, check_cancel, loop.create_future())
        self._pending.append(item)
        if len(self._pending) == 1:
            # After the callbacks already ready in this pass: they may append too.
            loop.call_soon(self._flush)
        return await item.done

    def _flush(self) -> None:
        batch, self._pending = self._pending, []
        if not batch:
            return
        task = asyncio.get_running_loop().create_task(self._execute(batch))
        self._flushes.add(task)
        task.add_done_callback(self._flushes.discard)

    async def _execute(self, batch: list[_Append]) -> None:
        pipe = self.redis.pipeline(transaction=False)
        spans: list[tuple[int, int, _Append]] = []
        for item in batch:
            start = len(pipe)
            key = stream_key(item.response_id)
            for event in item.events:
                pipe.xadd(key, {"e": encode(event)}, id=entry_id(event["seq"]))
            if item.final or item.set_ttl:
                pipe.expire(key, settings.ARBOR_EVENT_LOG_TTL_S if item.final else LIVE_TTL_S)
            if item.check_cancel:
                pipe.exists(cancel_key(item.response_id))
            spans.append((start, len(pipe), item))
        try:
            results = await pipe.execute(raise_on_error=False)
        except asyncio.CancelledError:
            for item in batch:
                item.done.cancel()
            raise
        except Exception as exc:  # the connection failed: every append in it did
            for item in batch:
                if not item.done.done():
                    item.done.set_exception(exc)
            return
        for start, end, item in spans:
            if item.done.done():  # its caller was cancelled meanwhile
                continue
            replies = results[start:end]
            error = next((r for r in replies if isinstance(r, Exception)), None)
            if error is not None:
                item.done.set_exception(error)
            else:
                item.done.set_result(bool(replies[-1]) if item.check_cancel else False)

    async def last_seq(self, response_id: str) -> int:
        """The seq of the log's last entry; 0 if the log is empty or gone.

        The writer uses it to complete a log after a failed append (a Redis restart
        may have lost entries it had appended, see generation.Generation._push).
        """
        entries: Any = await self.redis.xrevrange(stream_key(response_id), count=1)
        if not entries:
            return 0
        top = entries[0][0]
        return int((top.decode() if isinstance(top, bytes) else str(top)).split("-", 1)[1])

    async def cancel_requested(self, response_id: str) -> bool:
        return bool(await self.redis.exists(cancel_key(response_id)))

    async def read_after(self, response_id: str, after_seq: int, count: int = 1000) -> list[Event]:
        entries = await self.redis.xrange(
            stream_key(response_id), min=f"({entry_id(after_seq)}", max="+", count=count
        )
        return decode_entries(entries)
