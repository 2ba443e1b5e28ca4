"""Fixtures: the emulator served by a real uvicorn on a free port (streaming, abort, stall)."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import uvicorn

from inference.emulator import EmulatorConfig, create_app

REPO_ROOT = Path(__file__).resolve().parents[2]
FIXTURES = REPO_ROOT.parent / "shared" / "fixtures"
GSM8K = FIXTURES / "r1-traces" / "gsm8k.jsonl"
API_KEY = "sk-test-secret-key-123"


@dataclass
class LiveEmulator:
    """A running emulator: its base URL and a sync client for test controls."""

    url: str
    config: EmulatorConfig

    def control(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=5)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def serve(config: EmulatorConfig) -> Iterator[LiveEmulator]:
    """Run the emulator on uvicorn in a background thread."""
    port = _free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(config),
            host="127.0.0.1",
            port=port,
            log_level="critical",
            lifespan="off",
            timeout_graceful_shutdown=1,
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError("emulator did not start")
        time.sleep(0.01)
    try:
        yield LiveEmulator(f"http://127.0.0.1:{port}", config)
    finally:
        server.should_exit = True
        thread.join(5)


@pytest.fixture(scope="session")
def live() -> Iterator[LiveEmulator]:
    """A fast emulator (no TTFT, very high tps) shared by the whole session."""
    config = EmulatorConfig(ttft_ms=0, tokens_per_second=0, enable_metrics=True)
    with serve(config) as emu:
        yield emu


@pytest.fixture
def emu(live: LiveEmulator) -> LiveEmulator:
    """The shared emulator with its counters and queued faults cleared."""
    with live.control() as c:
        c.post("/emulator/reset").raise_for_status()
    return live


@pytest.fixture(scope="session")
def live_auth() -> Iterator[LiveEmulator]:
    """An emulator that requires an API key."""
    config = EmulatorConfig(ttft_ms=0, tokens_per_second=0, api_key=API_KEY)
    with serve(config) as emu:
        yield emu


@pytest.fixture(scope="session")
def live_old_shape() -> Iterator[LiveEmulator]:
    """An emulator speaking the <=0.5.10 pydantic chunk shape."""
    config = EmulatorConfig(ttft_ms=0, tokens_per_second=0, chunk_shape="0.5.10")
    with serve(config) as emu:
        yield emu
