"""Export throughput and memory: 100,000 labelled items through the real HTTP endpoint.

Run (Postgres and Redis on 127.0.0.1; ~5 min, most of it the 100k exports)::

    .venv/bin/python bench/export.py                  # seed 10k + 100k items, export all kinds
    .venv/bin/python bench/export.py --reuse          # keep the seeded database from last time
    .venv/bin/python bench/export.py --sizes 10000 --kinds prm

Uses its own database ``arbor_bench_export`` (dropped, re-created and migrated unless
``--reuse``) and Redis database 11 (cache only; nothing is flushed). Seeding goes
straight to Postgres with COPY: per campaign, prompts with two real DeepSeek-R1 traces
each (``../shared/fixtures/r1-traces/gsm8k.jsonl``, ~9 kB of reasoning, cycled), and
per prompt five items (one pairwise, two step-label, two rubric), each labelled by two
of 20 annotators (randomised but seeded values: first errors, okay steps, ties), with
2% of items adjudicated. So ``--sizes 100000`` is 100,000 items, 200,000 labels and
40,000 traces.

Each export is a GET of ``/api/exports/{kind}.jsonl`` from one Daphne process
(``webapp.asgi``, the production entry point, with the connection pool) by a streaming
httpx client that only counts bytes and lines. Measured per kind and size: records,
bytes, seconds, records/s and MB/s, time to the first byte, and Daphne's memory: its
RSS before the request and its peak RSS during it (``VmHWM`` after resetting it through
``/proc/<pid>/clear_refs``), the difference being what the export cost. Constant
memory shows as the same peak delta at 10k and at 100k items. The same export read
in-process (the generator alone, no HTTP) gives the ``direct`` column: the gap to it
is what Daphne and the ASGI hand-off cost.

Writes bench/results/export.json. On the 2-core machine Postgres, Daphne and this
client share the CPU; the numbers are a floor.
"""

from __future__ import annotations

import argparse
import os
import random
import re
import sys
import time
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

try:
    from bench._common import django_env, load_jsonl, print_table, start_daphne, write_json
    from bench._common import setup_django as bench_setup_django
except ImportError:  # run as a script: .venv/bin/python bench/export.py
    from _common import django_env, load_jsonl, print_table, start_daphne, write_json  # type: ignore[no-redef]
    from _common import setup_django as bench_setup_django  # type: ignore[no-redef]

DB = "arbor_bench_export"
REDIS = "redis://127.0.0.1:6379/11"
ANNOTATORS = 20
ITEMS_PER_PROMPT = 5  # 1 pairwise + 2 step labels + 2 rubric
KINDS = ("dpo", "kto", "prm", "sft")


def env_for_django() -> dict[str, str]:
    return django_env(db=DB, redis=REDIS)


def setup_django(*, fresh: bool) -> None:
    bench_setup_django(db=DB, redis=REDIS, fresh=fresh)


# --- seeding with COPY --------------------------------------------------------------------


def copy_rows(model: Any, rows: Iterable[dict[str, Any]]) -> int:
    """COPY rows into the model's table; columns not given take the field's default."""
    from django.db import connection, models
    from django.utils import timezone
    from psycopg.types.json import Jsonb

    fields = list(model._meta.concrete_fields)
    qn = connection.ops.quote_name
    cols = ", ".join(qn(f.column) for f in fields)
    now = timezone.now()
    n = 0
    with connection.cursor() as cursor:
        sql = f"COPY {qn(model._meta.db_table)} ({cols}) FROM STDIN"
        with cursor.cursor.copy(sql) as copy:
            for row in rows:
                values = []
                for f in fields:
                    if f.attname in row:
                        v = row[f.attname]
                    elif getattr(f, "auto_now", False) or getattr(f, "auto_now_add", False):
                        v = now
                    else:
                        v = f.get_default()  # "" for text columns, None when nullable
                    if isinstance(f, models.JSONField) and v is not None:
                        v = Jsonb(v)
                    values.append(v)
                copy.write_row(values)
                n += 1
    return n


def reset_sequences(*models_: Any) -> None:
    from django.core.management.color import no_style
    from django.db import connection

    with connection.cursor() as cursor:
        for sql in connection.ops.sequence_reset_sql(no_style(), list(models_)):
            cursor.execute(sql)


def fixture_traces() -> list[dict[str, Any]]:
    """Real R1 traces with their leaf-step units and a boxed answer."""
    from inference.reasoning import build_steps

    out = []
    for rec in load_jsonl("r1-traces/gsm8k.jsonl"):
        reasoning = rec["reasoning"].strip()
        steps = build_steps(reasoning)
        parents = {s["parent_id"] for s in steps if s["parent_id"]}
        units = [
            {"start": s["start"], "end": s["end"] or len(reasoning), "answer": False}
            for s in sorted(steps, key=lambda s: (s["start"], s["index"]))
            if s["id"] not in parents and (s["end"] or len(reasoning)) > s["start"]
        ]
        units.append({"start": 0, "end": 0, "answer": True})
        boxed = re.findall(r"\\boxed\{([^{}]*)\}", reasoning)
        answer = f"The answer is $\\boxed{{{boxed[-1] if boxed else '?'}}}$."
        out.append(
            {"question": rec["question"], "reasoning": reasoning, "answer": answer, "units": units}
        )
    return out


class Ids:
    """Explicit ids for the bigint tables, so rows can point at each other within one COPY."""

    def __init__(self) -> None:
        self.next: dict[str, int] = {}

    def take(self, name: str, n: int = 1) -> int:
        start = self.next.get(name, 1)
        self.next[name] = start + n
        return start


def step_value(units: list[dict[str, Any]], rng: random.Random, error: int | None) -> dict:
    ratings: list[int | None] = []
    for i in range(len(units)):
        if error is not None and i > error:
            ratings.append(None)
        elif i == error:
            ratings.append(-1)
        else:
            ratings.append(0 if rng.random() < 0.2 else 1)
    return {
        "units": units,
        "segmentation_edited": False,
        "steps": [{"rating": r, "tags": [], "note": ""} for r in ratings],
        "finish_reason": "found_error" if error is not None else "solution",
        "rationale": "",
    }


def seed(*, size: int, ids: Ids, traces_src: list[dict[str, Any]], ctx: dict[str, Any]) -> str:
    """Seed a campaign of `size` labelled items; return its id."""
    from datetime import timedelta

    from django.utils import timezone

    from webapp.annotation.models import (
        Adjudication,
        Assignment,
        Campaign,
        Guideline,
        Item,
        Label,
        Prompt,
        Trace,
    )
    from webapp.chat.models import Conversation, Message, Response

    rng = random.Random(size)
    admin, annotators, author, llm, endpoint = (
        ctx["admin"], ctx["annotators"], ctx["author"], ctx["llm"], ctx["endpoint"],
    )  # fmt: skip
    campaign = Campaign.objects.create(
        name=f"bench {size}", task_types=["step_labels", "rubric", "pairwise"],
        overlap=2, created_by=admin,
    )  # fmt: skip
    guideline = Guideline.objects.create(campaign=campaign, version=1, text="g", created_by=admin)
    conversation = Conversation.objects.create(user=author, llm=llm, title="bench")
    prompts = size // ITEMS_PER_PROMPT
    now = timezone.now()
    prompt0, trace0 = ids.take("prompt", prompts), ids.take("trace", 2 * prompts)
    item0 = ids.take("item", prompts * ITEMS_PER_PROMPT)
    label0 = ids.take("label", prompts * ITEMS_PER_PROMPT * 2)
    questions = [uuid.uuid4() for _ in range(prompts)]
    answers = [uuid.uuid4() for _ in range(2 * prompts)]

    def src(t: int) -> dict[str, Any]:
        return traces_src[t % len(traces_src)]

    copy_rows(
        Prompt,
        (
            {"id": prompt0 + p, "campaign_id": campaign.pk, "external_id": f"p{p}",
             "text": src(2 * p)["question"], "reference_answer": ""}
            for p in range(prompts)
        ),
    )  # fmt: skip
    copy_rows(
        Message,
        (
            {"id": questions[p], "conversation_id": conversation.pk, "role": "user",
             "content": src(2 * p)["question"]}
            for p in range(prompts)
        ),
    )  # fmt: skip
    copy_rows(
        Message,
        (
            {"id": answers[t], "conversation_id": conversation.pk, "role": "assistant",
             "parent_id": questions[t // 2]}
            for t in range(2 * prompts)
        ),
    )  # fmt: skip
    t0 = now - timedelta(hours=1)
    copy_rows(
        Response,
        (
            {"message_id": answers[t], "user_id": author.pk, "conversation_id": conversation.pk,
             "llm_id": llm.pk, "endpoint_id": endpoint.pk, "status": "completed",
             "params": {"temperature": 0.6, "top_p": 0.95, "max_tokens": 32768},
             "reasoning": src(t)["reasoning"], "content": src(t)["answer"],
             "finish_reason": "stop", "prompt_tokens": 120, "completion_tokens": 2400,
             "reasoning_tokens": 2300, "started_at": t0,
             "first_token_at": t0 + timedelta(milliseconds=300),
             "answer_started_at": t0 + timedelta(seconds=40), "finished_at": t0 + timedelta(seconds=41)}
            for t in range(2 * prompts)
        ),
    )  # fmt: skip
    copy_rows(
        Trace,
        (
            {"id": trace0 + t, "campaign_id": campaign.pk, "prompt_id": prompt0 + t // 2,
             "response_id": answers[t], "source": "batch", "sample_index": t % 2,
             "auto_correct": rng.random() < 0.7, "format_ok": True}
            for t in range(2 * prompts)
        ),
    )  # fmt: skip

    # Items: per prompt [pairwise, steps a, steps b, rubric a, rubric b].
    def item_rows() -> Iterator[dict[str, Any]]:
        for p in range(prompts):
            a, b = trace0 + 2 * p, trace0 + 2 * p + 1
            base = item0 + p * ITEMS_PER_PROMPT
            yield {"id": base, "campaign_id": campaign.pk, "task_type": "pairwise",
                   "trace_a_id": a, "trace_b_id": b, "filled": 2, "submitted": 2}  # fmt: skip
            for k, (kind, t) in enumerate(
                (("step_labels", a), ("step_labels", b), ("rubric", a), ("rubric", b)), start=1
            ):
                yield {"id": base + k, "campaign_id": campaign.pk, "task_type": kind,
                       "trace_a_id": t, "filled": 2, "submitted": 2}  # fmt: skip

    copy_rows(Item, item_rows())

    def value(k: int, p: int, first: dict[str, Any] | None) -> dict[str, Any]:
        if first is not None and rng.random() < 0.8:
            return first  # the second annotator mostly agrees
        if k == 0:
            choice = lambda: rng.choice(["a", "a", "b", "b", "tie", "both_bad"])  # noqa: E731
            return {"reasoning": choice(), "answer": choice(), "rationale": ""}
        if k in (1, 2):
            units = src(2 * p + (k - 1))["units"]
            error = rng.randrange(len(units)) if rng.random() < 0.35 else None
            return step_value(units, rng, error)
        score = lambda: rng.randint(1, 5)  # noqa: E731
        return {"correctness": score(), "soundness": score(), "efficiency": score(),
                "clarity": score(), "rationale": ""}  # fmt: skip

    assignment_ids: list[uuid.UUID] = []
    labels: list[tuple[int, int, int, dict[str, Any]]] = []  # label id, item, annotator, value
    assignments: list[dict[str, Any]] = []

    def flush() -> None:
        copy_rows(Assignment, assignments)
        copy_rows(
            Label,
            (
                {"id": lid, "assignment_id": aid, "item_id": iid, "campaign_id": campaign.pk,
                 "annotator_id": uid, "task_type": ("pairwise", "step_labels", "step_labels",
                 "rubric", "rubric")[(iid - item0) % ITEMS_PER_PROMPT],
                 "guideline_id": guideline.pk, "value": v, "time_spent_ms": 40_000}
                for (lid, iid, uid, v), aid in zip(labels, assignment_ids, strict=True)
            ),
        )  # fmt: skip
        assignments.clear(), labels.clear(), assignment_ids.clear()

    lid = label0
    for p in range(prompts):
        for k in range(ITEMS_PER_PROMPT):
            iid = item0 + p * ITEMS_PER_PROMPT + k
            first = None
            for j in range(2):
                who = annotators[(iid + j) % len(annotators)]
                v = value(k, p, first)
                first = first or v
                aid = uuid.uuid4()
                assignments.append(
                    {"id": aid, "item_id": iid, "campaign_id": campaign.pk, "annotator_id": who.pk,
                     "status": "submitted", "leased_until": now, "finished_at": now,
                     "time_spent_ms": 40_000}
                )  # fmt: skip
                assignment_ids.append(aid)
                labels.append((lid, iid, who.pk, v))
                lid += 1
        if len(labels) >= 20_000:
            flush()
    flush()
    adjudicated = [item0 + i for i in range(prompts * ITEMS_PER_PROMPT) if rng.random() < 0.02]
    first_values = dict(
        Label.objects.filter(item_id__in=adjudicated)
        .order_by("item_id", "id")
        .distinct("item_id")
        .values_list("item_id", "value")
    )
    Adjudication.objects.bulk_create(
        Adjudication(item_id=iid, value=first_values[iid], adjudicator=admin, note="bench")
        for iid in adjudicated
    )
    reset_sequences(Prompt, Trace, Item, Label)
    return str(campaign.pk)


def seed_all(sizes: list[int]) -> dict[int, str]:
    from django.contrib.auth import get_user_model

    from webapp.serving import services

    model = get_user_model()
    admin = model.objects.create_user("admin", password="bench-admin-password")
    admin.is_staff = admin.is_superuser = True
    admin.save()
    ctx = {
        "admin": admin,
        "author": model.objects.create_user("author"),
        "annotators": [model.objects.create_user(f"ann{i:02d}") for i in range(ANNOTATORS)],
    }
    ctx["llm"] = services.upsert_llm(
        slug="deepseek-r1", name="DeepSeek-R1", served_model_name="deepseek-ai/DeepSeek-R1"
    )
    ctx["endpoint"] = services.ensure_endpoint(llm=ctx["llm"], base_url="http://127.0.0.1:9")
    traces_src = fixture_traces()
    ids = Ids()
    out = {}
    for size in sizes:
        t = time.perf_counter()
        out[size] = seed(size=size, ids=ids, traces_src=traces_src, ctx=ctx)
        print(f"  seeded {size:,} items in {time.perf_counter() - t:.1f} s", flush=True)
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    return out


def seeded_campaigns() -> dict[int, str]:
    from webapp.annotation.models import Campaign

    return {
        int(c.name.split()[1]): str(c.pk)
        for c in Campaign.objects.filter(name__startswith="bench ")
    }


# --- measuring ----------------------------------------------------------------------------------


def proc_kb(pid: int, key: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise KeyError(key)


def session_cookie() -> str:
    from django.conf import settings
    from django.contrib.auth import get_user_model
    from django.test import Client

    client = Client()
    client.force_login(get_user_model().objects.get(username="admin"))
    return f"{settings.SESSION_COOKIE_NAME}={client.cookies[settings.SESSION_COOKIE_NAME].value}"


def export_http(url: str, path: str, cookie: str, pid: int) -> dict[str, Any]:
    import httpx

    # Settle, then reset the peak so VmHWM is this request's.
    time.sleep(0.5)
    Path(f"/proc/{pid}/clear_refs").write_text("5")
    rss_before = proc_kb(pid, "VmRSS")
    records = size = 0
    started = time.perf_counter()
    ttfb = None
    with (
        httpx.Client(timeout=600) as http,
        http.stream("GET", url + path, headers={"Cookie": cookie}) as r,
    ):
        r.raise_for_status()
        for block in r.iter_raw(1 << 16):
            if ttfb is None:
                ttfb = time.perf_counter() - started
            records += block.count(b"\n")
            size += len(block)
    seconds = time.perf_counter() - started
    peak = proc_kb(pid, "VmHWM")
    return {
        "records": records,
        "bytes": size,
        "seconds": seconds,
        "records_per_s": records / seconds if seconds else 0.0,
        "mb_per_s": size / seconds / 1e6 if seconds else 0.0,
        "ttfb_ms": (ttfb or 0.0) * 1000,
        "rss_before_mb": rss_before / 1024,
        "rss_peak_mb": peak / 1024,
        "rss_delta_mb": (peak - rss_before) / 1024,
    }


def export_direct(campaign_id: str, kind: str) -> dict[str, Any]:
    from webapp.annotation import exports
    from webapp.annotation.models import Campaign

    campaign = Campaign.objects.get(pk=campaign_id)
    options = exports.parse_options(kind=kind, params={})
    started = time.perf_counter()
    records = size = 0
    for block in exports.iter_export_bytes(campaign=campaign, kind=kind, options=options):
        records += block.count(b"\n")
        size += len(block)
    seconds = time.perf_counter() - started
    return {"records": records, "seconds": seconds, "records_per_s": records / seconds}


def scanned(campaign_id: str, kind: str) -> int:
    """Rows the export reads: items of its task types (traces for sft)."""
    from webapp.annotation.models import Item, Trace

    if kind == "sft":
        return Trace.objects.filter(campaign_id=campaign_id).count()
    types = {"dpo": ["pairwise"], "kto": ["step_labels", "rubric"], "prm": ["step_labels"]}
    return Item.objects.filter(campaign_id=campaign_id, task_type__in=types[kind]).count()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--sizes", default="10000,100000", help="items per campaign")
    parser.add_argument("--kinds", default=",".join(KINDS))
    parser.add_argument("--reuse", action="store_true", help="keep the seeded database")
    parser.add_argument("--no-direct", action="store_true", help="skip the in-process runs")
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]
    kinds = args.kinds.split(",")

    setup_django(fresh=not args.reuse)
    campaigns = seeded_campaigns() if args.reuse else {}
    missing = [s for s in sizes if s not in campaigns]
    if missing:
        print(f"seeding {DB}: {', '.join(f'{s:,}' for s in missing)} items ...", flush=True)
        if campaigns:
            sys.exit("--reuse: the database lacks some sizes; run without --reuse")
        campaigns.update(seed_all(missing))
    cookie = session_cookie()
    from django.db import connections

    connections.close_all()
    proc, url = start_daphne(env=env_for_django(), name="export")
    rows: list[dict[str, Any]] = []
    try:
        for size in sizes:
            for kind in kinds:
                path = f"/api/exports/{kind}.jsonl?campaign={campaigns[size]}"
                print(f"  {kind} @ {size:,} ...", flush=True)
                row = {"kind": kind, "items": size, **export_http(url, path, cookie, proc.pid)}
                row["scanned"] = scanned(campaigns[size], kind)
                row["scanned_per_s"] = row["scanned"] / row["seconds"]
                connections.close_all()
                if not args.no_direct:
                    direct = export_direct(campaigns[size], kind)
                    connections.close_all()
                    assert direct["records"] == row["records"], (direct, row)
                    row["direct_records_per_s"] = direct["records_per_s"]
                rows.append(row)
    finally:
        proc.terminate()
        proc.wait(timeout=20)

    print_table(
        "Export through Daphne (GET /api/exports/{kind}.jsonl), one client",
        ["kind", "items", "rows read", "records", "MB", "s", "rows/s", "rec/s", "direct rec/s",
         "MB/s", "TTFB ms", "RSS before MB", "peak delta MB"],
        [
            [r["kind"], r["items"], r["scanned"], r["records"], r["bytes"] / 1e6, r["seconds"],
             r["scanned_per_s"], r["records_per_s"], r.get("direct_records_per_s", "-"),
             r["mb_per_s"], r["ttfb_ms"], r["rss_before_mb"], r["rss_delta_mb"]]
            for r in rows
        ],
    )  # fmt: skip
    path = write_json(
        "export",
        {
            "rows": rows,
            "sizes": sizes,
            "chunk_size": __import__("webapp.annotation.exports", fromlist=["x"]).CHUNK_SIZE,
            "cpu_count": os.cpu_count(),
            "loadavg_1m_after": os.getloadavg()[0],
            "note": "peak delta = Daphne VmHWM during the request minus VmRSS before it",
        },
    )
    print(f"\nwrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
