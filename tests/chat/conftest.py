"""Fixtures for the chat unit tests: no broker, generous limits, small helpers."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from unittest import mock

import pytest

from webapp.chat import eventlog


@pytest.fixture(autouse=True)
def enqueued() -> Iterator[mock.MagicMock]:
    """Patch the generation task's `delay` so nothing is ever sent to a broker."""
    from webapp.chat import tasks

    with mock.patch.object(tasks.generate_response, "delay") as delay:
        yield delay


@pytest.fixture
def limits(settings: Any) -> Any:
    """Generous admission limits; tests that check a limit lower them again."""
    settings.ARBOR_DEFAULT_REQUESTS_PER_MINUTE = 10_000
    settings.ARBOR_DEFAULT_CONCURRENT_STREAMS = 1_000
    return settings


def redis_log(response_id: str) -> list[dict[str, Any]]:
    return eventlog.read_all_sync(str(response_id))
