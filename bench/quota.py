"""Quota admission under load: reservations per second and latency of the check.

Run (Postgres and Redis on 127.0.0.1)::

    .venv/bin/python bench/quota.py                 # 50 threads, 10 s per scenario
    .venv/bin/python bench/quota.py --threads 20 --seconds 5

Uses its own database ``arbor_bench_quota`` (dropped, re-created and migrated)
and Redis database 14 (for the limits cache). 50 threads each run a closed
loop of ``reserve_tokens`` (the one-statement conditional reservation, in its
own transaction, as the chat send does) followed by ``settle_usage``; the
latency measured is that of the reservation (the quota check) alone. Two
scenarios: every thread on ONE user (all contend for the same two counter
rows: the worst case) and one user per thread. Writes bench/results/quota.json.
"""

from __future__ import annotations

import argparse
import os
import statistics
import threading
import time
import uuid
from typing import Any

try:
    from bench._common import print_table, write_json
except ImportError:  # run as a script: .venv/bin/python bench/quota.py
    from _common import print_table, write_json  # type: ignore[no-redef]

DB = "arbor_bench_quota"


def setup_django() -> None:
    import psycopg

    with psycopg.connect("postgresql://root@127.0.0.1:5432/postgres", autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {DB}")
        conn.execute(f"CREATE DATABASE {DB}")
    os.environ.update(
        DJANGO_SETTINGS_MODULE="webapp.settings",
        ARBOR_SECRET_KEY="bench-only-not-a-secret-" + "x" * 32,
        DATABASE_URL=f"postgres://root@127.0.0.1:5432/{DB}",
        REDIS_URL="redis://127.0.0.1:6379/14",
        ARBOR_DB_POOL="false",
        ARBOR_LOG_LEVEL="WARNING",
    )
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def run(scenario: str, threads: int, seconds: float) -> dict[str, Any]:
    from django.contrib.auth import get_user_model
    from django.db import connections

    from webapp.accounts import quota
    from webapp.serving import services

    llm = services.upsert_llm(slug="bench", name="Bench", served_model_name="b")
    users = [
        get_user_model().objects.get_or_create(username=f"{scenario}-{i}")[0]
        for i in range(1 if scenario == "one user" else threads)
    ]
    latencies: list[list[float]] = [[] for _ in range(threads)]
    refused = [0] * threads
    errors: list[str] = []
    stop = time.monotonic() + seconds
    barrier = threading.Barrier(threads)

    def worker(i: int) -> None:
        user = users[i % len(users)]
        limits = quota.effective_limits(user_id=user.pk)
        barrier.wait()
        try:
            while time.monotonic() < stop:
                rid = uuid.uuid4()
                t0 = time.perf_counter()
                try:
                    quota.reserve_tokens(
                        user_id=user.pk, username=user.username, response_id=rid, llm=llm,
                        max_tokens=1000, prompt_estimate=100, limits=limits,
                    )  # fmt: skip
                except Exception as exc:
                    refused[i] += 1
                    errors.append(f"{type(exc).__name__}: {exc}"[:200])
                    continue
                finally:
                    latencies[i].append(time.perf_counter() - t0)
                quota.settle_usage(
                    response_id=rid, outcome="completed",
                    usage={"prompt_tokens": 50, "completion_tokens": 200, "reasoning_tokens": 150},
                )  # fmt: skip
        finally:
            connections.close_all()

    started = time.monotonic()
    pool = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    elapsed = time.monotonic() - started
    flat = sorted(x * 1000 for lat in latencies for x in lat)
    q = statistics.quantiles(flat, n=100)
    return {
        "scenario": scenario,
        "threads": threads,
        "reservations": len(flat) - sum(refused),
        "refused": sum(refused),
        "reservations_per_s": (len(flat) - sum(refused)) / elapsed,
        "p50_ms": q[49],
        "p99_ms": q[98],
        "max_ms": flat[-1],
        "errors": sorted(set(errors))[:5],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()
    setup_django()
    rows = [run(s, args.threads, args.seconds) for s in ("one user", "one user per thread")]
    print_table(
        f"Quota reservation (reserve + settle loop), {args.threads} threads, {args.seconds:.0f} s",
        ["scenario", "reservations/s", "p50 ms", "p99 ms", "max ms", "refused"],
        [
            [
                r["scenario"],
                r["reservations_per_s"],
                r["p50_ms"],
                r["p99_ms"],
                r["max_ms"],
                r["refused"],
            ]
            for r in rows
        ],
    )
    write_json("quota", {"threads": args.threads, "seconds": args.seconds, "rows": rows})


if __name__ == "__main__":
    main()
