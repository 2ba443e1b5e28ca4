"""Overhead of the OpenAI-compatible gateway over the bare engine: added TTFT and delivery lag.

Run (Postgres and Redis on 127.0.0.1; about 2 minutes)::

    .venv/bin/python bench/gateway_overhead.py            # levels 1, 10, 50, one run
    .venv/bin/python bench/gateway_overhead.py --levels 1,10 --rounds 2,2

Same stack, database, emulator, workload and statistics as ``stream_overhead.py``
(it reuses that script's ``BenchStack``, ``prepare_database``, ``direct_one``,
``closed_loop`` and ``summarise``, and the clocked emulator that records, per
request ``rid``, when each chunk was written). Per level N: N closed-loop clients,
each doing R responses, first directly against the emulator (``POST
/v1/chat/completions``, stream) and then through Arbor's gateway (``POST
/v1/chat/completions`` on Daphne with a Bearer API key, one user and key per
client), same prompt, same trace, same speed.

- TTFT = request sent → first SSE chunk with non-empty ``reasoning_content``
  received, by this same client. Added = percentile(gateway) - percentile(direct).
  The exact per-response figure (gateway TTFT minus the engine's own time from
  request arrival to first reasoning chunk written) is reported too.
- Delivery lag = per engine chunk, receive time of the gateway chunk holding its
  last character - the chunk's write time in the emulator (the worker passes
  ``rid`` = response id, read from the ``X-Arbor-Response-Ids`` header).

Target (issue 6): added TTFT p50 < 15 ms at 10 streams.
Results: a table on stdout and ``bench/results/gateway_overhead.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from typing import Any

try:
    from bench._common import print_table, write_json
    from bench.stream_overhead import (
        WORKER_CONCURRENCY,
        BenchStack,
        Result,
        closed_loop,
        configure_env,
        direct_one,
        now,
        prepare_database,
        prompt_for,
        summarise,
    )
except ImportError:  # run as a script: bench/ is sys.path[0]
    from _common import print_table, write_json  # type: ignore[no-redef]
    from stream_overhead import (  # type: ignore[no-redef]
        WORKER_CONCURRENCY,
        BenchStack,
        Result,
        closed_loop,
        configure_env,
        direct_one,
        now,
        prepare_database,
        prompt_for,
        summarise,
    )

TARGETS = {10: {"ttft_added_p50_ms": 15.0}}


def setup_keys(emulator_url: str, users: int) -> list[str]:
    """Create the model, its endpoint and one user with an API key per client."""
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
        user, _ = get_user_model().objects.get_or_create(username=f"gw{i:03d}")
        user.groups.add(group)
        keys.append(create_api_key(user=user, name="bench")[1])
    return keys


async def gateway_one(http: Any, web_url: str, key: str, prompt: str, max_tokens: int) -> Result:
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


async def run_level(
    stack: BenchStack, n: int, rounds: int, args: argparse.Namespace, keys: list[str], http: Any
) -> dict[str, Any]:
    trace, max_tokens, emu, web = args.trace, args.max_tokens, stack.emulator_url, stack.web_url

    async def direct(i: int, k: int) -> Result:
        return await direct_one(http, emu, prompt_for(trace, k), max_tokens)

    async def gateway(i: int, k: int) -> Result:
        return await gateway_one(http, web, keys[i], prompt_for(trace, k), max_tokens)

    # Both phases: an unmeasured warm-up round, then the measured rounds.
    await closed_loop(
        n, 1, args.stagger_s, lambda i, k: direct_one(http, emu, prompt_for(trace, k), 8)
    )
    await http.post(emu + "/bench/clock")
    direct_results = await closed_loop(n, rounds, args.stagger_s, direct)
    clock = (await http.get(emu + "/bench/clock", timeout=60)).json()
    direct_summary = summarise(direct_results, clock, exact=False)

    await closed_loop(
        n, 1, args.stagger_s, lambda i, k: gateway_one(http, web, keys[i], prompt_for(trace, k), 8)
    )
    await asyncio.sleep(1.0)
    await http.post(emu + "/bench/clock")
    t0 = now()
    gw_results = await closed_loop(n, rounds, args.stagger_s, gateway, base=20_000)
    wall = now() - t0
    clock = (await http.get(emu + "/bench/clock", timeout=60)).json()
    gw_summary = summarise(gw_results, clock, exact=True)

    d50, d99 = direct_summary["ttft_ms"]["p50"], direct_summary["ttft_ms"]["p99"]
    g50, g99 = gw_summary["ttft_ms"]["p50"], gw_summary["ttft_ms"]["p99"]
    added = {
        "p50": round(g50 - d50, 2) if None not in (g50, d50) else None,
        "p99": round(g99 - d99, 2) if None not in (g99, d99) else None,
    }
    checks = {}
    for name, limit in TARGETS.get(n, {}).items():
        value = added["p50"]
        checks[name] = {
            "limit": limit,
            "value": value,
            "pass": value is not None and value < limit and gw_summary["errors"] == 0,
        }
    return {
        "streams": n,
        "rounds": rounds,
        "direct": direct_summary,
        "gateway": gw_summary,
        "ttft_added_ms": added,
        "wall_s": round(wall, 2),
        "loadavg_1m_after": round(os.getloadavg()[0], 2),
        "targets": checks,
    }


async def amain(args: argparse.Namespace) -> dict[str, Any]:
    import httpx

    levels = [int(x) for x in args.levels.split(",")]
    rounds = [int(x) for x in args.rounds.split(",")]
    if len(rounds) != len(levels):
        raise SystemExit("--rounds needs one value per level")
    if max(levels) >= WORKER_CONCURRENCY:
        raise SystemExit(f"levels must stay below the worker's {WORKER_CONCURRENCY} threads")
    env = configure_env(args)
    os.environ.update({k: v for k, v in env.items() if k != "PYTHONPATH"})
    os.environ["ARBOR_DB_POOL"] = "false"  # this process: plain connections
    print("preparing the bench database and Redis ...", flush=True)
    prepare_database(env)
    import django

    django.setup()
    from django.db import connections

    stack = BenchStack(env=env, tps=args.tps, ttft_ms=args.ttft_ms)
    print("starting emulator, worker, Daphne ...", flush=True)
    stack.start()
    try:
        keys = await asyncio.to_thread(setup_keys, stack.emulator_url, max(levels))
        await asyncio.to_thread(connections.close_all)
        out = []
        limits = httpx.Limits(max_connections=500, max_keepalive_connections=500)
        timeout = httpx.Timeout(120.0, connect=10)
        async with httpx.AsyncClient(limits=limits, timeout=timeout) as http:
            for n, r in zip(levels, rounds, strict=True):
                print(f"level {n}: {n} streams x {r} responses ...", flush=True)
                out.append(await run_level(stack, n, r, args, keys, http))
    finally:
        stack.stop()
    return {
        "bench": "gateway_overhead",
        "config": {
            "tps": args.tps,
            "ttft_ms": args.ttft_ms,
            "trace": args.trace,
            "max_tokens": args.max_tokens,
            "stagger_s": args.stagger_s,
            "worker": f"celery threads pool, concurrency {WORKER_CONCURRENCY}, 1 process",
            "web": "1 Daphne process",
            "cpus": os.cpu_count(),
        },
        "targets": {str(k): v for k, v in TARGETS.items()},
        "levels": out,
    }


def _verdict(targets: dict[str, Any]) -> str:
    if not targets:
        return "-"
    return "pass" if all(c["pass"] for c in targets.values()) else "FAIL"


def report(payload: dict[str, Any]) -> None:
    rows = []
    for lv in payload["levels"]:
        d, g = lv["direct"], lv["gateway"]
        exact = g.get("ttft_added_exact_ms", {})
        rows.append(
            [
                lv["streams"],
                f"{g['ok']}/{g['responses']}",
                d["ttft_ms"]["p50"],
                g["ttft_ms"]["p50"],
                lv["ttft_added_ms"]["p50"],
                lv["ttft_added_ms"]["p99"],
                exact.get("p50"),
                d["lag_ms"]["p50"],
                g["lag_ms"]["p50"],
                g["lag_ms"]["p99"],
                _verdict(lv["targets"]),
            ]
        )
    print_table(
        "Gateway (/v1/chat/completions) vs emulator direct (ms)",
        [
            "streams", "ok", "ttft direct p50", "ttft gw p50", "added p50", "added p99",
            "added exact p50", "lag direct p50", "lag gw p50", "lag gw p99", "target",
        ],
        rows,
    )  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--levels", default="1,10,50", help="concurrent streams per level")
    p.add_argument("--rounds", default="4,3,2", help="responses per stream, per level")
    p.add_argument("--tps", type=float, default=60.0, help="emulator tokens/s per stream")
    p.add_argument("--ttft-ms", type=float, default=200.0, help="emulator time to first token")
    p.add_argument("--trace", default="hello", help="emulator corpus trace id to replay")
    p.add_argument("--max-tokens", type=int, default=32_768)
    p.add_argument("--stagger-s", type=float, default=1.0, help="spread of client start times")
    p.add_argument("--coalesce-ms", type=int, default=None, help="override ARBOR_COALESCE_MS")
    p.add_argument("--out", default="gateway_overhead", help="results file name (no .json)")
    args = p.parse_args(argv)
    payload = asyncio.run(amain(args))
    report(payload)
    path = write_json(args.out, payload)
    print(f"\nwrote {path}")
    failed = [lv for lv in payload["levels"] for c in lv["targets"].values() if not c["pass"]]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
