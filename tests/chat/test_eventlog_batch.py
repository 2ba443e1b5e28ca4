"""AsyncEventLog batches the appends of many streams into one pipeline, each judged alone."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis.asyncio as aredis
from django.conf import settings
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError

from webapp.chat import eventlog
from webapp.chat.eventlog import AsyncEventLog, stream_key


def ev(rid: str, seq: int) -> dict[str, Any]:
    return {"type": "content.delta", "text": f"t{seq}", "response_id": rid, "seq": seq}


@pytest.fixture
async def redis_client() -> AsyncIterator[aredis.Redis]:
    client = aredis.Redis.from_url(settings.REDIS_URL)
    yield client
    await client.aclose()


@pytest.fixture
async def rids(redis_client: aredis.Redis) -> AsyncIterator[list[str]]:
    made = [str(uuid.uuid4()) for _ in range(3)]
    yield made
    await redis_client.delete(*(stream_key(r) for r in made), *map(eventlog.cancel_key, made))


@pytest.fixture
def pipelines(redis_client: aredis.Redis, monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Record every pipeline the log opens."""
    made: list[Any] = []
    real = redis_client.pipeline

    def spy(*args: Any, **kwargs: Any) -> Any:
        pipe = real(*args, **kwargs)
        made.append(pipe)
        return pipe

    monkeypatch.setattr(redis_client, "pipeline", spy)
    return made


async def test_appends_of_one_pass_share_one_round_trip(
    redis_client: aredis.Redis, rids: list[str], pipelines: list[Any]
) -> None:
    log = AsyncEventLog(redis_client)
    await redis_client.set(eventlog.cancel_key(rids[1]), b"1")
    cancels = await asyncio.gather(
        log.append(rids[0], [ev(rids[0], 1), ev(rids[0], 2)]),
        log.append(rids[1], [ev(rids[1], 1)]),
        log.append(rids[2], [ev(rids[2], 1)], check_cancel=False),
    )
    assert len(pipelines) == 1
    # Each caller gets its own stream's cancel flag.
    assert cancels == [False, True, False]
    for rid, n in zip(rids, (2, 1, 1), strict=True):
        assert [
            e["seq"] for e in eventlog.decode_entries(await redis_client.xrange(stream_key(rid)))
        ] == list(range(1, n + 1))
    # The next pass is a new batch, in order after the first.
    await log.append(rids[0], [ev(rids[0], 3)])
    assert len(pipelines) == 2


async def test_a_failed_append_fails_only_its_caller(
    redis_client: aredis.Redis, rids: list[str]
) -> None:
    log = AsyncEventLog(redis_client)
    await log.append(rids[0], [ev(rids[0], 1), ev(rids[0], 2)])
    results = await asyncio.gather(
        # Seq 2 again: Redis refuses an id not above the stream's top.
        log.append(rids[0], [ev(rids[0], 2)]),
        log.append(rids[1], [ev(rids[1], 1)]),
        return_exceptions=True,
    )
    assert isinstance(results[0], ResponseError)
    assert results[1] is False
    assert len(await redis_client.xrange(stream_key(rids[1]))) == 1


async def test_a_broken_connection_fails_every_append_of_the_batch(
    redis_client: aredis.Redis, rids: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    log = AsyncEventLog(redis_client)

    async def broken(self: Any, *args: Any, **kwargs: Any) -> Any:
        raise RedisConnectionError("gone")

    monkeypatch.setattr(aredis.client.Pipeline, "execute", broken)
    results = await asyncio.gather(
        log.append(rids[0], [ev(rids[0], 1)]),
        log.append(rids[1], [ev(rids[1], 1)]),
        return_exceptions=True,
    )
    assert all(isinstance(r, RedisConnectionError) for r in results)
