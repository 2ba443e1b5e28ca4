"""Hostile model output renders inert in Chromium.

A dedicated emulator replays a corpus written here, whose reasoning AND answer are
full of injection attempts: <script>, event-handler attributes, javascript: links
(markdown and raw), raw <iframe>/<style>/<svg>/<form>, KaTeX \\href/\\url with
javascript:, \\htmlClass/\\htmlId/\\htmlStyle/\\htmlData, and macro bombs. Alice asks,
the answer streams and completes, the reasoning and its tree are opened, and then:
no payload ran (`window.__pwned` never set, no dialog), and the turn's DOM holds no
<script>/<iframe>/<object>/<embed>/<style>/<form>, no on* attribute and no
javascript:/data: URL. CSP violation reports in the console are fine.
"""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import Page, expect

from tests.e2e.conftest import login
from tests.stack import Proc, free_port, wait_http

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

PAYLOADS = r"""
MARKER-{where} plain text survives.

<script>window.__pwned = "script"; alert(1)</script>
<img src=x onerror="window.__pwned='img'">
<svg onload="window.__pwned='svg'"><script>window.__pwned='svg-script'</script></svg>
<iframe src="javascript:window.__pwned='iframe'"></iframe>
<iframe srcdoc="<script>parent.__pwned='srcdoc'</script>"></iframe>
<style>body { display: none }</style>
<a href="javascript:window.__pwned='raw-a'">raw link</a>
<form action="javascript:alert(1)"><button formaction="javascript:alert(1)">go</button></form>
<details open ontoggle="window.__pwned='details'">x</details>
<object data="javascript:alert(1)"></object><embed src="javascript:alert(1)">
<math><mtext><table><mglyph><style><img src=x onerror="window.__pwned='mxss'"></style></mglyph></table></mtext></math>

Markdown links: [click me](javascript:window.__pwned='md') and [again](JaVaScRiPt:alert(1))
and [encoded](javascript&#58;alert(1)) and [data](data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==)
and ![img](javascript:alert(1)) and <javascript:alert(1)> and [vb](vbscript:msgbox(1)).

Autolink-ish: javascript:alert(1) https://example.com/"onmouseover="window.__pwned='linkify'

Math: $\href{javascript:window.__pwned='katex-href'}{x}$ and $\url{javascript:alert(1)}$
and $\htmlClass{pwn}{y}$ $\htmlId{pwn}{z}$ $\htmlStyle{background:url(javascript:alert(1))}{w}$
$\htmlData{onclick=alert(1)}{v}$ $\includegraphics{javascript:alert(1)}$

$$\def\a{\a\a}\a$$

$$\def\b#1{#1#1#1#1}\b{\b{\b{\b{\b{\b{\b{\b{\b{\b{x}}}}}}}}}}$$

\boxed{\href{javascript:alert(1)}{boxed}}

```html
<script>window.__pwned = "fence"</script>
```

`<img src=x onerror=alert(1)>` in inline code.
"""

SCAN = """
(root) => {
  const bad = [];
  const forbidden = new Set(["script", "iframe", "object", "embed", "style", "form", "frame",
    "frameset", "base", "meta", "link", "img", "svg", "math", "input", "button", "textarea"]);
  const rendered = "[data-testid=answer], .step-md, [data-testid=reasoning]";
  for (const el of [root, ...root.querySelectorAll("*")]) {
    const tag = el.tagName.toLowerCase();
    // Inside rendered model output only KaTeX's own MathML/SVG and the code-copy button.
    const inOutput = el.closest(rendered) !== null;
    const allowed = ((tag === "math" || tag === "svg") && el.closest(".katex")) ||
      (tag === "button" && el.classList.contains("code-copy"));
    if (inOutput && forbidden.has(tag) && !allowed) bad.push(tag);
    if (!inOutput && ["script", "iframe", "object", "embed", "style", "form"].includes(tag)) bad.push(tag);
    for (const a of Array.from(el.attributes)) {
      const name = a.name.toLowerCase();
      const value = a.value.replace(/[\\s\\u0000-\\u001f]/g, "").toLowerCase();
      if (name.startsWith("on")) bad.push(`${tag}[${name}]`);
      if (["href", "src", "action", "formaction", "xlink:href", "data"].includes(name) &&
          /^(javascript|vbscript|data):/.test(value)) bad.push(`${tag}[${name}=${a.value}]`);
      if (name === "srcdoc") bad.push(`${tag}[srcdoc]`);
    }
  }
  return bad;
}
"""


@pytest.fixture
def hostile_model(live: Any, tmp_path: Path) -> Iterator[Any]:
    """An emulator replaying only hostile traces, and the default model pointing at it."""
    from webapp.serving import services

    corpus = tmp_path / "hostile.jsonl"
    record = {
        "id": "hostile",
        "question": "Show me something hostile.",
        "reasoning": "Okay, let me think.\n\n"
        + PAYLOADS.replace("{where}", "REASONING")
        + "\n\nWait, let me check that again.\n\n"
        + PAYLOADS.replace("{where}", "REASONING2"),
        "answer": PAYLOADS.replace("{where}", "ANSWER"),
    }
    corpus.write_text(json.dumps(record) + "\n", encoding="utf-8")
    port = free_port()
    proc = Proc(
        "emulator-hostile",
        [
            sys.executable,
            "-m",
            "inference.emulator",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--corpus",
            str(corpus),
            "--tps",
            "3000",
            "--ttft-ms",
            "10",
        ],
        live.env,
    )
    proc.start()
    try:
        wait_http(f"http://127.0.0.1:{port}/health", proc=proc.popen)
        model = services.upsert_llm(
            slug="hostile-r1",
            name="Hostile R1",
            served_model_name="deepseek-ai/DeepSeek-R1",
            context_length=163_840,
            default_params={"max_tokens": 32_768},
            is_default=True,
        )
        services.ensure_endpoint(llm=model, base_url=f"http://127.0.0.1:{port}")
        yield model
    finally:
        proc.stop()


def test_hostile_output_renders_inert(
    live: Any, alice: Any, hostile_model: Any, page: Page
) -> None:
    dialogs: list[str] = []
    console: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.on("console", lambda m: console.append(m.text))
    login(page, live.web_url, alice)
    page.fill("[data-testid=composer]", "Show me something hostile. [[emulator trace=hostile]]")
    page.keyboard.press("Enter")
    turn = page.locator("[data-testid=assistant-turn]").last
    expect(turn).to_have_attribute("data-status", "completed", timeout=60_000)
    answer = turn.get_by_test_id("answer")
    expect(answer).to_contain_text("MARKER-ANSWER plain text survives.")
    # The payloads are shown as text, not executed or dropped silently.
    expect(answer).to_contain_text("click me")
    # Open the chain of thought (the tree with its markdown step details, the raw text).
    page.evaluate("() => document.querySelector('[data-testid=reasoning-toggle]')?.click()")
    expect(turn).to_contain_text("MARKER-REASONING", timeout=10_000)
    for step in turn.locator("[data-testid=step-row], .step-row").all()[:6]:
        with contextlib.suppress(PlaywrightError):
            step.click(timeout=2000)  # opens the step's markdown detail where there is one
    # Hover every link in the turn: nothing may run.
    for link in turn.locator("a").all()[:40]:
        with contextlib.suppress(PlaywrightError):
            link.hover(timeout=2000)
    page.wait_for_timeout(500)

    assert page.evaluate("() => window.__pwned") is None, "a payload ran"
    assert not dialogs, f"dialogs opened: {dialogs}"
    bad = page.evaluate(SCAN, turn.element_handle())
    assert not bad, f"live markup in the rendered turn: {bad}"
    # Every link that survived goes to http(s) or mailto, opens apart and leaks no opener.
    for link in turn.locator(".answer a[href], .step-md a[href]").all():
        href = link.get_attribute("href") or ""
        assert href.startswith(("http://", "https://", "mailto:")), href
        assert "noopener" in (link.get_attribute("rel") or "")
    # Nothing was added to the document outside the app either.
    scripts = page.evaluate(
        "() => Array.from(document.scripts).filter(s => !s.src && s.type !== 'application/json').length"
    )
    assert scripts == 0
    assert page.evaluate("() => document.body.style.display") != "none"
