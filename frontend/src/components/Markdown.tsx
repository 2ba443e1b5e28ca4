import { useEffect, useRef } from "preact/hooks";
import { applyDeferredStyles, copyText, renderMarkdown } from "../lib/markdown";

/** While streaming, re-render the markdown at most every `throttleMs`. */
export function Markdown({ text, streaming, class: cls, testid }: {
  text: string; streaming: boolean; class?: string; testid?: string;
}) {
  const ref = useRef<HTMLDivElement>(null);
  const latest = useRef(text);
  const shown = useRef<string | null>(null);
  const timer = useRef<number | null>(null);
  latest.current = text;

  const paint = () => {
    timer.current = null;
    const el = ref.current;
    if (!el || shown.current === latest.current) return;
    shown.current = latest.current;
    el.innerHTML = renderMarkdown(latest.current);
    applyDeferredStyles(el);
  };

  useEffect(() => {
    if (!streaming) {
      if (timer.current !== null) window.clearTimeout(timer.current);
      paint();
    } else if (timer.current === null) {
      const wait = shown.current === null ? 0 : Math.min(250, 60 + latest.current.length / 200);
      timer.current = window.setTimeout(() => requestAnimationFrame(paint), wait);
    }
  }, [text, streaming]);

  useEffect(() => () => {
    if (timer.current !== null) window.clearTimeout(timer.current);
  }, []);

  const onClick = (e: MouseEvent) => {
    const btn = (e.target as HTMLElement).closest<HTMLButtonElement>("[data-copy-code]");
    if (!btn) return;
    const code = btn.closest(".code-block")?.querySelector("pre code");
    void copyText(code?.textContent ?? "").then((ok) => {
      btn.textContent = ok ? "Copied" : "Copy failed";
      window.setTimeout(() => (btn.textContent = "Copy"), 1500);
    });
  };

  return <div ref={ref} class={`markdown ${cls ?? ""}`} data-testid={testid} onClick={onClick} />;
}
