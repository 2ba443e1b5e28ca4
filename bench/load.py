"""Load: ramp concurrent streams until delivery lag p99 passes 250 ms; find the knee.

Run (Postgres and Redis on 127.0.0.1; about 8-10 minutes)::

    .venv/bin/python bench/load.py                       # 1+1, then 2+2 processes
    .venv/bin/python bench/load.py --levels 10,25,50 --hold-s 15 --configs 1x1

The bench starts its own stack on free loopback ports, like ``stream_overhead.py``
(whose helpers it imports: the clocked emulator, ``configure_env``, ``setup_data``,
``ws_connect``, the /proc readers, ``setup_keys`` for the API
keys), against its own database ``arbor_bench_load`` (dropped and re-created, then
migrated) and its own Redis databases (/3 app, /15 broker; flushed). One emulator
(``--tps`` 40 tokens/s per stream, R1-like decode speed, after ``--ttft-ms``) serves
both configurations:

1. ``1x1``: one Daphne, one Celery worker (threads pool, ``--concurrency`` 320);
2. ``2x2``: two Daphne processes (clients spread round-robin over both ports, no
   sticky sessions) and two workers (both consume the same queues).

Workload: the longest trace of the emulator's corpus (``mod7-count``: 3,375 tokens,
~84 s at 40 tok/s), so a stream lives across levels. Each client loops: one
response, then the next, until the configuration ends. Levels (default 5, 10, 25,
50, 100, 150, 200, 250, 300 concurrent streams) add clients, 80% WebSocket (one user
and one socket each; ``chat.send``, frames until the terminal event) and 20%
gateway (one user and API key each; ``POST /v1/chat/completions``, stream),
started evenly over ``--ramp-s``; after ``--settle-s`` the level is measured for
``--hold-s`` seconds.

Method
------
*Delivery lag* (same definition as stream_overhead.py): for every chunk the
emulator wrote inside the level's window, the receive time of the client frame
that holds the chunk's last character minus the chunk's write time (exact: the
emulator is served behind ``ClockedApp``, which records write times; this script's
subclass hands out and forgets the records one window at a time, so memory and the
clock reply stay small). A chunk not yet received when the window is evaluated
(``--grace-s`` after it ends) counts with lag = evaluation time - write time, a
lower bound, so a stalled stream can only raise p99. The knee is the last level
whose p99 is <= 250 ms (and < 2% of its responses failed); the ramp of a
configuration stops at the first level above it or at the last level.

*TTFT*: chat.send (or POST) written -> first reasoning frame, for responses sent
during the level's ramp, settle and hold.

*Resources* over the window (from /proc; psutil is not a dependency): CPU% of one
core of each Daphne, worker, the emulator, this bench client, all ``postgres`` and
``redis-server`` processes and ``other`` (everything else on the machine: other
test runs make the numbers pessimistic), RSS at the window's end (Postgres RSS is
not reported: its shared buffers make it meaningless per backend); Postgres
connections = max over samples every 2 s of ``pg_stat_activity`` rows for the
bench database; Redis memory = ``MEMORY USAGE`` of every event log in the app
database (live logs, TTL > ARBOR_EVENT_LOG_TTL_S, vs finished logs) at the window's
end, divided by their count, and the instance's ``used_memory`` delta since the
configuration started divided by the live streams (shared instance: noisy).

Results: tables on stdout and ``bench/results/load.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import contextlib
import json
import os
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

try:
    from bench import stream_overhead as so
    from bench._common import REPO, print_table, write_json
except ImportError:  # run as a script: bench/ is sys.path[0]
    import stream_overhead as so  # type: ignore[no-redef]
    from _common import REPO, print_table, write_json  # type: ignore[no-redef]

DB_NAME = "arbor_bench_load"
REDIS_APP = "redis://127.0.0.1:6379/3"
REDIS_BROKER = "redis://127.0.0.1:6379/15"
LAG_LIMIT_MS = 250.0
MAX_ERROR_RATE = 0.02
WORKER_THREADS = 320  # per worker process; above the highest level
TRACE = "mod7-count"  # the corpus' longest trace
TRACE_TOKENS = 3375
CONFIGS = {"1x1": (1, 1), "2x2": (2, 2)}
now = time.monotonic


# --------------------------------------------------------------------------- the emulator's clock


class WindowedClock(so.ClockedApp):
    """ClockedApp whose ``GET /bench/clock?since=&until=`` returns one window and forgets it.

    Per request: cumulative reasoning/content characters are kept across windows, so
    a chunk of a long response is matched to client frames by its absolute offsets.
    """

    async def _clock(self, scope: Any, send: Any) -> None:
        if scope["method"] == "POST":
            self.requests.clear()
            payload: Any = {"ok": True}
        else:
            q = parse_qs(scope.get("query_string", b"").decode())
            since = float(q.get("since", ["0"])[0])
            until = float(q.get("until", ["1e18"])[0])
            payload = {}
            for rid, rec in list(self.requests.items()):
                raw, rec["chunks"] = rec["chunks"], []  # send_wrapped appends to the new list
                cum = rec.setdefault("cum", [0, 0])
                points = rec.setdefault("points", [])
                for t, r, c in so._parse_record({"arrived": 0, "chunks": raw})["chunks"]:
                    cum[0] += r
                    cum[1] += c
                    points.append((t, r, c, cum[0], cum[1]))
                window = [p for p in points if since <= p[0] < until]
                rec["points"] = [p for p in points if p[0] >= until]
                if window:
                    payload[rid] = window
                rec["idle"] = 0 if raw else rec.get("idle", 0) + 1
                if rec["idle"] >= 2 and not rec["points"]:  # finished two windows ago
                    del self.requests[rid]
        data = json.dumps(payload).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"application/json")],
            }
        )
        await send({"type": "http.response.body", "body": data})


def serve_emulator(argv: list[str]) -> int:
    """``stream_overhead.serve_emulator`` with this script's clock."""
    so.serve_emulator.__globals__["ClockedApp"] = WindowedClock
    return so.serve_emulator(argv)


# --------------------------------------------------------------------------- clients


@dataclass
class Live:
    kind: str  # "ws" | "gw"
    t_send: float
    rid: str = ""
    ttft: float | None = None
    frames: list[tuple[float, int, int]] = field(default_factory=list)
    status: str = ""  # completed | failed | cancelled | cut
    error: str | None = None
    t_end: float | None = None


def prompt(i: int) -> str:
    return so.prompt_for(TRACE, i)


class Clients:
    """All client loops of one configuration and the responses they saw."""

    def __init__(self, http: Any, web_urls: list[str], sids: list[str], keys: list[str]) -> None:
        self.http, self.web_urls, self.sids, self.keys = http, web_urls, sids, keys
        self.stop = asyncio.Event()
        self.by_rid: dict[str, Live] = {}
        self.all: list[Live] = []
        self.ws_tasks: list[asyncio.Task[None]] = []
        self.gw_tasks: list[asyncio.Task[None]] = []
        self.ws_conns: dict[int, Any] = {}
        self.ws_current: dict[int, Live] = {}
        self.counter = 0
        self.reported: set[asyncio.Task[None]] = set()

    def _next_prompt(self) -> str:
        self.counter += 1
        return prompt(self.counter)

    async def ws_loop(self, idx: int, delay: float) -> None:
        await asyncio.sleep(delay)
        url = self.web_urls[idx % len(self.web_urls)]
        client = await so.ws_connect(url, self.sids[idx])
        conn = self.ws_conns[idx] = client.conn
        try:
            while not self.stop.is_set():
                live = Live("ws", now())
                self.all.append(live)
                self.ws_current[idx] = live
                await conn.send(
                    json.dumps(
                        {
                            "type": "chat.send",
                            "content": self._next_prompt(),
                            "params": {"max_tokens": 32_768},
                            "client_id": uuid.uuid4().hex,
                        }
                    )
                )
                while live.t_end is None:
                    msg = json.loads(await conn.recv())
                    t = now()
                    kind = msg.get("type")
                    if kind == "error":
                        live.error, live.t_end = f"{msg.get('code')}: {msg.get('message')}", t
                    elif kind == "response.created" and not live.rid:
                        live.rid = msg["response_id"]
                        self.by_rid[live.rid] = live
                    elif msg.get("response_id") != live.rid:
                        continue
                    elif kind == "reasoning.delta":
                        live.frames.append((t, len(msg["text"]), 0))
                        if live.ttft is None:
                            live.ttft = t - live.t_send
                    elif kind == "content.delta":
                        live.frames.append((t, 0, len(msg["text"])))
                    elif kind in ("response.completed", "response.failed", "response.cancelled"):
                        live.status, live.t_end = kind.split(".")[1], t
                        if kind == "response.failed":
                            live.error = json.dumps(msg.get("error"))
                if live.error and live.status != "failed":
                    await asyncio.sleep(1.0)  # refused: do not spin
        finally:
            await conn.close()

    async def gw_loop(self, idx: int, delay: float) -> None:
        await asyncio.sleep(delay)
        url = self.web_urls[idx % len(self.web_urls)] + "/v1/chat/completions"
        headers = {"Authorization": f"Bearer {self.keys[idx]}"}
        while not self.stop.is_set():
            live = Live("gw", now())
            self.all.append(live)
            body = {
                "model": "deepseek-r1",
                "messages": [{"role": "user", "content": self._next_prompt()}],
                "stream": True,
                "max_tokens": 32_768,
            }
            try:
                async with self.http.stream("POST", url, json=body, headers=headers) as resp:
                    if resp.status_code != 200:
                        live.error = f"HTTP {resp.status_code}"
                        live.t_end = now()
                        await asyncio.sleep(1.0)
                        continue
                    live.rid = resp.headers["X-Arbor-Response-Ids"]
                    self.by_rid[live.rid] = live
                    async for line in resp.aiter_lines():
                        t = now()
                        if not line.startswith("data: {"):
                            continue
                        event = json.loads(line[6:])
                        if "error" in event:
                            live.error = str(event["error"])
                        for choice in event.get("choices") or []:
                            delta = choice.get("delta") or {}
                            r = len(delta.get("reasoning_content") or "")
                            c = len(delta.get("content") or "")
                            if r or c:
                                live.frames.append((t, r, c))
                                if r and live.ttft is None:
                                    live.ttft = t - live.t_send
                            if choice.get("finish_reason"):
                                live.status = "completed"
            except asyncio.CancelledError:
                live.status, live.t_end = "cut", now()
                raise
            except Exception as exc:  # counted, not fatal
                live.error = f"{type(exc).__name__}: {exc}"
            live.t_end = now()
            if live.status != "completed" and live.error is None:
                live.error = "no finish"

    def grow(self, n_ws: int, n_gw: int, ramp_s: float) -> None:
        new_ws = range(len(self.ws_tasks), n_ws)
        new_gw = range(len(self.gw_tasks), n_gw)
        total = max(1, len(new_ws) + len(new_gw))
        k = 0
        for i in new_ws:
            self.ws_tasks.append(asyncio.create_task(self.ws_loop(i, ramp_s * k / total)))
            k += 1
        for i in new_gw:
            self.gw_tasks.append(asyncio.create_task(self.gw_loop(i, ramp_s * k / total)))
            k += 1

    def active(self) -> int:
        return sum(1 for lv in self.all if lv.rid and lv.t_end is None)

    def failed_tasks(self) -> list[str]:
        """Client loops that died (each reported once)."""
        out = []
        for t in (*self.ws_tasks, *self.gw_tasks):
            if (
                t.done()
                and not t.cancelled()
                and t.exception() is not None
                and t not in self.reported
            ):
                self.reported.add(t)
                out.append(repr(t.exception()))
        return out

    async def close(self, timeout: float = 20.0) -> None:
        """Stop every loop: cancel live WebSocket responses, drop gateway streams."""
        self.stop.set()
        for idx, live in self.ws_current.items():
            if live.t_end is None and live.rid:
                with contextlib.suppress(Exception):  # a closed socket is fine here
                    await self.ws_conns[idx].send(
                        json.dumps({"type": "response.cancel", "response_id": live.rid})
                    )
        for t in self.gw_tasks:
            t.cancel()
        _done, pending = await asyncio.wait([*self.ws_tasks, *self.gw_tasks], timeout=timeout)
        for t in pending:
            t.cancel()
        await asyncio.gather(*pending, return_exceptions=True)


# --------------------------------------------------------------------------- measurements


def window_lags(
    clients: Clients, clock: dict[str, list[list[float]]], t_eval: float
) -> list[float]:
    """Lag of every engine chunk written in the window (see the module docstring)."""
    out: list[float] = []
    for rid, points in clock.items():
        live = clients.by_rid.get(rid)
        if live is None:
            continue
        cum: list[list[int]] = [[], []]
        times: list[list[float]] = [[], []]
        tot = [0, 0]
        for t, r, c in list(live.frames):
            for k, n in ((0, r), (1, c)):
                if n:
                    tot[k] += n
                    cum[k].append(tot[k])
                    times[k].append(t)
        for wt, wr, wc, cr, cc in points:
            for k, chars, target in ((0, wr, cr), (1, wc, cc)):
                if not chars:
                    continue
                i = bisect.bisect_left(cum[k], target)
                if i < len(cum[k]):
                    out.append(times[k][i] - wt)
                elif live.t_end is None or live.status == "cut":
                    out.append(t_eval - wt)  # not received yet: a lower bound
    return out


def rss_mb(pids: list[int]) -> float:
    page = os.sysconf("SC_PAGE_SIZE")
    total = 0
    for pid in pids:
        try:
            total += int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * page
        except OSError:
            continue
    return round(total / 2**20, 1)


def pg_connections() -> int:
    import psycopg

    with psycopg.connect(dbname="postgres", autocommit=True, **so.PG) as conn:  # type: ignore[arg-type]
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = %s", [DB_NAME]
        ).fetchone()
    return int(row[0]) if row else 0


def pg_unfinished() -> int:
    import psycopg

    with psycopg.connect(dbname=DB_NAME, autocommit=True, **so.PG) as conn:  # type: ignore[arg-type]
        row = conn.execute(
            "SELECT count(*) FROM chat_response WHERE status IN ('queued', 'running')"
        ).fetchone()
    return int(row[0]) if row else 0


def redis_memory(event_log_ttl_s: int) -> dict[str, Any]:
    """Bytes of the live and the finished event logs in the app DB, and used_memory."""
    import redis

    r = redis.Redis.from_url(REDIS_APP)
    keys = list(r.scan_iter(match="arbor:events:*", count=1000))
    pipe = r.pipeline(transaction=False)
    for k in keys:
        pipe.memory_usage(k, samples=0)
        pipe.ttl(k)
    res = pipe.execute()
    live = [res[2 * i] or 0 for i in range(len(keys)) if res[2 * i + 1] > event_log_ttl_s]
    done = [res[2 * i] or 0 for i in range(len(keys)) if 0 <= res[2 * i + 1] <= event_log_ttl_s]
    return {
        "used_memory": int(r.info("memory")["used_memory"]),
        "live_logs": len(live),
        "live_bytes": sum(live),
        "finished_logs": len(done),
        "finished_bytes": sum(done),
    }


def _per_pid_cpu(pids: list[int]) -> dict[int, float]:
    return {pid: so.proc_cpu_seconds([pid]) for pid in pids if Path(f"/proc/{pid}").exists()}


def cpu_snapshot(
    pids: dict[str, list[int]],
) -> tuple[dict[str, dict[int, float]], float, float]:
    return {k: _per_pid_cpu(v) for k, v in pids.items()}, so.machine_busy_seconds(), now()


def cpu_percent(
    before: tuple[dict[str, dict[int, float]], float, float], pids: dict[str, list[int]]
) -> dict[str, float]:
    """CPU% of one core per group; only processes alive at both ends (Postgres backends
    of other clients come and go), everything else lands in `other`."""
    cpu0, busy0, t0 = before
    wall = now() - t0
    used = {}
    for k, v in pids.items():
        after = _per_pid_cpu(v)
        used[k] = sum(after[p] - cpu0[k][p] for p in after if p in cpu0[k])
    used["other"] = max(0.0, so.machine_busy_seconds() - busy0 - sum(used.values()))
    return {k: round(100 * v / wall, 1) for k, v in used.items()}


# --------------------------------------------------------------------------- the stack


class LoadStack:
    """The shared emulator plus N Daphne and M workers, restartable per configuration."""

    def __init__(self, env: dict[str, str], args: argparse.Namespace) -> None:
        self.env, self.args = env, args
        self.emulator: Any = None
        self.webs: list[Any] = []
        self.workers: list[Any] = []
        self.web_ports: list[int] = []

    def start_emulator(self) -> None:
        from tests.stack import Proc, free_port, wait_http

        self.emulator_port = free_port()
        self.emulator = Proc(
            "bench-load-emulator",
            [
                sys.executable, "-m", "bench.load", "serve-emulator",
                "--host", "127.0.0.1", "--port", str(self.emulator_port),
                "--tps", str(self.args.tps), "--ttft-ms", str(self.args.ttft_ms),
                "--enable-metrics",
            ],
            self.env,
        )  # fmt: skip
        self.emulator.start()
        wait_http(self.emulator_url + "/health", proc=self.emulator.popen)

    @property
    def emulator_url(self) -> str:
        return f"http://127.0.0.1:{self.emulator_port}"

    @property
    def web_urls(self) -> list[str]:
        return [f"http://127.0.0.1:{p}" for p in self.web_ports]

    def start_app(self, n_web: int, n_workers: int) -> None:
        from tests.stack import LOGS, Proc, free_port, wait_http

        py = sys.executable
        self.web_ports = [free_port() for _ in range(n_web)]
        self.webs = [
            Proc(
                f"bench-load-web{i}",
                [
                    py, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port),
                    "--proxy-headers", "webapp.asgi:application",
                ],
                self.env,
            )
            for i, port in enumerate(self.web_ports)
        ]  # fmt: skip
        self.workers = [
            Proc(
                f"bench-load-worker{i}",
                [
                    py, "-m", "celery", "-A", "webapp", "worker", "--pool", "threads",
                    "--concurrency", str(WORKER_THREADS), "--queues", "generation,celery",
                    "--loglevel", "INFO", "--without-gossip", "--without-mingle",
                    "--hostname", f"load{i}@%h",
                ],
                self.env,
            )
            for i in range(n_workers)
        ]  # fmt: skip
        sizes = {}
        for p in self.workers:
            log = LOGS / f"{p.name}.log"
            sizes[p.name] = log.stat().st_size if log.exists() else 0
        for p in (*self.webs, *self.workers):
            p.start()
        for p, url in zip(self.webs, self.web_urls, strict=True):
            wait_http(url + "/healthz", timeout=60, proc=p.popen)
        deadline = now() + 60
        for p in self.workers:
            log = LOGS / f"{p.name}.log"
            while b" ready." not in log.read_bytes()[sizes[p.name] :]:
                if p.popen.poll() is not None or now() > deadline:
                    raise RuntimeError(f"worker {p.name} did not start; see {log}")
                time.sleep(0.2)

    def stop_app(self) -> None:
        for p in (*self.webs, *self.workers):
            p.stop(timeout=30)
        self.webs, self.workers = [], []

    def pids(self) -> dict[str, list[int]]:
        out = {p.name.removeprefix("bench-load-"): so.descendants(p.popen.pid) for p in self.webs}
        out.update(
            {p.name.removeprefix("bench-load-"): so.descendants(p.popen.pid) for p in self.workers}
        )
        out["emulator"] = so.descendants(self.emulator.popen.pid)
        out["bench"] = [os.getpid()]
        out["postgres"] = so.pids_named("postgres")
        out["redis"] = so.pids_named("redis-server")
        return out


def prepare_database(env: dict[str, str]) -> None:
    import psycopg
    import redis
    from psycopg import sql

    with psycopg.connect(dbname="postgres", autocommit=True, **so.PG) as conn:  # type: ignore[arg-type]
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(DB_NAME))
        )
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(DB_NAME)))
    import subprocess

    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"],
        cwd=REPO,
        env=env,
        check=True,
    )
    for url in (REDIS_APP, REDIS_BROKER):
        redis.Redis.from_url(url).flushdb()


# --------------------------------------------------------------------------- the run


async def run_config(
    name: str,
    stack: LoadStack,
    args: argparse.Namespace,
    sids: list[str],
    keys: list[str],
    http: Any,
    deadline: float,
) -> dict[str, Any]:
    from django.conf import settings

    n_web, n_workers = CONFIGS[name]
    print(f"[{name}] starting {n_web} Daphne + {n_workers} worker(s) ...", flush=True)
    await asyncio.to_thread(stack.start_app, n_web, n_workers)
    emu = stack.emulator_url
    await http.post(emu + "/bench/clock")
    clients = Clients(http, stack.web_urls, sids, keys)
    base_mem = await asyncio.to_thread(redis_memory, settings.ARBOR_EVENT_LOG_TTL_S)
    levels_out: list[dict[str, Any]] = []
    knee = 0
    stopped = "last level"
    try:
        for level in args.levels:
            if now() > deadline:
                stopped = "time budget"
                break
            n_ws = round(level * args.ws_share)
            t_ramp = now()
            clients.grow(n_ws, level - n_ws, args.ramp_s)
            await asyncio.sleep(args.ramp_s + args.settle_s)
            pids = stack.pids()
            before = cpu_snapshot(pids)
            t0 = now()
            conns: list[int] = []
            while now() - t0 < args.hold_s:
                conns.append(await asyncio.to_thread(pg_connections))
                await asyncio.sleep(min(2.0, max(0.0, args.hold_s - (now() - t0))))
            t1 = now()
            cpu = cpu_percent(before, pids)
            rss = {k: rss_mb(v) for k, v in pids.items() if k not in ("postgres",)}
            active = clients.active()
            tokens_so_far = sum(  # tokens the live streams have been sent: their logs' size
                min(TRACE_TOKENS, (t1 - lv.t_send - lv.ttft) * args.tps)
                for lv in clients.all
                if lv.rid and lv.t_end is None and lv.ttft is not None
            )
            mem = await asyncio.to_thread(redis_memory, settings.ARBOR_EVENT_LOG_TTL_S)
            await asyncio.sleep(args.grace_s)
            t_eval = now()
            clock = (
                await http.get(emu + "/bench/clock", params={"since": t0, "until": t1}, timeout=60)
            ).json()
            lag = window_lags(clients, clock, t_eval)
            in_level = [lv for lv in clients.all if t_ramp <= lv.t_send < t1]
            ttfts = [lv.ttft for lv in in_level if lv.ttft is not None]
            ended = [lv for lv in clients.all if lv.t_end is not None and t_ramp <= lv.t_end < t1]
            errors = [lv.error for lv in ended if lv.error and lv.status != "cut"]
            errors += [f"{lv.kind}: no first token" for lv in in_level if lv.ttft is None and lv.t_end is not None and not lv.error]  # fmt: skip
            errors += clients.failed_tasks()
            row = {
                "streams": level,
                "ws": n_ws,
                "gateway": level - n_ws,
                "active_at_end": active,
                "lag_ms": {
                    "p50": so.ms(so.pct(lag, 50)),
                    "p99": so.ms(so.pct(lag, 99)),
                    "max": so.ms(max(lag)) if lag else None,
                    "n": len(lag),
                },
                "ttft_ms": {
                    "p50": so.ms(so.pct(ttfts, 50)),
                    "p99": so.ms(so.pct(ttfts, 99)),
                    "n": len(ttfts),
                },
                "responses_started": len(in_level),
                "responses_ended": len(ended),
                "errors": len(errors),
                "error_samples": errors[:5],
                "cpu_percent_of_one_core": cpu,
                "rss_mb": rss,
                "pg_connections_max": max(conns) if conns else None,
                "redis": {
                    **mem,
                    "live_log_kb_mean": round(mem["live_bytes"] / mem["live_logs"] / 1024, 1)
                    if mem["live_logs"]
                    else None,
                    "finished_log_kb_mean": round(
                        mem["finished_bytes"] / mem["finished_logs"] / 1024, 1
                    )
                    if mem["finished_logs"]
                    else None,
                    "live_log_bytes_per_token": round(mem["live_bytes"] / tokens_so_far, 1)
                    if tokens_so_far
                    else None,
                    "used_memory_delta_kb_per_active": round(
                        (mem["used_memory"] - base_mem["used_memory"]) / max(1, active) / 1024, 1
                    ),
                },
                "hold_s": round(t1 - t0, 1),
                "loadavg_1m": round(os.getloadavg()[0], 2),
            }
            p99 = row["lag_ms"]["p99"]
            bad_errors = len(errors) > MAX_ERROR_RATE * max(1, len(in_level) + len(ended))
            row["pass"] = p99 is not None and p99 <= LAG_LIMIT_MS and not bad_errors
            levels_out.append(row)
            print(
                f"[{name}] {level:>4} streams: lag p50/p99 {row['lag_ms']['p50']}/{p99} ms, "
                f"ttft p50 {row['ttft_ms']['p50']} ms, errors {len(errors)}, "
                f"pg conns {row['pg_connections_max']}, other cpu {cpu['other']}%, "
                f"{'ok' if row['pass'] else 'OVER'}",
                flush=True,
            )
            if not row["pass"]:
                stopped = f"lag p99 {p99} ms > {LAG_LIMIT_MS:g}" if not bad_errors else "errors"
                break
            knee = level
    finally:
        print(f"[{name}] stopping clients and processes ...", flush=True)
        await clients.close()
        for _ in range(40):
            if await asyncio.to_thread(pg_unfinished) == 0:
                break
            await asyncio.sleep(0.5)
        await asyncio.to_thread(stack.stop_app)
    return {
        "config": name,
        "daphne": n_web,
        "workers": n_workers,
        "knee_streams": knee,
        "stopped": stopped,
        "levels": levels_out,
    }


async def amain(args: argparse.Namespace) -> dict[str, Any]:
    import httpx

    t_start = now()
    env = so.configure_env(args)
    env.update(
        {
            "DATABASE_URL": f"postgres://{so.PG['user']}@{so.PG['host']}:{so.PG['port']}/{DB_NAME}",
            "REDIS_URL": REDIS_APP,
            "CELERY_BROKER_URL": REDIS_BROKER,
        }
    )
    os.environ.update({k: v for k, v in env.items() if k != "PYTHONPATH"})
    os.environ["ARBOR_DB_POOL"] = "false"  # this process: plain connections
    print(f"preparing database {DB_NAME} and Redis /3 /15 ...", flush=True)
    prepare_database(env)
    import django

    django.setup()
    from django.conf import settings
    from django.db import connections

    top = max(args.levels)
    n_ws = round(top * args.ws_share)
    stack = LoadStack(env, args)
    stack.start_emulator()
    configs = []
    try:
        sids = await asyncio.to_thread(so.setup_data, stack.emulator_url, n_ws)
        keys = await asyncio.to_thread(so.setup_keys, stack.emulator_url, top - n_ws)
        await asyncio.to_thread(connections.close_all)
        limits = httpx.Limits(max_connections=2000, max_keepalive_connections=2000)
        timeout = httpx.Timeout(300.0, connect=10)
        budget_each = (args.budget_s - (now() - t_start)) / len(args.configs)
        async with httpx.AsyncClient(limits=limits, timeout=timeout) as http:
            for name in args.configs:
                deadline = now() + budget_each - 30  # leave time to stop
                configs.append(await run_config(name, stack, args, sids, keys, http, deadline))
    finally:
        stack.stop_app()
        stack.emulator.stop()
    return {
        "bench": "load",
        "config": {
            "tps": args.tps,
            "ttft_ms": args.ttft_ms,
            "trace": TRACE,
            "levels": args.levels,
            "ws_share": args.ws_share,
            "ramp_s": args.ramp_s,
            "settle_s": args.settle_s,
            "hold_s": args.hold_s,
            "lag_limit_ms": LAG_LIMIT_MS,
            "coalesce_ms": settings.ARBOR_COALESCE_MS,
            "db_pool_max": settings.DATABASES["default"]
            .get("OPTIONS", {})
            .get("pool", {})
            .get("max_size")
            if env.get("ARBOR_DB_POOL", "true") != "false"
            else None,
            "event_log_ttl_s": settings.ARBOR_EVENT_LOG_TTL_S,
            "worker_threads": WORKER_THREADS,
            "cpus": os.cpu_count(),
        },
        "configs": configs,
        "wall_s": round(now() - t_start, 1),
    }


def _sum(d: dict[str, float], prefix: str) -> float:
    return round(sum(v for k, v in d.items() if k.startswith(prefix)), 1)


def _max(d: dict[str, float], prefix: str) -> float:
    return max((v for k, v in d.items() if k.startswith(prefix)), default=0.0)


def report(payload: dict[str, Any]) -> None:
    cfg = payload["config"]
    rows, res = [], []
    for c in payload["configs"]:
        for lv in c["levels"]:
            label = f"{c['daphne']}D+{c['workers']}W"
            rows.append(
                [
                    label,
                    f"{lv['streams']} ({lv['ws']}+{lv['gateway']})",
                    lv["active_at_end"],
                    lv["lag_ms"]["p50"],
                    lv["lag_ms"]["p99"],
                    lv["lag_ms"]["max"],
                    lv["ttft_ms"]["p50"],
                    lv["ttft_ms"]["p99"],
                    lv["errors"],
                    "ok" if lv["pass"] else "OVER",
                ]
            )
            cpu, rss, r = lv["cpu_percent_of_one_core"], lv["rss_mb"], lv["redis"]
            res.append(
                [
                    label,
                    str(lv["streams"]),
                    _sum(cpu, "web"),
                    _sum(cpu, "worker"),
                    cpu["emulator"],
                    cpu["bench"],
                    cpu["postgres"],
                    cpu["redis"],
                    cpu["other"],
                    _max(rss, "web"),
                    _max(rss, "worker"),
                    lv["pg_connections_max"],
                    r["live_log_kb_mean"],
                    r["finished_log_kb_mean"],
                    r["live_log_bytes_per_token"],
                    r["used_memory_delta_kb_per_active"],
                ]
            )
    print_table(
        f"load: emulator {cfg['tps']:g} tok/s/stream, trace {cfg['trace']}, "
        f"{int(cfg['ws_share'] * 100)}% WebSocket / rest gateway, hold {cfg['hold_s']:g} s "
        f"per level (times in ms; knee = last level with lag p99 <= {cfg['lag_limit_ms']:g})",
        ["config", "streams (ws+gw)", "active", "lag p50", "lag p99", "lag max",
         "ttft p50", "ttft p99", "errors", "lag"],
        rows,
    )  # fmt: skip
    print_table(
        "resources over the hold (CPU % of one core, 2 cores = 200%; RSS MB per process, "
        "max; Redis KB per event log)",
        ["config", "streams", "cpu daphne", "cpu worker", "cpu emu", "cpu bench", "cpu pg",
         "cpu redis", "cpu other", "rss daphne", "rss worker", "pg conns", "redis live KB",
         "redis done KB", "redis B/token", "used_mem KB/active"],
        res,
    )  # fmt: skip
    print()
    for c in payload["configs"]:
        print(
            f"knee {c['daphne']} Daphne + {c['workers']} worker(s): {c['knee_streams']} streams "
            f"(stopped: {c['stopped']})"
        )


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["serve-emulator"]:
        return serve_emulator(argv[1:])
    p = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    p.add_argument("--levels", default="5,10,25,50,100,150,200,250,300")
    p.add_argument("--configs", default="1x1,2x2", help="comma list of 1x1, 2x2")
    p.add_argument("--tps", type=float, default=40.0, help="emulator tokens/s per stream")
    p.add_argument("--ttft-ms", type=float, default=300.0, help="emulator time to first token")
    p.add_argument("--ws-share", type=float, default=0.8, help="share of WebSocket streams")
    p.add_argument("--ramp-s", type=float, default=3.0, help="new clients start over this")
    p.add_argument("--settle-s", type=float, default=3.0, help="wait before measuring")
    p.add_argument("--hold-s", type=float, default=20.0, help="measured seconds per level")
    p.add_argument("--grace-s", type=float, default=1.0, help="late frames still matched")
    p.add_argument("--budget-s", type=float, default=600.0, help="whole run, roughly")
    p.add_argument("--coalesce-ms", type=int, default=None, help="override ARBOR_COALESCE_MS")
    p.add_argument("--out", default="load", help="results file name (no .json)")
    args = p.parse_args(argv)
    args.levels = [int(x) for x in args.levels.split(",")]
    args.configs = [c for c in args.configs.split(",") if c]
    if unknown := [c for c in args.configs if c not in CONFIGS]:
        raise SystemExit(f"unknown config(s) {unknown}; known: {list(CONFIGS)}")
    if max(args.levels) > WORKER_THREADS:
        raise SystemExit(f"levels must stay at or below {WORKER_THREADS} (one worker's threads)")
    payload = asyncio.run(amain(args))
    report(payload)
    path = write_json(args.out, payload)
    print(f"\nwrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
