import { describe, expect, it } from "vitest";
import { applyDeferredStyles, renderMarkdown } from "./markdown";

function dom(html: string): HTMLElement {
  const el = document.createElement("div");
  el.innerHTML = html;
  return el;
}

function assertInert(el: HTMLElement): void {
  expect(el.querySelector("script, iframe, object, embed, img, style, form, input, svg script")).toBeNull();
  for (const node of el.querySelectorAll("*")) {
    for (const attr of node.attributes) {
      expect(attr.name.startsWith("on")).toBe(false);
      expect(/^\s*(javascript|vbscript|data):/i.test(attr.value)).toBe(false);
    }
  }
}

describe("markdown sanitising", () => {
  it("escapes <script> and raw HTML", () => {
    const el = dom(renderMarkdown("hi <script>alert(1)</script> <b>bold</b>\n\n<div onclick=x>y</div>"));
    assertInert(el);
    expect(el.querySelector("b")).toBeNull();
    expect(el.textContent).toContain("<script>alert(1)</script>");
  });

  it("neutralises <img onerror>", () => {
    const el = dom(renderMarkdown('<img src=x onerror="alert(1)">\n\n![a](x" onerror="alert(1))'));
    assertInert(el);
  });

  it("drops javascript: links and hardens the rest", () => {
    const el = dom(renderMarkdown(
      "[a](javascript:alert(1)) [b](JAVASCRIPT:alert(1)) [c](data:text/html,x) [d](https://example.com) <javascript:alert(1)>",
    ));
    assertInert(el);
    const links = [...el.querySelectorAll("a")];
    expect(links.map((a) => a.getAttribute("href"))).toEqual(["https://example.com"]);
    expect(links[0].getAttribute("rel")).toBe("noopener noreferrer");
    expect(links[0].getAttribute("target")).toBe("_blank");
  });

  it("allows mailto and autolinks", () => {
    const el = dom(renderMarkdown("mail [me](mailto:a@b.c) or see https://example.org/x"));
    expect([...el.querySelectorAll("a")].map((a) => a.getAttribute("href"))).toEqual([
      "mailto:a@b.c", "https://example.org/x",
    ]);
  });

  it("renders remote images as links, never <img>", () => {
    const el = dom(renderMarkdown("![cat](https://example.com/cat.png)"));
    expect(el.querySelector("img")).toBeNull();
    expect(el.querySelector("a")?.getAttribute("href")).toBe("https://example.com/cat.png");
  });

  it("keeps KaTeX inert: \\href{javascript:...}, \\url, \\htmlClass", () => {
    const el = dom(renderMarkdown(
      "$\\href{javascript:alert(1)}{click}$ and $$\\url{javascript:alert(2)}$$ and \\(\\htmlStyle{color:red}{x}\\) " +
      "and \\(\\htmlData{foo=bar}{x}\\)",
    ));
    assertInert(el);
    expect(el.querySelector("a")).toBeNull();
  });

  it("renders math in all four delimiters and bare \\boxed{}", () => {
    const el = dom(renderMarkdown(
      "Inline $x^2$ and \\(y_1\\).\n\n$$\\frac{a}{b}$$\n\n\\[\n\\sqrt{2}\n\\]\n\nSo \\boxed{42}.",
    ));
    expect(el.querySelectorAll(".katex").length).toBe(5);
    expect(el.querySelectorAll(".katex-display").length).toBe(2);
    expect(el.querySelector(".boxed, .fbox, .fcolorbox") ?? el.innerHTML.includes("boxed")).toBeTruthy();
  });

  it("does not treat currency as math", () => {
    const el = dom(renderMarkdown("It costs $5 and $6 today."));
    expect(el.querySelector(".katex")).toBeNull();
  });

  it("limits macro expansion (no hang on expansion bombs)", { timeout: 30_000 }, () => {
    // Nine doubling macros: about 511 expansions, over our cap (500) but under
    // KaTeX's own default (1000), so this fails if the cap is dropped.
    const names = "abcdefghi".split("");
    const defs = names
      .map((n, i) => (i + 1 < names.length ? `\\def\\${n}{\\${names[i + 1]}\\${names[i + 1]}}` : `\\def\\${n}{x}`))
      .join("");
    const el = dom(renderMarkdown(`$${defs}\\a$`));
    // KaTeX's expansion cap stops it and renders the source as an error instead.
    expect((el.textContent ?? "").split("x").length - 1).toBeLessThan(100);
    assertInert(el);
  });

  it("highlights code and adds a copy button", () => {
    const el = dom(renderMarkdown("```python\ndef f():\n    return 1\n```"));
    expect(el.querySelector(".code-block pre code .hljs-keyword")?.textContent).toBe("def");
    expect(el.querySelector("button[data-copy-code]")).not.toBeNull();
    expect(el.querySelector(".code-lang")?.textContent).toBe("python");
  });

  it("escapes HTML inside code fences with unknown languages", () => {
    const el = dom(renderMarkdown("```weird\n<script>alert(1)</script>\n```"));
    assertInert(el);
    expect(el.querySelector("code")?.textContent).toContain("<script>");
  });

  it("moves style attributes aside for CSP and applies them via CSSOM", () => {
    const html = renderMarkdown("$$\\frac{1}{2}$$");
    expect(html).not.toMatch(/\sstyle=/);
    const el = dom(html);
    const styled = el.querySelectorAll("[data-arbor-style]").length;
    expect(styled).toBeGreaterThan(0);
    applyDeferredStyles(el);
    expect(el.querySelectorAll("[data-arbor-style]").length).toBe(0);
    expect(el.querySelector<HTMLElement>("[style]")).not.toBeNull();
  });
});
