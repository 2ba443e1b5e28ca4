"""Shared fixtures: personas, the default model, and the real stack of processes."""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis
import websockets
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.test import Client

from tests.stack import Stack

User = get_user_model()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Run the browser tests last (see tests/e2e/conftest.py)."""
    items.sort(key=lambda item: "/e2e/" in str(item.path))


# --- personas ------------------------------------------------------------------------


def _make_user(username: str, *, group: str | None = "user", staff: bool = False) -> Any:
    user = User.objects.create_user(username=username, password=f"{username}-password")
    user.is_staff = user.is_superuser = staff
    user.save()
    if group:
        user.groups.add(Group.objects.get_or_create(name=group)[0])
    return user


@pytest.fixture
def alice(db: None) -> Any:
    return _make_user("alice")


@pytest.fixture
def bob(db: None) -> Any:
    return _make_user("bob")


@pytest.fixture
def annotator(db: None) -> Any:
    return _make_user("annotator", group="annotator")


@pytest.fixture
def admin_user(db: None) -> Any:
    return _make_user("admin", group=None, staff=True)


async def adb(fn: Any, /, *args: Any, **kwargs: Any) -> Any:
    """Run ORM code from an async test in a thread, closing that thread's connection after."""
    from django.db import connections

    def call() -> Any:
        try:
            return fn(*args, **kwargs)
        finally:
            connections.close_all()

    return await asyncio.to_thread(call)


def session_cookie(user: Any) -> str:
    """Log the user in and return the session id (stored in Postgres, valid for Daphne)."""
    client = Client()
    client.force_login(user)
    return client.cookies[settings.SESSION_COOKIE_NAME].value


# --- the model ----------------------------------------------------------------------


@pytest.fixture
def llm(db: None, request: pytest.FixtureRequest) -> Any:
    """The default model, served by the test stack's emulator when one runs."""
    from webapp.serving import services

    model = services.upsert_llm(
        slug="deepseek-r1",
        name="DeepSeek-R1",
        served_model_name="deepseek-ai/DeepSeek-R1",
        context_length=163_840,
        default_params={"temperature": 0.6, "top_p": 0.95, "max_tokens": 32_768},
        is_default=True,
    )
    url = os.environ.get("ARBOR_TEST_EMULATOR_URL", "http://127.0.0.1:9")
    services.ensure_endpoint(llm=model, base_url=url)
    return model


# --- Redis ----------------------------------------------------------------------------


@pytest.fixture(scope="session", autouse=True)
def _clean_redis() -> None:
    """Start from empty test Redis databases (the app's and the broker's)."""
    for url in (settings.REDIS_URL, settings.CELERY_BROKER_URL):
        redis.Redis.from_url(url).flushdb()


# --- the stack of real processes --------------------------------------------------------


@pytest.fixture(scope="session")
def stack(django_db_setup: None, django_db_blocker: Any) -> Iterator[Stack]:
    """Run the emulator, a Celery worker and Daphne against the test database."""
    db = settings.DATABASES["default"]
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "DATABASE_URL": f"postgres://{db['USER'] or ''}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}",
        "REDIS_URL": settings.REDIS_URL,
        "CELERY_BROKER_URL": settings.CELERY_BROKER_URL,
        "ARBOR_ENGINE_STALL_TIMEOUT_S": "3",
        "ARBOR_HEARTBEAT_TIMEOUT_S": "5",
        "ARBOR_DEFAULT_REQUESTS_PER_MINUTE": "1000",
        "ARBOR_DEFAULT_CONCURRENT_STREAMS": "50",
        "PYTHONUNBUFFERED": "1",
        "ARBOR_DB_POOL": "true",
    }
    s = Stack(env=env)
    os.environ["ARBOR_TEST_EMULATOR_URL"] = s.emulator_url
    try:
        # Inside the try: a process that fails to come up must not leave the others running.
        s.start()
        yield s
    finally:
        s.stop()
        os.environ.pop("ARBOR_TEST_EMULATOR_URL", None)


@pytest.fixture
def live(stack: Stack, transactional_db: None, settings: Any) -> Iterator[Stack]:
    """The running stack, with the test's data committed so its processes see it."""
    settings.ARBOR_DEFAULT_REQUESTS_PER_MINUTE = 1000
    settings.ARBOR_DEFAULT_CONCURRENT_STREAMS = 50
    settings.ARBOR_HEARTBEAT_TIMEOUT_S = float(stack.env["ARBOR_HEARTBEAT_TIMEOUT_S"])
    yield stack
    _quiesce()


def _quiesce(timeout: float = 15.0) -> None:
    """Stop what a test left generating before the database is flushed.

    The flush truncates every table; a worker still writing to them at that
    moment can deadlock with it. Cancel every live response (the worker aborts
    the engine request and writes its final state) and wait for them to end.
    """
    from django.db import connections

    from webapp.chat import eventlog
    from webapp.chat.models import Response

    live_statuses = [Response.Status.QUEUED, Response.Status.RUNNING]
    try:
        for response_id in Response.objects.filter(status__in=live_statuses).values_list(
            "pk", flat=True
        ):
            eventlog.request_cancel_sync(str(response_id))
        Response.objects.filter(status=Response.Status.QUEUED).update(
            status=Response.Status.CANCELLED
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not Response.objects.filter(status__in=live_statuses).exists():
                break
            time.sleep(0.1)
        # A dead worker's response (e.g. after a kill test) never ends by itself.
        Response.objects.filter(status__in=live_statuses).update(status=Response.Status.FAILED)
    finally:
        connections.close_all()


# --- a WebSocket client ------------------------------------------------------------------


class WsClient:
    """A protocol client for tests: send frames, read until a condition."""

    def __init__(self, conn: websockets.ClientConnection) -> None:
        self.conn = conn
        self.frames: list[dict[str, Any]] = []

    async def send(self, frame: dict[str, Any] | str) -> None:
        await self.conn.send(frame if isinstance(frame, str) else json.dumps(frame))

    async def recv(self, timeout: float = 20.0) -> dict[str, Any]:
        frame = json.loads(await asyncio.wait_for(self.conn.recv(), timeout))
        self.frames.append(frame)
        return frame

    async def until(self, pred: Any, timeout: float = 30.0) -> dict[str, Any]:
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            left = deadline - asyncio.get_running_loop().time()
            if left <= 0:
                raise TimeoutError("no matching frame")
            frame = await self.recv(timeout=left)
            if pred(frame):
                return frame

    async def chat(self, content: str, **fields: Any) -> dict[str, Any]:
        await self.send({"type": "chat.send", "content": content, **fields})
        return await self.until(lambda f: f["type"] in ("response.created", "error"))

    async def collect(self, response_id: str, timeout: float = 60.0) -> list[dict[str, Any]]:
        """Read this response's events until its terminal one (from frames already seen too)."""
        terminal = {"response.completed", "response.failed", "response.cancelled"}
        events = [f for f in self.frames if f.get("response_id") == response_id and "seq" in f]
        if not any(e["type"] in terminal for e in events):
            await self.until(
                lambda f: f.get("response_id") == response_id and f["type"] in terminal, timeout
            )
            events = [f for f in self.frames if f.get("response_id") == response_id and "seq" in f]
        return events


async def ws_connect(stack: Stack, user: Any | None, *, origin: str | None = None) -> WsClient:
    headers = {"Origin": origin or stack.web_url}
    if user is not None:
        sid = await adb(session_cookie, user)
        headers["Cookie"] = f"{settings.SESSION_COOKIE_NAME}={sid}"
    conn = await websockets.connect(stack.ws_url, additional_headers=headers, max_size=2**24)
    return WsClient(conn)
