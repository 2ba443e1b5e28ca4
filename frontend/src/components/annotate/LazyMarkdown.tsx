// Markdown that renders only when it comes near the viewport: a 500-step trace opens
// with plain text in every step and typesets (markdown-it, KaTeX, highlight.js) just
// the steps being read. Rendered HTML is cached per text, so scrolling back is free.
import { useEffect, useRef, useState } from "preact/hooks";
import { applyDeferredStyles, renderMarkdown } from "../../lib/markdown";

const cache = new Map<string, string>();
const CACHE_MAX = 2000;

function rendered(text: string): string {
  let html = cache.get(text);
  if (html === undefined) {
    html = renderMarkdown(text);
    if (cache.size >= CACHE_MAX) cache.delete(cache.keys().next().value as string);
    cache.set(text, html);
  }
  return html;
}

type Listener = (visible: boolean) => void;
const listeners = new WeakMap<Element, Listener>();
let observer: IntersectionObserver | null = null;

function observe(el: Element, fn: Listener): () => void {
  if (typeof IntersectionObserver === "undefined") {
    fn(true);
    return () => {};
  }
  // One observer for every step: cheaper than one each, with 500 of them.
  observer ??= new IntersectionObserver(
    (entries) => {
      for (const e of entries) if (e.isIntersecting) listeners.get(e.target)?.(true);
    },
    { rootMargin: "800px 0px" },
  );
  listeners.set(el, fn);
  observer.observe(el);
  return () => {
    listeners.delete(el);
    observer?.unobserve(el);
  };
}

export function LazyMarkdown({ text, class: cls, testid, eager = false }: {
  text: string; class?: string; testid?: string; eager?: boolean;
}) {
  const ref = useRef<HTMLDivElement>(null);
  const [seen, setSeen] = useState(eager || cache.has(text));

  useEffect(() => {
    if (seen || !ref.current) return;
    return observe(ref.current, (v) => v && setSeen(true));
  }, [seen]);

  useEffect(() => {
    const el = ref.current;
    if (!el || !seen) return;
    el.innerHTML = rendered(text);
    applyDeferredStyles(el);
  }, [seen, text]);

  // Until typeset, the raw text keeps the layout close to the final one.
  return (
    <div ref={ref} class={`markdown ${seen ? "" : "md-pending"} ${cls ?? ""}`} data-testid={testid}>
      {seen ? null : text}
    </div>
  );
}
