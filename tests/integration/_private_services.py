"""Private Redis and Postgres servers for fault tests that restart them.

The machine's shared Redis and Postgres serve other engineers and CI: they are
never restarted. A test that needs to restart one starts its own instance on a
free port in a temporary directory (no persistence: a restarted Redis comes
back EMPTY, like a crashed cache node without AOF) and points a dedicated
`Stack` at it.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psycopg
import redis

from tests.stack import LOGS, ROOT, free_port


def _log(name: str) -> int:
    LOGS.mkdir(parents=True, exist_ok=True)
    return os.open(LOGS / f"{name}.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)


class PrivateRedis:
    """`redis-server` on a free port, without persistence; restartable in place."""

    def __init__(self) -> None:
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="arbor-redis-"))
        self.popen: subprocess.Popen[bytes] | None = None

    def url(self, db: int = 0) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    def start(self, timeout: float = 10.0) -> None:
        fd = _log(f"private-redis-{self.port}")
        self.popen = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--daemonize", "no", "--dir", str(self.dir)],
            stdout=fd, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        os.close(fd)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if redis.Redis.from_url(self.url(), socket_timeout=1).ping():
                    return
            except redis.RedisError:
                time.sleep(0.05)
        raise RuntimeError(f"private redis on {self.port} did not start")

    def kill(self) -> None:
        """Die without a goodbye (SIGKILL): every key is gone on the next start."""
        if self.popen is not None and self.popen.poll() is None:
            self.popen.send_signal(signal.SIGKILL)
            self.popen.wait(10)

    def close(self) -> None:
        self.kill()
        shutil.rmtree(self.dir, ignore_errors=True)


def _pg_bin(name: str) -> str:
    dirs = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda d: int(d.split("/")[-2]))
    if not dirs:
        raise RuntimeError("no PostgreSQL server binaries under /usr/lib/postgresql")
    return f"{dirs[-1]}/{name}"


class PrivatePostgres:
    """A throwaway Postgres cluster (trust auth) run as the `postgres` OS user."""

    def __init__(self) -> None:
        self.port = free_port()
        self.root = Path(tempfile.mkdtemp(prefix="arbor-pg-"))
        self.data = self.root / "data"
        self.sock = self.root / "sock"
        self.logfile = LOGS / f"private-postgres-{self.port}.log"

    def _as_postgres(self, *argv: str, timeout: float = 60.0) -> None:
        prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        subprocess.run([*prefix, *argv], check=True, timeout=timeout, capture_output=True)

    def init(self) -> None:
        self.sock.mkdir()
        os.chmod(self.root, 0o777)
        os.chmod(self.sock, 0o777)
        LOGS.mkdir(parents=True, exist_ok=True)
        self.logfile.touch()
        os.chmod(self.logfile, 0o666)
        self._as_postgres(
            _pg_bin("initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres",
            "--no-sync", "-E", "UTF8",
        )  # fmt: skip

    def start(self) -> None:
        self._as_postgres(
            _pg_bin("pg_ctl"), "-D", str(self.data), "-l", str(self.logfile), "-w", "-t", "30",
            "-o", f"-p {self.port} -k {self.sock} -c listen_addresses=127.0.0.1 -c fsync=off",
            "start",
        )  # fmt: skip

    def stop(self, mode: str = "fast") -> None:
        """`fast` cuts every client's connection, like a restart by an operator."""
        self._as_postgres(_pg_bin("pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop")

    def url(self, db: str = "arbor") -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/{db}"

    def create_database(self, name: str = "arbor") -> None:
        with psycopg.connect(self.url("postgres"), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')

    def query(self, sql: str, *params: object) -> list[tuple[object, ...]]:
        with psycopg.connect(self.url()) as conn:
            return conn.execute(sql, params).fetchall()  # type: ignore[arg-type]

    def close(self) -> None:
        with contextlib.suppress(Exception):  # already stopped, or never started
            self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)


def manage(env: dict[str, str], *argv: str, timeout: float = 120.0) -> str:
    """Run `manage.py` with the given environment; return its stdout."""
    done = subprocess.run(
        [sys.executable, "manage.py", *argv],
        cwd=ROOT,
        env=env,
        check=False,
        timeout=timeout,
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        raise RuntimeError(f"manage.py {argv[0]} failed:\n{done.stdout}\n{done.stderr}")
    return done.stdout


SEED = """
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.test import Client
from webapp.serving import services

user = get_user_model().objects.create_user(username="alice", password="alice-password")
user.groups.add(Group.objects.get_or_create(name="user")[0])
model = services.upsert_llm(
    slug="deepseek-r1", name="DeepSeek-R1", served_model_name="deepseek-ai/DeepSeek-R1",
    context_length=163_840, default_params={"temperature": 0.6, "top_p": 0.95, "max_tokens": 32_768},
    is_default=True,
)
services.ensure_endpoint(llm=model, base_url=EMULATOR_URL)
client = Client()
client.force_login(user)
print("SESSION=" + client.cookies["sessionid"].value)
"""


def seed(env: dict[str, str], *, emulator_url: str) -> str:
    """Create alice, the default model on `emulator_url`; return alice's session id."""
    out = manage(env, "shell", "-c", f"EMULATOR_URL = {emulator_url!r}\n" + SEED)
    return next(line for line in out.splitlines() if line.startswith("SESSION="))[8:]
