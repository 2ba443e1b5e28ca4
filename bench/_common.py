"""Small shared helpers for the benchmark scripts: fixtures, tables, JSON."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
FIXTURES = REPO.parent / "shared" / "fixtures"
RESULTS = Path(__file__).resolve().parent / "results"

if str(REPO) not in sys.path:  # run standalone: .venv/bin/python bench/<name>.py
    sys.path.insert(0, str(REPO))


def load_jsonl(relpath: str) -> list[dict[str, Any]]:
    """Read one fixture file (JSON Lines) from ../shared/fixtures, or exit."""
    path = FIXTURES / relpath
    if not path.exists():
        sys.exit(f"fixture {path} not found (expected ../shared/fixtures next to the repo)")
    with path.open(encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def ta_reasoning(record: dict[str, Any]) -> str:
    """Return the text between <think> and </think> of a thought-anchors record."""
    cot = str(record["full_cot"])
    start = cot.find("<think>")
    start = 0 if start < 0 else start + len("<think>")
    end = cot.find("</think>", start)
    return cot[start : end if end >= 0 else len(cot)]


def print_table(title: str, header: list[str], rows: list[list[Any]]) -> None:
    """Print a plain-text table with right-aligned numeric columns."""
    cells = [[_fmt(c) for c in row] for row in rows]
    widths = [
        max(len(h), *(len(r[i]) for r in cells)) if cells else len(h) for i, h in enumerate(header)
    ]
    print(f"\n{title}")
    print(
        "  ".join(
            h.ljust(w) if i == 0 else h.rjust(w)
            for i, (h, w) in enumerate(zip(header, widths, strict=True))
        )
    )
    print("  ".join("-" * w for w in widths))
    for row in cells:
        print(
            "  ".join(
                c.ljust(w) if i == 0 else c.rjust(w)
                for i, (c, w) in enumerate(zip(row, widths, strict=True))
            )
        )


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:,.3f}" if abs(value) < 100 else f"{value:,.0f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def write_json(name: str, payload: dict[str, Any]) -> Path:
    """Write a result file bench/results/<name>.json and return its path."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(payload, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return path


BENCH_SECRET = "bench-only-not-a-secret-" + "x" * 32


def django_env(*, db: str, redis: str) -> dict[str, str]:
    """Return the environment of a bench's own Django processes (its database and Redis)."""
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "webapp.settings",
        "ARBOR_SECRET_KEY": BENCH_SECRET,
        "DATABASE_URL": f"postgres://root@127.0.0.1:5432/{db}",
        "REDIS_URL": redis,
        "CELERY_BROKER_URL": redis,
        "ARBOR_DEBUG": "false",
        "ARBOR_LOG_LEVEL": "WARNING",
        "PYTHONUNBUFFERED": "1",
        "PYTHONPATH": str(REPO),
    }


def setup_django(*, db: str, redis: str, fresh: bool) -> None:
    """Set Django up in this process on the bench's database, re-created when `fresh`."""
    import psycopg

    if fresh:
        with psycopg.connect("postgresql://root@127.0.0.1:5432/postgres", autocommit=True) as c:
            c.execute(f"DROP DATABASE IF EXISTS {db} WITH (FORCE)")
            c.execute(f"CREATE DATABASE {db}")
    os.environ.update(django_env(db=db, redis=redis))
    os.environ["ARBOR_DB_POOL"] = "false"
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def start_daphne(*, env: dict[str, str], name: str) -> tuple[subprocess.Popen[bytes], str]:
    """Start Daphne on a free port with the pool on; return it and its URL once healthy.

    Its log goes to `.run/test-logs/bench-<name>-daphne.log`.
    """
    from tests.stack import free_port, wait_http

    port = free_port()
    env = {**env, "ARBOR_DB_POOL": "true"}
    log = REPO / ".run" / "test-logs" / f"bench-{name}-daphne.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen(
        [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), "webapp.asgi:application"],
        cwd=REPO, env=env, stdout=log.open("ab"), stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    wait_http(url + "/healthz", proc=proc)
    return proc, url
