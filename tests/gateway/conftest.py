"""Fixtures for the gateway tests: an API key and the official `openai` SDK against the stack."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.conftest import adb
from tests.stack import Stack


@pytest.fixture
async def alice_key(alice: Any) -> str:
    from webapp.accounts.services import create_api_key

    _key, raw = await adb(create_api_key, user=alice, name="tests")
    return str(raw)


@pytest.fixture
async def sdk(live: Stack, alice_key: str, llm: Any) -> AsyncIterator[Any]:
    """`openai.AsyncOpenAI` pointed at the stack's /v1 (no retries: tests see every error)."""
    import openai

    client = openai.AsyncOpenAI(
        api_key=alice_key, base_url=live.web_url + "/v1", max_retries=0, timeout=60
    )
    try:
        yield client
    finally:
        await client.close()
