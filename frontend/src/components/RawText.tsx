// The raw chain of thought, one <span> per leaf step so spans can be
// highlighted and clicked. Updated imperatively: a live trace only appends to
// the last text node or re-creates the last few segments, never the whole text.
import { useEffect, useLayoutEffect, useRef, useState } from "preact/hooks";
import type { Outline } from "../lib/steps";
import { IconArrowDown } from "./icons";

interface Seg {
  id: string | null;
  from: number;
  to: number;
  el: HTMLElement | null;
  node: Text;
  block: Block;
}

/**
 * The text is cut into blocks at paragraph ends (~CHUNK chars each): an append
 * re-lays out only the last block, and blocks off screen are skipped entirely
 * (`content-visibility: auto`), so a 40k-character trace stays cheap.
 */
interface Block {
  el: HTMLDivElement;
  chars: number;
}

const CHUNK = 1800;

/** Desired segments: leaves in text order, gaps and the uncovered tail as plain text. */
function desired(o: Outline | null, len: number): Array<{ id: string | null; from: number; to: number }> {
  const out: Array<{ id: string | null; from: number; to: number }> = [];
  let pos = 0;
  if (o) {
    for (const id of o.leaves) {
      const n = o.nodes.get(id)!;
      const from = Math.max(pos, Math.min(n.from, len));
      const to = Math.max(from, Math.min(n.to, len));
      if (from > pos) out.push({ id: null, from: pos, to: from });
      if (to > from) out.push({ id, from, to });
      pos = to;
    }
  }
  if (len > pos) out.push({ id: null, from: pos, to: len });
  return out;
}

// Search hits use the CSS Custom Highlight API (no DOM changes) where available.
type HL = { add(r: Range): void; delete(r: Range): boolean };
let hlAll: HL | null = null;
let hlCur: HL | null = null;
function highlights(): { all: HL; cur: HL } | null {
  const w = window as unknown as { Highlight?: new () => HL; CSS?: { highlights?: Map<string, HL> } };
  if (!w.Highlight || !w.CSS?.highlights) return null;
  if (!hlAll) {
    hlAll = new w.Highlight();
    hlCur = new w.Highlight();
    w.CSS.highlights.set("trace-search", hlAll);
    w.CSS.highlights.set("trace-search-current", hlCur);
  }
  return { all: hlAll, cur: hlCur! };
}

/** Scroll `el` into view inside `box` only (never the page). */
export function scrollWithin(box: HTMLElement, el: HTMLElement | Range, margin = 24): void {
  const b = box.getBoundingClientRect();
  // Only the part of the box the page shows counts (it may run under the composer).
  const page = box.closest(".thread")?.getBoundingClientRect();
  const top = Math.max(b.top, page?.top ?? b.top);
  const bottom = Math.max(top + 40, Math.min(b.bottom, page?.bottom ?? b.bottom));
  const r = el.getBoundingClientRect();
  if (r.top < top + margin) box.scrollTop += r.top - top - margin;
  else if (r.bottom > bottom - margin) box.scrollTop += Math.min(r.bottom - bottom + margin, r.top - top - margin);
}

export function RawText({ text, outline, live, highlightIds, hits, currentHit, onPick, scrollKey }: {
  text: string;
  outline: Outline | null;
  live: boolean;
  /** Leaf ids to highlight (the selected step, or an episode's leaves). */
  highlightIds: string[];
  hits: Array<[number, number]>;
  currentHit: number;
  onPick: (leafId: string) => void;
  /** Changes when the highlighted span should be scrolled into view. */
  scrollKey: number;
}) {
  const scroller = useRef<HTMLDivElement>(null);
  const body = useRef<HTMLDivElement>(null);
  const segs = useRef<Seg[]>([]);
  const blocks = useRef<Block[]>([]);
  const spans = useRef(new Map<string, HTMLElement>());
  const len = useRef(0);
  const marked = useRef<HTMLElement[]>([]);
  const follow = useRef(true);
  const [detached, setDetached] = useState(false);
  const ranges = useRef<Range[]>([]);
  const curRange = useRef<Range | null>(null);

  // 1. text and segments
  useLayoutEffect(() => {
    const root = body.current;
    if (!root) return;
    const want = desired(outline, text.length);
    const have = segs.current;
    let i = 0;
    if (text.length >= len.current) {
      while (i < have.length && i < want.length) {
        const h = have[i];
        const w = want[i];
        if (h.id !== w.id || h.from !== w.from) break;
        if (h.to === w.to) {
          i++;
          continue;
        }
        if (w.to > h.to && (i === have.length - 1 || h.id !== null)) {
          // A growing segment: append the new characters in place.
          h.node.appendData(text.slice(h.to, w.to));
          h.block.chars += w.to - h.to;
          h.to = w.to;
          i++;
          continue;
        }
        break;
      }
    }
    if (i < have.length || i < want.length) {
      const bl = blocks.current;
      for (let k = i; k < have.length; k++) {
        const h = have[k];
        (h.el ?? h.node).remove();
        h.block.chars -= h.node.length;
        if (h.id) spans.current.delete(h.id);
      }
      have.length = Math.min(have.length, i);
      while (bl.length && bl[bl.length - 1].chars <= 0 && !bl[bl.length - 1].el.firstChild) bl.pop()!.el.remove();
      let block = bl[bl.length - 1] ?? null;
      let prevEndsLine = have.length > 0 && text.charCodeAt(have[have.length - 1].to - 1) === 10;
      for (let k = i; k < want.length; k++) {
        const w = want[k];
        if (!block || (block.chars >= CHUNK && prevEndsLine)) {
          const el = document.createElement("div");
          el.className = "chunk";
          root.appendChild(el);
          block = { el, chars: 0 };
          bl.push(block);
        }
        const node = document.createTextNode(text.slice(w.from, w.to));
        let el: HTMLElement | null = null;
        if (w.id) {
          el = document.createElement("span");
          el.className = "seg";
          el.dataset.sid = w.id;
          el.appendChild(node);
          spans.current.set(w.id, el);
          block.el.appendChild(el);
        } else block.el.appendChild(node);
        block.chars += w.to - w.from;
        have.push({ ...w, el, node, block });
        prevEndsLine = text.charCodeAt(w.to - 1) === 10;
      }
    }
    len.current = text.length;
    if (live && follow.current && scroller.current) scroller.current.scrollTop = scroller.current.scrollHeight;
  }, [text, outline, live]);

  // 2. the highlighted step
  useLayoutEffect(() => {
    for (const el of marked.current) {
      el.classList.remove("hl");
      el.removeAttribute("data-testid");
    }
    const next: HTMLElement[] = [];
    for (const id of highlightIds) {
      const el = spans.current.get(id);
      if (el) next.push(el);
    }
    next.forEach((el, k) => {
      el.classList.add("hl");
      if (k === 0) el.setAttribute("data-testid", "highlight");
    });
    marked.current = next;
  }, [highlightIds, text, outline]);

  useLayoutEffect(() => {
    const first = marked.current[0];
    const box = scroller.current;
    if (!first || !box || box.offsetParent === null) return;
    follow.current = false;
    scrollWithin(box, first, 40);
  }, [scrollKey]);

  // 3. search hits
  useEffect(() => {
    const reg = highlights();
    if (!reg) return;
    for (const r of ranges.current) reg.all.delete(r);
    if (curRange.current) reg.cur.delete(curRange.current);
    ranges.current = [];
    curRange.current = null;
    const list = segs.current;
    if (!hits.length || !list.length) return;
    const locate = (pos: number): [Text, number] | null => {
      let lo = 0;
      let hi = list.length - 1;
      while (lo < hi) {
        const mid = (lo + hi + 1) >> 1;
        if (list[mid].from <= pos) lo = mid;
        else hi = mid - 1;
      }
      const s = list[lo];
      if (pos < s.from || pos > s.to) return null;
      return [s.node, pos - s.from];
    };
    hits.slice(0, 2000).forEach(([a, b], k) => {
      const s = locate(a);
      const e = locate(b);
      if (!s || !e) return;
      const r = document.createRange();
      try {
        r.setStart(s[0], s[1]);
        r.setEnd(e[0], e[1]);
      } catch {
        return;
      }
      if (k === currentHit) {
        reg.cur.add(r);
        curRange.current = r;
      } else reg.all.add(r);
      ranges.current.push(r);
    });
    const box = scroller.current;
    const cur = curRange.current as Range | null;
    if (cur && box && box.offsetParent !== null) {
      follow.current = false;
      // Its block may be skipped (content-visibility): bring the block in first, then the match.
      const chunk = cur.startContainer.parentElement?.closest<HTMLElement>(".chunk");
      if (chunk) scrollWithin(box, chunk, 40);
      requestAnimationFrame(() => scrollWithin(box, cur, 40));
    }
  }, [hits, currentHit, text.length]);

  useEffect(() => () => {
    const reg = highlights();
    if (!reg) return;
    for (const r of ranges.current) reg.all.delete(r);
    if (curRange.current) reg.cur.delete(curRange.current);
  }, []);

  const onScroll = () => {
    const s = scroller.current;
    if (!s) return;
    const atBottom = s.scrollTop + s.clientHeight >= s.scrollHeight - 24;
    follow.current = atBottom;
    if (detached === atBottom) setDetached(!atBottom);
  };

  const jump = () => {
    const s = scroller.current;
    if (!s) return;
    follow.current = true;
    s.scrollTop = s.scrollHeight;
    setDetached(false);
  };

  const onClick = (e: MouseEvent) => {
    const sel = window.getSelection();
    if (sel && !sel.isCollapsed) return; // the user is selecting text
    const span = (e.target as HTMLElement).closest<HTMLElement>("[data-sid]");
    if (span?.dataset.sid) onPick(span.dataset.sid);
  };

  return (
    <div class="trace-wrap">
      <div ref={scroller} class={`trace-scroll${live ? " live" : ""}`} onScroll={onScroll} tabIndex={0}
        role="region" aria-label="Chain of thought (raw text)" data-testid="reasoning">
        <div ref={body} class={`trace-text${outline && outline.leaves.length ? " has-steps" : ""}`}
          data-testid="trace-text" onClick={onClick} />
      </div>
      {live && detached && (
        <button type="button" class="jump-latest" onClick={jump}>
          <IconArrowDown size={14} /> Follow live
        </button>
      )}
    </div>
  );
}
