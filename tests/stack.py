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
    log_offset: int = 0

    @property
    def log_path(self) -> Path:
        return LOGS / f"{self.name}.log"

    def wait_for_log(self, text: str, *, timeout: float = 90.0) -> None:
        """Wait until this run of the process has written `text` to its log."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.popen is not None and self.popen.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.popen.returncode}")
            with open(self.log_path, "rb") as f:
                f.seek(self.log_offset)
                if text.encode() in f.read():
                    return
            time.sleep(0.1)
        raise RuntimeError(f"{self.name} did not log {text!r} in {timeout} s")

    def start(self) -> None:
        LOGS.mkdir(parents=True, exist_ok=True)
        self.log_offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        log = open(self.log_path, "ab")  # noqa: SIM115 - lives as long as the process
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
    log_prefix: str = ""  # a second stack's logs go to .run/test-logs/<prefix><name>.log

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
        proc = Proc(self.log_prefix + name, argv, self.env)
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
        self.start_web()
        wait_http(self.emulator_url + "/health", proc=self.procs["emulator"].popen)
        wait_http(self.web_url + "/healthz", proc=self.procs["web"].popen)

    def start_web(self, name: str = "web", port: int | None = None) -> Proc:
        """Start a Daphne process (`web` on `web_port` by default; more for scale-out tests).

        Returns at once; wait for `http://127.0.0.1:<port>/healthz` before using it.
        """
        proc = self._proc(
            name,
            [
                sys.executable,
                "-m",
                "daphne",
                "-b",
                "127.0.0.1",
                "-p",
                str(port or self.web_port),
                "webapp.asgi:application",
            ],
        )
        proc.start()
        return proc

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
                "generation,batch,celery",
                "--loglevel",
                "INFO",
                "--without-gossip",
                "--without-mingle",
                "--hostname",
                f"{name}@%h",
            ],
        )
        proc.start()
        # A worker still booting would leave the first chat of a test waiting in the queue.
        proc.wait_for_log(" ready.")
        return proc

    def stop(self) -> None:
        for proc in reversed(list(self.procs.values())):
            proc.stop()
