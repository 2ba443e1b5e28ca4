"""Start and stop the real processes of the stack for integration and browser tests."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
LOGS = ROOT / ".run" / "test-logs"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_http(
    url: str, *, timeout: float = 30.0, proc: subprocess.Popen[bytes] | None = None
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process for {url} exited with {proc.returncode}")
        try:
            if httpx.get(url, timeout=1.0).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not come up in {timeout} s")


@dataclass
class Proc:
    name: str
    argv: Sequence[str]
    env: dict[str, str]
    popen: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        LOGS.mkdir(parents=True, exist_ok=True)
        log = open(LOGS / f"{self.name}.log", "ab")  # noqa: SIM115 - lives as long as the process
        self.popen = subprocess.Popen(
            list(self.argv),
            cwd=ROOT,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10.0) -> None:
        if self.popen is None or self.popen.poll() is not None:
            return
        os.killpg(self.popen.pid, sig)
        try:
            self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.popen.pid, signal.SIGKILL)
            self.popen.wait(5)

    def kill(self) -> None:
        """Die like a crashed process: no cleanup, no goodbye."""
        self.stop(signal.SIGKILL)


@dataclass
class Stack:
    env: dict[str, str]
    web_port: int = field(default_factory=free_port)
    emulator_port: int = field(default_factory=free_port)
    procs: dict[str, Proc] = field(default_factory=dict)

    @property
    def web_url(self) -> str:
        return f"http://127.0.0.1:{self.web_port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.web_port}/ws/chat/"

    @property
    def emulator_url(self) -> str:
        return f"http://127.0.0.1:{self.emulator_port}"

    def _proc(self, name: str, argv: list[str]) -> Proc:
        proc = Proc(name, argv, self.env)
        self.procs[name] = proc
        return proc

    def start(self) -> None:
        py = sys.executable
        self._proc(
            "emulator",
            [
                py,
                "-m",
                "inference.emulator",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.emulator_port),
                "--tps",
                "400",
                "--ttft-ms",
                "50",
                "--enable-metrics",
            ],
        ).start()
        self.start_worker()
        self._proc(
            "web",
            [
                py,
                "-m",
                "daphne",
                "-b",
                "127.0.0.1",
                "-p",
                str(self.web_port),
                "webapp.asgi:application",
            ],
        ).start()
        wait_http(self.emulator_url + "/health", proc=self.procs["emulator"].popen)
        wait_http(self.web_url + "/healthz", proc=self.procs["web"].popen)

    def start_worker(self, name: str = "worker") -> Proc:
        proc = self._proc(
            name,
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "webapp",
                "worker",
                "--pool",
                "threads",
                "--concurrency",
                "32",
                "--queues",
                "generation,celery",
                "--loglevel",
                "INFO",
                "--without-gossip",
                "--without-mingle",
                "--hostname",
                f"{name}@%h",
            ],
        )
        proc.start()
        return proc

    def stop(self) -> None:
        for proc in reversed(list(self.procs.values())):
            proc.stop()
