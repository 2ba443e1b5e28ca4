"""Streaming overhead of Arbor over the bare engine: added TTFT, delivery lag, Postgres writes.

Run (Postgres and Redis on 127.0.0.1, nothing else needed; about 6 minutes)::

    .venv/bin/python bench/stream_overhead.py            # levels 1, 10, 50; chat and gateway
    .venv/bin/python bench/stream_overhead.py --levels 1,10 --rounds 2,2 --paths chat
    .venv/bin/python bench/stream_overhead.py --workers 2 --web 2   # two processes of each

The bench starts its own stack on free loopback ports, like the Procfile and the
README's "Deploying for real" (the emulator; ``--workers`` Celery worker processes
with the threads pool, like ``ARBOR_WORKER_PROCESSES``; ``--web`` Daphne processes,
clients spread round-robin over them; one of each by default), against its own database
(``arbor_bench``, or ``$ARBOR_BENCH_DATABASE``; dropped and re-created, then
``manage.py migrate``) and its own Redis databases (/12 app, /13 broker, or
``$ARBOR_BENCH_REDIS_URL`` / ``$ARBOR_BENCH_BROKER_URL``, flushed: on a shared
machine point them at a private ``redis-server``, see bench/README.md), with a fixed
non-secret key, ``ARBOR_DEBUG=false`` and the connection pool on. It creates one
user per concurrent stream (so the per-user row lock of ``send_message`` is not a
bench artefact) with a session cookie, one more user per stream with an API key for
the gateway, the default model and its endpoint, through the ORM in this process.

Workload, per level N (1, 10, 50): N closed-loop clients, started evenly over
``--stagger-s``, each doing R responses back to back, first directly against the
emulator (``POST /v1/chat/completions``, stream), then through Arbor on each path
of ``--paths``: ``chat`` (WebSocket ``chat.send`` → frames until the terminal
event) and ``gateway`` (``POST /v1/chat/completions`` on Daphne with a Bearer API
key, SSE until ``[DONE]``; the response id comes from ``X-Arbor-Response-Ids``).
Same prompt, same trace, same speed (``--tps`` tokens/s after ``--ttft-ms``, fixed
in the emulator's command line), same emulator process. Before each measured phase
an unmeasured warm-up round runs.

Method
------
*Emulator write times are exact.* The emulator has no per-chunk timestamp hook,
so this script serves the unchanged emulator app (``inference.emulator.create_app``
with the same config as ``python -m inference.emulator``) behind a thin ASGI
wrapper (``ClockedApp``) that records, per request ``rid``, the arrival time and
the time each body chunk was handed to the server (after ``send`` returned), and
keeps the raw bytes; ``GET /bench/clock`` returns them parsed. The worker passes
``rid = response id``, so each Arbor response is matched to its engine request.
All times are ``time.monotonic()`` (CLOCK_MONOTONIC, one clock for every process
on the machine).

*TTFT added* (the issue's definition): Arbor TTFT = ``chat.send`` written on the
socket (gateway: the POST sent) → first ``reasoning.delta`` frame (gateway: first
chunk with ``reasoning_content``) received; the emulator's own TTFT = POST
sent → first SSE chunk with non-empty ``reasoning_content``, measured by this same
client at the same concurrency. Added = percentile(Arbor) - percentile(direct), for
p50 and p99. As a cross-check the exact per-response figure is reported too:
Arbor TTFT minus the engine's internal time from request arrival to first
reasoning chunk written (= send→engine + engine→client).

*Delivery lag* is per emulator delta: for every chunk the emulator wrote, lag =
receive time of the frame whose text contains that chunk's last character - the
chunk's write time (matched by cumulative character counts of reasoning and of
content separately; a response whose streamed text differs from the emulator's
counts as an error). It therefore includes the coalescing wait. The same measure
for the direct client is reported as the floor (client + loopback at that load).

*Postgres writes*: ``pg_stat_database`` for the bench database (read from another
database, after 2.5 s idle so backends have flushed their stats), before and after
each Arbor phase of a level, divided by the responses. Sockets are connected (and
authenticated) before the first snapshot, so only the responses' own work counts:
``xact_commit`` includes read-only transactions.

*CPU*: user+system seconds of the workers, the Daphne processes, the emulator, the
bench client and all ``postgres``/``redis-server`` processes during each Arbor phase
(from ``/proc``), to show where time goes when a target is missed.

Targets (issues 2 and 6): added TTFT p50 ≤ 15 ms and p99 ≤ 60 ms at 10 streams, on
both paths; delivery lag p99 ≤ 100 ms at 50 streams (chat). Rows for other levels
are not judged. Results: one table (a row per level and path) on stdout and
``bench/results/stream_overhead.json``; exit status 1 when a target is missed.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import json
import os
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

try:
    from bench._common import REPO, print_table, write_json
except ImportError:  # run as a script: bench/ is sys.path[0]
    from _common import REPO, print_table, write_json  # type: ignore[no-redef]

# Overridable so that two people benchmarking on one machine do not drop each other's data.
DB_NAME = os.environ.get("ARBOR_BENCH_DATABASE", "arbor_bench")
PG = {"host": "127.0.0.1", "port": 5432, "user": "root"}
REDIS_APP = os.environ.get("ARBOR_BENCH_REDIS_URL", "redis://127.0.0.1:6379/12")
REDIS_BROKER = os.environ.get("ARBOR_BENCH_BROKER_URL", "redis://127.0.0.1:6379/13")
SECRET = "bench-only-not-a-secret-" + "b" * 40
# Per path and level (issues 2 and 6); a value must be at most its limit.
TARGETS = {
    "chat": {
        10: {"ttft_added_p50_ms": 15.0, "ttft_added_p99_ms": 60.0},
        50: {"lag_p99_ms": 100.0},
    },
    "gateway": {10: {"ttft_added_p50_ms": 15.0, "ttft_added_p99_ms": 60.0}},
}
PATHS = ("chat", "gateway")
WORKER_CONCURRENCY = 64  # threads; must exceed the highest level
RESPONSE_TIMEOUT_S = 120.0
now = time.monotonic


# --------------------------------------------------------------------------- the clocked emulator


class ClockedApp:
    """ASGI wrapper: record arrival and per-chunk write times of every chat request."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.requests: dict[str, dict[str, Any]] = {}

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        path = scope.get("path", "") if scope["type"] == "http" else ""
        if path == "/bench/clock":
            await self._clock(scope, send)
            return
        if path != "/v1/chat/completions":
            await self.app(scope, receive, send)
            return
        arrived = now()
        record: dict[str, Any] = {"arrived": arrived, "chunks": []}
        body = bytearray()

        async def receive_wrapped() -> Any:
            message = await receive()
            if message["type"] == "http.request":
                body.extend(message.get("body", b""))
                if not message.get("more_body"):
                    try:
                        rid = json.loads(bytes(body)).get("rid")
                    except ValueError:
                        rid = None
                    if isinstance(rid, str):
                        self.requests[rid] = record
            return message

        async def send_wrapped(message: Any) -> None:
            await send(message)
            if message["type"] == "http.response.body" and message.get("body"):
                record["chunks"].append((now(), message["body"]))

        await self.app(scope, receive_wrapped, send_wrapped)

    async def _clock(self, scope: Any, send: Any) -> None:
        if scope["method"] == "POST":
            self.requests.clear()
            payload: Any = {"ok": True}
        else:
            payload = {rid: _parse_record(rec) for rid, rec in self.requests.items()}
        data = json.dumps(payload).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"application/json")],
            }
        )
        await send({"type": "http.response.body", "body": data})


def _parse_record(rec: dict[str, Any]) -> dict[str, Any]:
    """Turn raw SSE chunks into (time, reasoning chars, content chars) per written chunk."""
    out = []
    for t, raw in rec["chunks"]:
        r = c = 0
        for line in raw.decode().splitlines():
            if not line.startswith("data: {"):
                continue
            try:
                event = json.loads(line[6:])
            except ValueError:
                continue
            for choice in event.get("choices") or []:
                delta = choice.get("delta") or {}
                r += len(delta.get("reasoning_content") or "")
                c += len(delta.get("content") or "")
        if r or c:
            out.append((t, r, c))
    return {"arrived": rec["arrived"], "chunks": out}


def serve_emulator(argv: list[str]) -> int:
    """Serve the emulator exactly as ``python -m inference.emulator`` would, clocked."""
    import uvicorn

    from inference.emulator.__main__ import build_parser
    from inference.emulator.app import create_app
    from inference.emulator.config import EmulatorConfig

    args = build_parser().parse_args(argv)
    config = EmulatorConfig(
        served_model_name=args.served_model_name,
        context_length=args.context_length,
        ttft_ms=args.ttft_ms,
        tokens_per_second=args.tps,
        corpus=list(args.corpus),
        enable_metrics=args.enable_metrics,
    )
    app = ClockedApp(create_app(config))
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            host=args.host,
            port=args.port,
            log_level="warning",
            timeout_graceful_shutdown=2,
            lifespan="off",
        )
    )
    server.run()
    return 0


# --------------------------------------------------------------------------- statistics


def pct(values: list[float], q: float) -> float | None:
    """Percentile with linear interpolation (q in 0..100); None for no data."""
    if not values:
        return None
    s = sorted(values)
    k = (len(s) - 1) * q / 100
    lo = int(k)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


def ms(value: float | None) -> float | None:
    return None if value is None else round(value * 1000, 2)


def lags(chunks: list[tuple[float, int, int]], frames: list[tuple[float, int, int]]) -> list[float]:
    """Per engine chunk: receive time of the frame holding its last char - its write time.

    ``chunks``: (write time, reasoning chars, content chars) per emulator chunk;
    ``frames``: the same per received frame. Reasoning and content are matched
    separately by cumulative character counts.
    """
    out: list[float] = []
    for idx in (1, 2):
        cum_f: list[int] = []
        times_f: list[float] = []
        total = 0
        for f in frames:
            if f[idx]:
                total += f[idx]
                cum_f.append(total)
                times_f.append(f[0])
        total = 0
        for ch in chunks:
            if not ch[idx]:
                continue
            total += ch[idx]
            i = bisect.bisect_left(cum_f, total)
            if i < len(cum_f):
                out.append(times_f[i] - ch[0])
    return out


def text_totals(items: list[tuple[float, int, int]]) -> tuple[int, int]:
    return sum(i[1] for i in items), sum(i[2] for i in items)


# --------------------------------------------------------------------------- processes


def proc_cpu_seconds(pids: list[int]) -> float:
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for pid in pids:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        total += (int(fields[11]) + int(fields[12])) / tick  # utime, stime
    return total


def machine_busy_seconds() -> float:
    """CPU seconds all processes on the machine have used (from /proc/stat)."""
    fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(x) for x in fields[:8])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def pids_named(*names: str) -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                comm = (entry / "comm").read_text().strip()
            except OSError:
                continue
            if comm in names:
                out.append(int(entry.name))
    return out


def descendants(pid: int) -> list[int]:
    """The process and its children (Celery/Daphne run in one process each here)."""
    out = [pid]
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return out
    for child in children:
        out.extend(descendants(int(child)))
    return out


@dataclass
class BenchStack:
    """The emulator, `webs` Daphne processes and `workers` Celery workers (threads pool)."""

    env: dict[str, str]
    tps: float
    ttft_ms: float
    webs: int = 1
    workers: int = 1
    procs: dict[str, Any] = field(default_factory=dict)

    def start(self) -> None:
        from tests.stack import Proc, free_port, wait_http

        self.emulator_port = free_port()
        self.web_ports = [free_port() for _ in range(self.webs)]
        py = sys.executable
        self.procs["emulator"] = Proc(
            "bench-emulator",
            [
                py, "-m", "bench.stream_overhead", "serve-emulator",
                "--host", "127.0.0.1", "--port", str(self.emulator_port),
                "--tps", str(self.tps), "--ttft-ms", str(self.ttft_ms), "--enable-metrics",
            ],
            self.env,
        )  # fmt: skip
        for i in range(self.workers):
            # The Procfile's worker (`make run` starts ARBOR_WORKER_PROCESSES of them).
            self.procs[f"worker-{i}"] = Proc(
                f"bench-worker-{i}",
                [
                    py, "-m", "celery", "-A", "webapp", "worker", "--pool", "threads",
                    "--concurrency", str(WORKER_CONCURRENCY), "--queues", "generation,celery",
                    "--loglevel", "INFO", "--without-gossip", "--without-mingle",
                    "--hostname", f"bench-worker-{i}@%h",
                ],
                self.env,
            )  # fmt: skip
        for i, port in enumerate(self.web_ports):
            self.procs[f"web-{i}"] = Proc(
                f"bench-web-{i}",
                [
                    py, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port),
                    "--proxy-headers", "webapp.asgi:application",
                ],
                self.env,
            )  # fmt: skip
        for proc in self.procs.values():
            proc.start()
        wait_http(self.emulator_url + "/health", proc=self.procs["emulator"].popen)
        for i, url in enumerate(self.web_urls):
            wait_http(url + "/healthz", proc=self.procs[f"web-{i}"].popen)
        for i in range(self.workers):
            self.procs[f"worker-{i}"].wait_for_log(" ready.", timeout=60)

    @property
    def web_urls(self) -> list[str]:
        return [f"http://127.0.0.1:{port}" for port in self.web_ports]

    def web_url_for(self, client: int) -> str:
        """Clients spread round-robin over the Daphne processes (no sticky sessions)."""
        return self.web_urls[client % len(self.web_urls)]

    @property
    def emulator_url(self) -> str:
        return f"http://127.0.0.1:{self.emulator_port}"

    def pids(self) -> dict[str, list[int]]:
        out: dict[str, list[int]] = {"emulator": descendants(self.procs["emulator"].popen.pid)}
        for kind in ("worker", "web"):
            out[kind] = [
                pid
                for name, p in self.procs.items()
                if name.startswith(kind + "-")
                for pid in descendants(p.popen.pid)
            ]
        out["bench"] = [os.getpid()]
        out["postgres"] = pids_named("postgres")
        out["redis"] = pids_named("redis-server")
        return out

    def stop(self) -> None:
        for proc in reversed(list(self.procs.values())):
            proc.stop()


def prepare_database(env: dict[str, str]) -> None:
    import psycopg
    from psycopg import sql

    with psycopg.connect(dbname="postgres", autocommit=True, **PG) as conn:  # type: ignore[arg-type]
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(DB_NAME))
        )
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(DB_NAME)))
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"],
        cwd=REPO,
        env=env,
        check=True,
    )
    import redis

    for url in (REDIS_APP, REDIS_BROKER):
        redis.Redis.from_url(url).flushdb()


def pg_counters() -> dict[str, int]:
    import psycopg

    with psycopg.connect(dbname="postgres", autocommit=True, **PG) as conn:  # type: ignore[arg-type]
        conn.execute("SELECT pg_stat_clear_snapshot()")
        row = conn.execute(
            "SELECT xact_commit, xact_rollback, tup_inserted, tup_updated, tup_deleted "
            "FROM pg_stat_database WHERE datname = %s",
            [DB_NAME],
        ).fetchone()
    assert row is not None
    keys = ("commits", "rollbacks", "inserts", "updates", "deletes")
    return dict(zip(keys, (int(v) for v in row), strict=True))


def setup_data(emulator_url: str, users: int) -> list[str]:
    """Create the model, its endpoint and `users` users; return their session ids.

    The same users get API keys for the gateway phase (`setup_keys`).
    """
    from django.conf import settings
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group
    from django.test import Client

    from webapp.serving import services

    llm = services.upsert_llm(
        slug="deepseek-r1",
        name="DeepSeek-R1",
        served_model_name="deepseek-ai/DeepSeek-R1",
        context_length=163_840,
        default_params={"temperature": 0.6, "top_p": 0.95, "max_tokens": 32_768},
        is_default=True,
    )
    services.ensure_endpoint(llm=llm, base_url=emulator_url)
    group = Group.objects.get_or_create(name="user")[0]
    model = get_user_model()
    sids = []
    for i in range(users):
        user, created = model.objects.get_or_create(username=f"bench{i:03d}")
        if created:
            user.set_unusable_password()
            user.save()
        user.groups.add(group)
        client = Client()
        client.force_login(user)
        sids.append(client.cookies[settings.SESSION_COOKIE_NAME].value)
    return sids


def setup_keys(emulator_url: str, users: int, *, prefix: str = "gw") -> list[str]:
    """Create the model, its endpoint and one user with an API key per gateway client."""
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group

    from webapp.accounts.services import create_api_key
    from webapp.serving import services

    llm = services.upsert_llm(
        slug="deepseek-r1",
        name="DeepSeek-R1",
        served_model_name="deepseek-ai/DeepSeek-R1",
        context_length=163_840,
        default_params={"temperature": 0.6, "top_p": 0.95, "max_tokens": 32_768},
        is_default=True,
    )
    services.ensure_endpoint(llm=llm, base_url=emulator_url)
    group = Group.objects.get_or_create(name="user")[0]
    keys = []
    for i in range(users):
        user, _ = get_user_model().objects.get_or_create(username=f"{prefix}{i:03d}")
        user.groups.add(group)
        keys.append(create_api_key(user=user, name="bench")[1])
    return keys


# --------------------------------------------------------------------------- clients


@dataclass
class Result:
    rid: str
    t_send: float
    ttft: float | None = None
    frames: list[tuple[float, int, int]] = field(default_factory=list)  # text frames only
    n_frames: int = 0
    status: str = ""
    error: str | None = None
    t_created: float | None = None  # response.created received


def prompt_for(trace: str, i: int) -> str:
    return f"[[emulator trace={trace}]] Benchmark question {i}: say hello."


async def direct_one(http: Any, url: str, prompt: str, max_tokens: int) -> Result:
    rid = f"bench-direct-{uuid.uuid4().hex}"
    body = {
        "model": "deepseek-ai/DeepSeek-R1",
        "messages": [{"role": "user", "content": prompt}],
        "stream": True,
        "stream_options": {"include_usage": True},
        "max_tokens": max_tokens,
        "temperature": 0.6,
        "top_p": 0.95,
        "rid": rid,
    }
    res = Result(rid=rid, t_send=now())
    try:
        async with http.stream("POST", url + "/v1/chat/completions", json=body) as resp:
            if resp.status_code != 200:
                res.error = f"HTTP {resp.status_code}"
                return res
            async for line in resp.aiter_lines():
                t = now()
                if not line.startswith("data: {"):
                    continue
                event = json.loads(line[6:])
                for choice in event.get("choices") or []:
                    delta = choice.get("delta") or {}
                    r = len(delta.get("reasoning_content") or "")
                    c = len(delta.get("content") or "")
                    if r or c:
                        res.n_frames += 1
                        res.frames.append((t, r, c))
                        if r and res.ttft is None:
                            res.ttft = t - res.t_send
                    if choice.get("finish_reason"):
                        res.status = "completed"
    except Exception as exc:  # a failed request is counted, not fatal
        res.error = f"{type(exc).__name__}: {exc}"
    if res.status != "completed" and res.error is None:
        res.error = "no finish"
    return res


class WsClient:
    def __init__(self, conn: Any) -> None:
        self.conn = conn

    async def one(self, prompt: str, max_tokens: int) -> Result:
        res = Result(rid="", t_send=0.0)
        frame = {
            "type": "chat.send",
            "content": prompt,
            "params": {"max_tokens": max_tokens},
            "client_id": uuid.uuid4().hex,
        }
        res.t_send = now()
        await self.conn.send(json.dumps(frame))
        deadline = res.t_send + RESPONSE_TIMEOUT_S
        try:
            while True:
                raw = await asyncio.wait_for(self.conn.recv(), max(0.1, deadline - now()))
                t = now()
                msg = json.loads(raw)
                kind = msg.get("type")
                if kind == "error":
                    res.error = f"{msg.get('code')}: {msg.get('message')}"
                    return res
                if kind == "response.created":
                    res.rid = msg["response_id"]
                    res.t_created = t
                    continue
                if msg.get("response_id") != res.rid:
                    continue
                res.n_frames += 1
                if kind == "reasoning.delta":
                    res.frames.append((t, len(msg["text"]), 0))
                    if res.ttft is None:
                        res.ttft = t - res.t_send
                elif kind == "content.delta":
                    res.frames.append((t, 0, len(msg["text"])))
                elif kind in ("response.completed", "response.failed", "response.cancelled"):
                    res.status = kind.split(".")[1]
                    if kind != "response.completed":
                        res.error = json.dumps(msg.get("error") or kind)
                    return res
        except TimeoutError:
            res.error = "timeout"
            return res


async def ws_connect(web_url: str, sid: str) -> WsClient:
    import websockets

    conn = await websockets.connect(
        web_url.replace("http", "ws", 1) + "/ws/chat/",
        additional_headers={"Origin": web_url, "Cookie": f"sessionid={sid}"},
        max_size=2**24,
    )
    return WsClient(conn)


async def gateway_one(http: Any, web_url: str, key: str, prompt: str, max_tokens: int) -> Result:
    """One streamed `POST /v1/chat/completions` through Arbor's gateway."""
    body = {
        "model": "deepseek-r1",
        "messages": [{"role": "user", "content": prompt}],
        "stream": True,
        "stream_options": {"include_usage": True},
        "max_tokens": max_tokens,
        "temperature": 0.6,
        "top_p": 0.95,
    }
    res = Result(rid="", t_send=now())
    try:
        async with http.stream(
            "POST",
            web_url + "/v1/chat/completions",
            json=body,
            headers={"Authorization": f"Bearer {key}"},
        ) as resp:
            if resp.status_code != 200:
                res.error = f"HTTP {resp.status_code}: {(await resp.aread())[:200]!r}"
                return res
            res.rid = resp.headers["X-Arbor-Response-Ids"]
            res.t_created = now()
            async for line in resp.aiter_lines():
                t = now()
                if not line.startswith("data: {"):
                    continue
                event = json.loads(line[6:])
                if "error" in event:
                    res.error = str(event["error"])
                for choice in event.get("choices") or []:
                    delta = choice.get("delta") or {}
                    r = len(delta.get("reasoning_content") or "")
                    c = len(delta.get("content") or "")
                    if r or c:
                        res.n_frames += 1
                        res.frames.append((t, r, c))
                        if r and res.ttft is None:
                            res.ttft = t - res.t_send
                    if choice.get("finish_reason"):
                        res.status = "completed"
    except Exception as exc:  # a failed request is counted, not fatal
        res.error = f"{type(exc).__name__}: {exc}"
    if res.status != "completed" and res.error is None:
        res.error = "no finish"
    return res


async def closed_loop(
    n: int, rounds: int, stagger_s: float, one: Any, *, base: int = 0
) -> list[Result]:
    """N clients, started evenly over stagger_s, each doing `rounds` requests in a row."""

    async def client(i: int) -> list[Result]:
        await asyncio.sleep(stagger_s * i / max(1, n))
        return [await one(i, base + i * rounds + r) for r in range(rounds)]

    per_client = await asyncio.gather(*(client(i) for i in range(n)))
    return [r for rs in per_client for r in rs]


# --------------------------------------------------------------------------- the run


WALL_MINUS_MONO = time.time() - time.monotonic()


def response_times(rids: list[str]) -> dict[str, dict[str, float | None]]:
    """The DB's timestamps of the responses, on this machine's monotonic clock."""
    from django.db import connections

    from webapp.chat.models import Response

    def mono(dt: Any) -> float | None:
        return None if dt is None else dt.timestamp() - WALL_MINUS_MONO

    try:
        rows = Response.objects.filter(pk__in=[r for r in rids if r]).values(
            "pk", "created_at", "started_at", "first_token_at"
        )
        return {
            str(row["pk"]): {
                k: mono(row[k]) for k in ("created_at", "started_at", "first_token_at")
            }
            for row in rows
        }
    finally:
        connections.close_all()


STAGES = [
    # (name, from, to): points are t_send, created_at (DB), t_created (frame received),
    # started_at (worker's claim), arrived (engine), first_write (engine), first_token_at
    # (worker got it), first_recv (client).
    ("send->row created (daphne)", "t_send", "created_at"),
    ("row->created frame or headers (commit+enqueue)", "created_at", "t_created"),
    ("row->claimed (commit, broker, worker)", "created_at", "started_at"),
    ("claimed->engine request", "started_at", "arrived"),
    ("engine first chunk->worker", "first_write", "first_token_at"),
    ("worker->client (coalesce, log, hub, ws)", "first_token_at", "first_recv"),
]


def summarise(
    results: list[Result],
    clock: dict[str, Any],
    *,
    exact: bool,
    db_times: dict[str, dict[str, float | None]] | None = None,
) -> dict[str, Any]:
    ok = [r for r in results if r.error is None]
    errors = [r.error for r in results if r.error is not None]
    ttfts = [r.ttft for r in ok if r.ttft is not None]
    lag_all: list[float] = []
    exact_added: list[float] = []
    to_engine: list[float] = []
    engine_to_client: list[float] = []
    stages: dict[str, list[float]] = {name: [] for name, _, _ in STAGES}
    for r in ok:
        rec = clock.get(r.rid)
        if rec is None:
            errors.append(f"{r.rid}: no engine record")
            continue
        chunks = [tuple(c) for c in rec["chunks"]]
        if text_totals(chunks) != text_totals(r.frames):  # type: ignore[arg-type]
            errors.append(f"{r.rid}: streamed text differs from the engine's")
            continue
        lag_all.extend(lags(chunks, r.frames))  # type: ignore[arg-type]
        first_r = next((c[0] for c in chunks if c[1]), None)
        if exact and r.ttft is not None and first_r is not None:
            engine_ttft = first_r - rec["arrived"]
            exact_added.append(r.ttft - engine_ttft)
            to_engine.append(rec["arrived"] - r.t_send)
            engine_to_client.append(r.t_send + r.ttft - first_r)
            points: dict[str, float | None] = {
                "t_send": r.t_send,
                "t_created": r.t_created,
                "arrived": rec["arrived"],
                "first_write": first_r,
                "first_recv": r.t_send + r.ttft,
                **(db_times or {}).get(r.rid, {}),
            }
            for name, a, b in STAGES:
                pa, pb = points.get(a), points.get(b)
                if pa is not None and pb is not None:
                    stages[name].append(pb - pa)
    out: dict[str, Any] = {
        "responses": len(results),
        "ok": len(ok),
        "errors": len(errors),
        "error_samples": errors[:5],
        "ttft_ms": {"p50": ms(pct(ttfts, 50)), "p99": ms(pct(ttfts, 99)), "n": len(ttfts)},
        "lag_ms": {
            "p50": ms(pct(lag_all, 50)),
            "p99": ms(pct(lag_all, 99)),
            "max": ms(max(lag_all)) if lag_all else None,
            "n": len(lag_all),
        },
        "frames_per_response": round(sum(r.n_frames for r in ok) / len(ok), 1) if ok else None,
    }
    if exact:
        out["ttft_added_exact_ms"] = {
            "p50": ms(pct(exact_added, 50)),
            "p99": ms(pct(exact_added, 99)),
            "send_to_engine_p50": ms(pct(to_engine, 50)),
            "send_to_engine_p99": ms(pct(to_engine, 99)),
            "engine_to_client_p50": ms(pct(engine_to_client, 50)),
            "engine_to_client_p99": ms(pct(engine_to_client, 99)),
        }
        out["ttft_stages_ms"] = {
            name: {"p50": ms(pct(v, 50)), "p99": ms(pct(v, 99))} for name, v in stages.items()
        }
    return out


async def measure_arbor(
    stack: BenchStack,
    n: int,
    rounds: int,
    args: argparse.Namespace,
    http: Any,
    one: Any,
    warm: Any,
    *,
    base: int,
) -> dict[str, Any]:
    """Warm up, then run one path's measured rounds with CPU and Postgres counters."""
    emu = stack.emulator_url
    await closed_loop(n, 1, args.stagger_s, warm)
    await asyncio.sleep(2.5)
    await http.post(emu + "/bench/clock")
    pg_before = pg_counters()
    pids = stack.pids()
    cpu_before = {k: proc_cpu_seconds(v) for k, v in pids.items()}
    busy_before = machine_busy_seconds()
    t0 = now()
    results = await closed_loop(n, rounds, args.stagger_s, one, base=base)
    wall = now() - t0
    cpu_after = {k: proc_cpu_seconds(v) for k, v in pids.items()}
    busy = machine_busy_seconds() - busy_before
    await asyncio.sleep(2.5)
    pg_after = pg_counters()
    clock = (await http.get(emu + "/bench/clock", timeout=60)).json()
    db_times = await asyncio.to_thread(response_times, [r.rid for r in results])
    summary = summarise(results, clock, exact=True, db_times=db_times)
    done = max(1, summary["ok"])
    cpu = {k: round(cpu_after[k] - cpu_before[k], 2) for k in cpu_before}
    # Anything else running on the machine meanwhile (other test runs...) skews the numbers.
    cpu["other"] = round(max(0.0, busy - sum(cpu.values())), 2)
    return {
        "arbor": summary,
        "pg_per_response": {k: round((pg_after[k] - pg_before[k]) / done, 1) for k in pg_before},
        "cpu_seconds": cpu,
        "cpu_percent_of_one_core": {k: round(100 * v / wall, 1) for k, v in cpu.items()},
        "wall_s": round(wall, 2),
    }


async def run_level(
    stack: BenchStack,
    n: int,
    rounds: int,
    args: argparse.Namespace,
    sids: list[str],
    keys: list[str],
    http: Any,
) -> dict[str, Any]:
    trace, max_tokens = args.trace, args.max_tokens
    emu = stack.emulator_url

    async def direct(i: int, k: int) -> Result:
        return await direct_one(http, emu, prompt_for(trace, k), max_tokens)

    # Direct baseline: warm-up, then measured.
    await closed_loop(
        n, 1, args.stagger_s, lambda i, k: direct_one(http, emu, prompt_for(trace, k), 8)
    )
    await http.post(emu + "/bench/clock")
    dpids = {k: v for k, v in stack.pids().items() if k in ("emulator", "bench")}
    dcpu0, dbusy0, dt0 = (
        {k: proc_cpu_seconds(v) for k, v in dpids.items()},
        machine_busy_seconds(),
        now(),
    )
    direct_results = await closed_loop(n, rounds, args.stagger_s, direct)
    dwall = now() - dt0
    direct_cpu = {
        k: round(100 * (proc_cpu_seconds(v) - dcpu0[k]) / dwall, 1) for k, v in dpids.items()
    }
    direct_cpu["machine"] = round(100 * (machine_busy_seconds() - dbusy0) / dwall, 1)
    clock = (await http.get(emu + "/bench/clock", timeout=60)).json()
    direct_summary = summarise(direct_results, clock, exact=False)
    d50, d99 = direct_summary["ttft_ms"]["p50"], direct_summary["ttft_ms"]["p99"]

    paths: dict[str, Any] = {}
    for path in args.paths:
        if path == "chat":
            # Sockets are connected (and authenticated) before the counters start.
            clients = [await ws_connect(stack.web_url_for(i), sids[i]) for i in range(n)]
            try:
                out = await measure_arbor(
                    stack,
                    n,
                    rounds,
                    args,
                    http,
                    lambda i, k, cs=clients: cs[i].one(prompt_for(trace, k), max_tokens),
                    lambda i, k, cs=clients: cs[i].one(prompt_for(trace, k), 8),
                    base=10_000,
                )
            finally:
                for c in clients:
                    await c.conn.close()
        else:
            out = await measure_arbor(
                stack,
                n,
                rounds,
                args,
                http,
                lambda i, k: gateway_one(
                    http, stack.web_url_for(i), keys[i], prompt_for(trace, k), max_tokens
                ),
                lambda i, k: gateway_one(
                    http, stack.web_url_for(i), keys[i], prompt_for(trace, k), 8
                ),
                base=20_000,
            )
        a50, a99 = out["arbor"]["ttft_ms"]["p50"], out["arbor"]["ttft_ms"]["p99"]
        added = {
            "p50": round(a50 - d50, 2) if None not in (a50, d50) else None,
            "p99": round(a99 - d99, 2) if None not in (a99, d99) else None,
        }
        checks = {}
        for name, limit in TARGETS[path].get(n, {}).items():
            value = {
                "ttft_added_p50_ms": added["p50"],
                "ttft_added_p99_ms": added["p99"],
                "lag_p99_ms": out["arbor"]["lag_ms"]["p99"],
            }[name]
            checks[name] = {
                "limit": limit,
                "value": value,
                "pass": value is not None and value <= limit and out["arbor"]["errors"] == 0,
            }
        paths[path] = {**out, "ttft_added_ms": added, "targets": checks}
    return {
        "streams": n,
        "rounds": rounds,
        "direct": direct_summary,
        "direct_phase_cpu_percent": direct_cpu,
        "paths": paths,
        "loadavg_1m_after": round(os.getloadavg()[0], 2),
    }


def configure_env(args: argparse.Namespace) -> dict[str, str]:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "webapp.settings",
        "DATABASE_URL": f"postgres://{PG['user']}@{PG['host']}:{PG['port']}/{DB_NAME}",
        "REDIS_URL": REDIS_APP,
        "CELERY_BROKER_URL": REDIS_BROKER,
        "ARBOR_SECRET_KEY": SECRET,
        "ARBOR_DEBUG": "false",
        "ARBOR_DB_POOL": "true",
        "ARBOR_DEFAULT_REQUESTS_PER_MINUTE": "100000",
        "ARBOR_DEFAULT_CONCURRENT_STREAMS": "1000",
        "ARBOR_LOG_LEVEL": "INFO",
        "PYTHONUNBUFFERED": "1",
        "PYTHONPATH": str(REPO),
    }
    if args.coalesce_ms is not None:
        env["ARBOR_COALESCE_MS"] = str(args.coalesce_ms)
    else:
        env.pop("ARBOR_COALESCE_MS", None)
    return env


async def amain(args: argparse.Namespace) -> dict[str, Any]:
    import httpx

    levels = [int(x) for x in args.levels.split(",")]
    rounds = [int(x) for x in args.rounds.split(",")]
    args.paths = [p for p in args.paths.split(",") if p]
    if len(rounds) != len(levels):
        raise SystemExit("--rounds needs one value per level")
    if not args.paths or set(args.paths) - set(PATHS):
        raise SystemExit(f"--paths: a comma-separated subset of {','.join(PATHS)}")
    if max(levels) >= WORKER_CONCURRENCY:
        raise SystemExit(f"levels must stay below the worker's {WORKER_CONCURRENCY} threads")
    env = configure_env(args)
    os.environ.update({k: v for k, v in env.items() if k != "PYTHONPATH"})
    os.environ["ARBOR_DB_POOL"] = "false"  # this process: plain connections
    print(f"preparing database {DB_NAME} and Redis {REDIS_APP} {REDIS_BROKER} ...", flush=True)
    prepare_database(env)
    import django

    django.setup()
    from django.conf import settings
    from django.db import connections

    stack = BenchStack(
        env=env, tps=args.tps, ttft_ms=args.ttft_ms, webs=args.web, workers=args.workers
    )
    print(f"starting emulator, {args.workers} worker(s), {args.web} Daphne ...", flush=True)
    stack.start()
    try:
        sids = await asyncio.to_thread(setup_data, stack.emulator_url, max(levels))
        keys = await asyncio.to_thread(setup_keys, stack.emulator_url, max(levels))
        await asyncio.to_thread(connections.close_all)
        levels_out = []
        limits = httpx.Limits(max_connections=500, max_keepalive_connections=500)
        timeout = httpx.Timeout(RESPONSE_TIMEOUT_S, connect=10)
        async with httpx.AsyncClient(limits=limits, timeout=timeout) as http:
            for n, r in zip(levels, rounds, strict=True):
                print(f"level {n}: {n} streams x {r} responses ...", flush=True)
                levels_out.append(await run_level(stack, n, r, args, sids, keys, http))
    finally:
        stack.stop()
    return {
        "bench": "stream_overhead",
        "config": {
            "tps": args.tps,
            "ttft_ms": args.ttft_ms,
            "trace": args.trace,
            "max_tokens": args.max_tokens,
            "stagger_s": args.stagger_s,
            "coalesce_ms": settings.ARBOR_COALESCE_MS
            if args.coalesce_ms is None
            else args.coalesce_ms,
            "paths": args.paths,
            "worker": f"{args.workers} celery worker process(es), threads pool, "
            f"concurrency {WORKER_CONCURRENCY}",
            "web": f"{args.web} Daphne process(es), clients round-robin",
            "cpus": os.cpu_count(),
        },
        "targets": {path: {str(k): v for k, v in t.items()} for path, t in TARGETS.items()},
        "levels": levels_out,
    }


def report(payload: dict[str, Any]) -> None:
    rows = []
    for lv in payload["levels"]:
        d = lv["direct"]
        for path, ph in lv["paths"].items():
            a = ph["arbor"]
            verdict = (
                " ".join(
                    f"{k.replace('_ms', '')}:{'PASS' if v['pass'] else 'FAIL'}"
                    for k, v in ph["targets"].items()
                )
                or "-"
            )
            rows.append(
                [
                    str(lv["streams"]),
                    path,
                    a["ok"],
                    d["ttft_ms"]["p50"],
                    a["ttft_ms"]["p50"],
                    ph["ttft_added_ms"]["p50"],
                    ph["ttft_added_ms"]["p99"],
                    a["ttft_added_exact_ms"]["p50"],
                    a["ttft_added_exact_ms"]["p99"],
                    d["lag_ms"]["p99"],
                    a["lag_ms"]["p50"],
                    a["lag_ms"]["p99"],
                    a["frames_per_response"],
                    ph["pg_per_response"]["commits"],
                    ph["pg_per_response"]["inserts"],
                    ph["pg_per_response"]["updates"],
                    a["errors"] + d["errors"],
                    verdict,
                ]
            )
    cfg = payload["config"]
    print_table(
        f"stream overhead (emulator {cfg['tps']:g} tok/s, ttft {cfg['ttft_ms']:g} ms, "
        f"coalesce {cfg['coalesce_ms']} ms; {cfg['worker']}; {cfg['web']}; times in ms)",
        [
            "level", "path", "resp", "ttft emu p50", "ttft arbor p50", "added p50", "added p99",
            "exact p50", "exact p99", "lag emu p99", "lag p50", "lag p99", "frames/resp",
            "pg commits", "pg ins", "pg upd", "errors", "targets",
        ],
        rows,
    )  # fmt: skip
    phases = [(lv, path, ph) for lv in payload["levels"] for path, ph in lv["paths"].items()]
    names = list(phases[0][2]["cpu_percent_of_one_core"]) if phases else []
    print_table(
        "CPU during the Arbor phase (% of one core; 2 cores = 200%)",
        ["level", "path", *names],
        [
            [str(lv["streams"]), path, *(ph["cpu_percent_of_one_core"][k] for k in names)]
            for lv, path, ph in phases
        ],
    )
    print_table(
        "added TTFT, exact split (ms): send -> engine request, engine first chunk -> client",
        [
            "level", "path", "to engine p50", "to engine p99", "engine->client p50",
            "engine->client p99",
        ],
        [
            [
                str(lv["streams"]),
                path,
                ph["arbor"]["ttft_added_exact_ms"]["send_to_engine_p50"],
                ph["arbor"]["ttft_added_exact_ms"]["send_to_engine_p99"],
                ph["arbor"]["ttft_added_exact_ms"]["engine_to_client_p50"],
                ph["arbor"]["ttft_added_exact_ms"]["engine_to_client_p99"],
            ]
            for lv, path, ph in phases
        ],
    )  # fmt: skip
    print_table(
        "time to first token through Arbor, stage by stage (ms, p50 / p99)",
        ["stage", *(f"{lv['streams']} {path}" for lv, path, _ in phases)],
        [
            [
                name,
                *(
                    f"{ph['arbor']['ttft_stages_ms'][name]['p50']} / "
                    f"{ph['arbor']['ttft_stages_ms'][name]['p99']}"
                    for _, _, ph in phases
                ),
            ]
            for name, _, _ in STAGES
        ],
    )


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["serve-emulator"]:
        return serve_emulator(argv[1:])
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--levels", default="1,10,50", help="concurrent streams per level")
    p.add_argument("--rounds", default="4,3,2", help="responses per stream, per level")
    p.add_argument("--tps", type=float, default=60.0, help="emulator tokens/s per stream")
    p.add_argument("--ttft-ms", type=float, default=200.0, help="emulator time to first token")
    p.add_argument("--trace", default="hello", help="emulator corpus trace id to replay")
    p.add_argument("--max-tokens", type=int, default=32_768)
    p.add_argument("--stagger-s", type=float, default=1.0, help="spread of client start times")
    p.add_argument("--coalesce-ms", type=int, default=None, help="override ARBOR_COALESCE_MS")
    p.add_argument("--paths", default="chat,gateway", help="chat (WebSocket), gateway (HTTP)")
    p.add_argument(
        "--workers", type=int, default=1, help="Celery worker processes (the deployment's M)"
    )
    p.add_argument("--web", type=int, default=1, help="Daphne processes (the deployment's N)")
    p.add_argument("--out", default="stream_overhead", help="results file name (no .json)")
    args = p.parse_args(argv)
    payload = asyncio.run(amain(args))
    report(payload)
    path = write_json(args.out, payload)
    print(f"\nwrote {path}")
    failed = [
        c
        for lv in payload["levels"]
        for ph in lv["paths"].values()
        for c in ph["targets"].values()
        if not c["pass"]
    ]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
