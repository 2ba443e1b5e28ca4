// Untrusted model output -> sanitised HTML.
// markdown-it (raw HTML off) + KaTeX (trust off) + highlight.js, then DOMPurify.
import markdownIt from "markdown-it";
import type { MarkdownIt, StateBlock, StateInline } from "markdown-it";
import DOMPurify from "dompurify";
import katex from "katex";
import hljs from "highlight.js/lib/core";
import bash from "highlight.js/lib/languages/bash";
import c from "highlight.js/lib/languages/c";
import cpp from "highlight.js/lib/languages/cpp";
import css from "highlight.js/lib/languages/css";
import go from "highlight.js/lib/languages/go";
import java from "highlight.js/lib/languages/java";
import javascript from "highlight.js/lib/languages/javascript";
import json from "highlight.js/lib/languages/json";
import latex from "highlight.js/lib/languages/latex";
import python from "highlight.js/lib/languages/python";
import rust from "highlight.js/lib/languages/rust";
import sql from "highlight.js/lib/languages/sql";
import typescript from "highlight.js/lib/languages/typescript";
import xml from "highlight.js/lib/languages/xml";
import yaml from "highlight.js/lib/languages/yaml";

const LANGS: Record<string, Parameters<typeof hljs.registerLanguage>[1]> = {
  bash, c, cpp, css, go, java, javascript, json, latex, python, rust, sql, typescript, xml, yaml,
};
for (const [name, def] of Object.entries(LANGS)) hljs.registerLanguage(name, def);

const escapeHtml = (s: string): string =>
  s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;").replace(/'/g, "&#39;");

// ---- math -----------------------------------------------------------------

const KATEX_OPTS = {
  throwOnError: false,
  trust: false,
  strict: "ignore" as const,
  maxExpand: 500,
  maxSize: 20,
  output: "htmlAndMathml" as const,
};

export function renderMath(tex: string, display: boolean): string {
  try {
    return katex.renderToString(tex, { ...KATEX_OPTS, displayMode: display });
  } catch {
    return `<code class="math-error">${escapeHtml(tex)}</code>`;
  }
}

/** Index of the matching close of a `{` at `open`, or -1. */
function matchBrace(src: string, open: number): number {
  let depth = 0;
  for (let i = open; i < src.length; i++) {
    const ch = src[i];
    if (ch === "\\") {
      i++;
      continue;
    }
    if (ch === "{") depth++;
    else if (ch === "}" && --depth === 0) return i;
  }
  return -1;
}

function mathInline(state: StateInline, silent: boolean): boolean {
  const src = state.src;
  const start = state.pos;
  const ch = src.charCodeAt(start);
  let open: string;
  let close: string;
  let display = false;

  if (ch === 0x5c /* \ */) {
    const next = src[start + 1];
    if (next === "(") {
      open = "\\(";
      close = "\\)";
    } else if (next === "[") {
      open = "\\[";
      close = "\\]";
      display = true;
    }
    else if (src.startsWith("\\boxed{", start)) {
      // R1 sometimes writes \boxed{...} outside math delimiters.
      const end = matchBrace(src, start + 6);
      if (end < 0) return false;
      if (!silent) {
        const t = state.push("math_inline", "math", 0);
        t.content = src.slice(start, end + 1);
        t.markup = "boxed";
      }
      state.pos = end + 1;
      return true;
    } else return false;
  } else if (ch === 0x24 /* $ */) {
    if (src[start + 1] === "$") {
      open = close = "$$";
      display = true;
    } else {
      open = close = "$";
      // Pandoc rules: no space after the opening $, no space before the
      // closing one, and the closing $ not followed by a digit ($5 and $6).
      const nxt = src[start + 1];
      if (!nxt || /\s/.test(nxt)) return false;
    }
  } else return false;

  let pos = start + open.length;
  let found = -1;
  while ((pos = src.indexOf(close, pos)) !== -1) {
    if (src[pos - 1] === "\\" && close === "$") {
      pos += 1;
      continue;
    }
    if (close === "$") {
      if (/\s/.test(src[pos - 1]) || /\d/.test(src[pos + 1] ?? "")) {
        pos += 1;
        continue;
      }
    }
    found = pos;
    break;
  }
  if (found < 0) return false;
  const content = src.slice(start + open.length, found);
  if (!content.trim()) return false;
  if (!silent) {
    const t = state.push(display ? "math_display_inline" : "math_inline", "math", 0);
    t.content = content;
    t.markup = open;
  }
  state.pos = found + close.length;
  return true;
}

function mathBlock(state: StateBlock, startLine: number, endLine: number, silent: boolean): boolean {
  let pos = state.bMarks[startLine] + state.tShift[startLine];
  let max = state.eMarks[startLine];
  if (state.sCount[startLine] - state.blkIndent >= 4) return false;
  const first = state.src.slice(pos, max);
  let open = "";
  let close = "";
  if (first.startsWith("$$")) open = close = "$$";
  else if (first.startsWith("\\[")) {
    open = "\\[";
    close = "\\]";
  }
  else return false;
  if (silent) return true;

  let content = "";
  let line = startLine;
  let rest = first.slice(open.length);
  let closed = false;
  for (;;) {
    const idx = rest.indexOf(close);
    if (idx >= 0) {
      content += rest.slice(0, idx);
      // Only take the block if nothing but spaces follows the closing fence.
      if (rest.slice(idx + close.length).trim() !== "") {
        if (line === startLine) return false;
      }
      closed = true;
      break;
    }
    content += rest + "\n";
    line++;
    if (line >= endLine) break;
    pos = state.bMarks[line] + state.tShift[line];
    max = state.eMarks[line];
    if (pos >= max && state.sCount[line] < state.blkIndent) {
      /* blank line inside math: keep going */
    }
    rest = state.src.slice(pos, max);
  }
  if (!closed) {
    // Unclosed (still streaming): render what we have as math only if it is
    // the last thing in the document; otherwise leave it to the paragraph rule.
    if (line < endLine) return false;
  }
  state.line = Math.min(line + 1, endLine);
  const t = state.push("math_block", "math", 0);
  t.block = true;
  t.content = content.trim();
  t.markup = open;
  t.map = [startLine, state.line];
  return true;
}

// ---- markdown-it ----------------------------------------------------------

const SAFE_HREF = /^(https?:|mailto:)/i;

function createMd(): MarkdownIt {
  const md = markdownIt({
    html: false,
    linkify: true,
    typographer: false,
    breaks: false,
    highlight(code: string, lang: string): string {
      const l = (lang || "").toLowerCase();
      const alias = { sh: "bash", shell: "bash", zsh: "bash", js: "javascript", ts: "typescript", py: "python",
        html: "xml", "c++": "cpp", rs: "rust", yml: "yaml", tex: "latex" } as Record<string, string>;
      const name = alias[l] ?? l;
      if (name && hljs.getLanguage(name)) {
        try {
          return hljs.highlight(code, { language: name, ignoreIllegals: true }).value;
        } catch {
          /* fall through */
        }
      }
      return escapeHtml(code);
    },
  });
  md.validateLink = (url: string) => SAFE_HREF.test(url.trim());

  md.inline.ruler.before("escape", "math_inline", mathInline);
  md.block.ruler.before("paragraph", "math_block", mathBlock, { alt: ["paragraph", "reference", "blockquote", "list"] });
  md.renderer.rules.math_inline = (tokens, idx) => renderMath(tokens[idx].content, false);
  md.renderer.rules.math_display_inline = (tokens, idx) =>
    `<span class="math-display">${renderMath(tokens[idx].content, true)}</span>`;
  md.renderer.rules.math_block = (tokens, idx) =>
    `<div class="math-display">${renderMath(tokens[idx].content, true)}</div>\n`;

  // Code fences get a header with the language and a copy button.
  md.renderer.rules.fence = (tokens, idx, options) => {
    const token = tokens[idx];
    const lang = token.info.trim().split(/\s+/)[0] ?? "";
    const body = options.highlight ? options.highlight(token.content, lang, "") : escapeHtml(token.content);
    const label = lang ? escapeHtml(lang) : "text";
    return (
      `<div class="code-block"><div class="code-head"><span class="code-lang">${label}</span>` +
      `<button type="button" class="code-copy" data-copy-code="">Copy</button></div>` +
      `<pre><code class="hljs">${body}</code></pre></div>\n`
    );
  };
  // Remote images would leak the reader's address: render them as links.
  md.renderer.rules.image = (tokens, idx) => {
    const t = tokens[idx];
    const src = String(t.attrGet("src") ?? "");
    const alt = t.children?.map((c) => c.content).join("") || src;
    return SAFE_HREF.test(src)
      ? `<a href="${escapeHtml(src)}">[image: ${escapeHtml(alt)}]</a>`
      : `[image: ${escapeHtml(alt)}]`;
  };
  return md;
}

const md = createMd();

// ---- DOMPurify ------------------------------------------------------------

let purifyConfigured = false;
function purify(): typeof DOMPurify {
  if (!purifyConfigured) {
    DOMPurify.addHook("afterSanitizeAttributes", (node) => {
      const el = node as Element;
      if (el.tagName === "A") {
        const href = el.getAttribute("href");
        if (href !== null && !SAFE_HREF.test(href.trim())) el.removeAttribute("href");
        if (el.hasAttribute("href")) {
          el.setAttribute("target", "_blank");
          el.setAttribute("rel", "noopener noreferrer");
        }
      }
      // A strict CSP (no 'unsafe-inline' styles) ignores style attributes in
      // parsed HTML; keep KaTeX's layout styles aside and apply them through
      // CSSOM (applyDeferredStyles), which CSP allows.
      if (el.hasAttribute && el.hasAttribute("style")) {
        const st = el.getAttribute("style") ?? "";
        el.removeAttribute("style");
        if (st && !/url\s*\(|expression\s*\(|@import/i.test(st)) el.setAttribute("data-arbor-style", st);
      }
    });
    purifyConfigured = true;
  }
  return DOMPurify;
}

const PURIFY_OPTS = {
  FORBID_TAGS: ["style", "script", "img", "form", "input", "textarea", "select", "iframe", "object", "embed", "link", "meta", "base", "video", "audio", "image", "foreignObject", "use"],
  FORBID_ATTR: ["srcset", "action", "formaction", "xlink:href", "ping"],
  ADD_ATTR: ["target", "data-copy-code", "data-arbor-style"],
  ALLOW_DATA_ATTR: false,
};

export function sanitize(html: string): string {
  return purify().sanitize(html, PURIFY_OPTS) as unknown as string;
}

/** Full render: markdown + math + highlighting, sanitised. */
export function renderMarkdown(src: string): string {
  return sanitize(md.render(src));
}

/** Apply styles kept aside by the sanitizer (CSP-safe, via CSSOM). */
export function applyDeferredStyles(root: ParentNode): void {
  root.querySelectorAll<HTMLElement>("[data-arbor-style]").forEach((el) => {
    el.style.cssText = el.getAttribute("data-arbor-style") ?? "";
    el.removeAttribute("data-arbor-style");
  });
}

/** Copy text to the clipboard, with a fallback for non-secure contexts. */
export async function copyText(text: string): Promise<boolean> {
  try {
    if (navigator.clipboard && window.isSecureContext) {
      await navigator.clipboard.writeText(text);
      return true;
    }
  } catch {
    /* fall back */
  }
  const ta = document.createElement("textarea");
  ta.value = text;
  ta.setAttribute("readonly", "");
  ta.className = "sr-only";
  document.body.appendChild(ta);
  ta.select();
  let ok = false;
  try {
    ok = document.execCommand("copy");
  } catch {
    ok = false;
  }
  ta.remove();
  return ok;
}
