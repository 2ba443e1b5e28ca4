// The "thinking tree": stats header, kind legend/filters, search, minimap,
// the step outline and the raw text, linked both ways.
import { memo } from "../lib/memo";
import { useCallback, useEffect, useLayoutEffect, useMemo, useRef, useState } from "preact/hooks";
import { formatCount } from "../lib/format";
import type { ResponseState } from "../lib/reducer";
import {
  EMPTY_SEARCH, KINDS, KIND_LABEL, STATUS_LABEL, buildOutline, defaultExpandedFor, leafAt,
  minimapBlocks, navKey, reveal, searchTrace, traceStats, visibleRows,
} from "../lib/steps";
import type { NavState, Outline, Row, StepNode } from "../lib/steps";
import { IconChevronDownSmall, IconChevronUp, IconSearch, IconX, KindIcon } from "./icons";
import { Markdown } from "./Markdown";
import { RawText, scrollWithin } from "./RawText";

const painted = new Set<string>();

/** The value, updated at most every `ms` while it keeps changing (trailing edge). */
export function useThrottled<T>(value: T, ms: number): T {
  const [shown, setShown] = useState(value);
  const last = useRef(0);
  const latest = useRef(value);
  latest.current = value;
  useEffect(() => {
    if (ms <= 0 || shown === value) {
      if (shown !== value) setShown(value);
      return;
    }
    const wait = Math.max(0, last.current + ms - Date.now());
    const h = window.setTimeout(() => {
      last.current = Date.now();
      setShown(latest.current);
    }, wait);
    return () => window.clearTimeout(h);
  }, [value, ms]);
  return ms <= 0 ? value : shown;
}

/** Keep the previous rows array when nothing visible changed (cheap re-renders while live). */
function useStableRows(rows: Row[]): Row[] {
  const prev = useRef<Row[]>(rows);
  const p = prev.current;
  if (p !== rows && (p.length !== rows.length || rows.some((r, i) => {
    const q = p[i];
    return q.id !== r.id || q.depth !== r.depth || q.expanded !== r.expanded || q.match !== r.match || q.episode !== r.episode;
  }))) prev.current = rows;
  return prev.current;
}

function markPainted(st: ResponseState, steps: number): void {
  if (painted.has(st.id) || typeof performance === "undefined") return;
  painted.add(st.id);
  // After the frame that shows the trace has been painted.
  requestAnimationFrame(() =>
    window.setTimeout(() => {
      try {
        performance.mark("arbor:trace-painted", { detail: { responseId: st.id, steps, chars: st.reasoning.length } });
      } catch {
        /* old browsers */
      }
    }, 0),
  );
}

// ---- header -----------------------------------------------------------------------

function Stats({ st, outline, thinking }: { st: ResponseState; outline: Outline; thinking: string }) {
  const s = useMemo(() => traceStats(outline), [outline]);
  const u = st.usage;
  const reasoningTok = u?.reasoning_tokens ?? null;
  const answerTok = u ? Math.max(0, u.completion_tokens - (u.reasoning_tokens ?? 0)) : null;
  const share = reasoningTok !== null && answerTok !== null && reasoningTok + answerTok > 0
    ? reasoningTok / (reasoningTok + answerTok) : null;
  return (
    <dl class="trace-stats" data-testid="trace-stats">
      <div><dt>Thinking</dt><dd data-stat="thinking">{thinking}</dd></div>
      <div title="Reasoning tokens vs answer tokens">
        <dt>Tokens</dt>
        <dd data-stat="tokens">
          {reasoningTok === null ? (
            <span class="muted">{formatCount(st.reasoning.length)} chars so far</span>
          ) : (
            <>
              <span class="tok-r">{formatCount(reasoningTok)}</span> reasoning ·{" "}
              <span class="tok-a">{formatCount(answerTok)}</span> answer
              {share !== null && (
                <span class="tok-bar" aria-hidden="true"><i style={{ width: `${(share * 100).toFixed(1)}%` }} /></span>
              )}
            </>
          )}
        </dd>
      </div>
      <div><dt>Steps</dt><dd data-stat="steps">{formatCount(s.steps)}</dd></div>
      <div><dt>Episodes</dt><dd data-stat="episodes">{formatCount(s.episodes)}</dd></div>
      <div class="st-backtrack"><dt><KindIcon kind="backtrack" size={13} /> Backtracks</dt><dd data-stat="backtracks">{formatCount(s.backtracks)}</dd></div>
      <div class="st-verify"><dt><KindIcon kind="verify" size={13} /> Verifications</dt><dd data-stat="verifications">{formatCount(s.verifications)}</dd></div>
      {s.verified > 0 && <div><dt>Verified</dt><dd data-stat="verified">{formatCount(s.verified)}</dd></div>}
      {s.abandoned > 0 && <div><dt>Abandoned</dt><dd data-stat="abandoned">{formatCount(s.abandoned)}</dd></div>}
    </dl>
  );
}

// ---- legend + filters -------------------------------------------------------------

function Legend({ counts, kinds, onToggle, onClear }: {
  counts: Record<string, number>;
  kinds: ReadonlySet<string>;
  onToggle: (k: string) => void;
  onClear: () => void;
}) {
  return (
    <div class="tree-legend" data-testid="tree-legend" role="group" aria-label="Step kinds: show only">
      {KINDS.map((k) => {
        const on = kinds.has(k);
        const n = counts[k] ?? 0;
        return (
          <button key={k} type="button" class={`kind-chip k-${k}${on ? " on" : ""}${n === 0 ? " none" : ""}`}
            data-testid="kind-filter" data-kind={k} aria-pressed={on}
            title={on ? `Showing ${KIND_LABEL[k]} steps only — click to remove the filter` : `Show only ${KIND_LABEL[k]} steps`}
            onClick={() => onToggle(k)}>
            <KindIcon kind={k} size={13} />
            <span class="kind-name">{KIND_LABEL[k]}</span>
            <span class="kind-n">{n}</span>
          </button>
        );
      })}
      {kinds.size > 0 && (
        <button type="button" class="ghost small clear-filter" onClick={onClear}>Show all</button>
      )}
    </div>
  );
}

// ---- minimap ----------------------------------------------------------------------

/** Kind colours from the stylesheet (so the minimap follows the theme). */
function kindColours(el: Element): Record<string, string> {
  const cs = getComputedStyle(el);
  const out: Record<string, string> = {};
  for (const k of KINDS) out[k] = cs.getPropertyValue(`--k-${k}`).trim() || "#888";
  out.view = cs.getPropertyValue("--text-2").trim() || "#444";
  out.sel = cs.getPropertyValue("--focus").trim() || "#2563eb";
  out.hit = cs.getPropertyValue("--text").trim() || "#111";
  return out;
}

/** One canvas for hundreds of steps: episodes band on top, one block per step below. */
const Minimap = memo(function Minimap({ outline, selected, hits, view, onPick, live }: {
  outline: Outline;
  live: boolean;
  selected: string | null;
  hits: Array<[number, number]>;
  view: [number, number] | null;
  onPick: (leafId: string) => void;
}) {
  const canvas = useRef<HTMLCanvasElement>(null);
  // While live, the scale grows in steps so the picture does not shift on every update.
  const len = Math.max(1, live ? Math.ceil(outline.textLength / 8192) * 8192 : outline.textLength);
  const blocks = useMemo(() => minimapBlocks(outline, len), [outline, len]);
  const [theme, setTheme] = useState(0);
  useEffect(() => {
    const obs = new MutationObserver(() => setTheme((t) => t + 1));
    obs.observe(document.documentElement, { attributes: true, attributeFilter: ["data-theme"] });
    const mq = window.matchMedia?.("(prefers-color-scheme: dark)");
    const on = () => setTheme((t) => t + 1);
    mq?.addEventListener?.("change", on);
    return () => {
      obs.disconnect();
      mq?.removeEventListener?.("change", on);
    };
  }, []);

  useLayoutEffect(() => {
    const c = canvas.current;
    if (!c) return;
    const w = c.clientWidth || 600;
    const h = c.clientHeight || 30;
    const dpr = Math.min(2, window.devicePixelRatio || 1);
    if (c.width !== Math.round(w * dpr) || c.height !== Math.round(h * dpr)) {
      c.width = Math.round(w * dpr);
      c.height = Math.round(h * dpr);
    }
    const g = c.getContext("2d");
    if (!g) return;
    const col = kindColours(c);
    g.setTransform(dpr, 0, 0, dpr, 0, 0);
    g.clearRect(0, 0, w, h);
    for (const b of blocks.episodes) {
      g.globalAlpha = b.status === "abandoned" ? 0.2 : 0.55;
      g.fillStyle = col[b.kind] ?? "#888";
      g.fillRect(b.x * w, 1, Math.max(1, b.w * w - 1), 6);
    }
    for (const b of blocks.leaves) {
      g.globalAlpha = b.status === "abandoned" ? 0.3 : 1;
      g.fillStyle = col[b.kind] ?? "#888";
      g.fillRect(b.x * w, 10, Math.max(0.8, b.w * w - 0.5), 13);
    }
    g.globalAlpha = 1;
    if (hits.length) {
      g.fillStyle = col.hit;
      let last = -1;
      for (const [a] of hits) {
        const x = Math.round((a / len) * w);
        if (x === last) continue;
        last = x;
        g.fillRect(x - 0.5, 25, 1.5, 4);
      }
    }
    if (view) {
      g.strokeStyle = col.view;
      g.lineWidth = 1.2;
      g.strokeRect((view[0] / len) * w + 0.5, 8.5, Math.max(4, ((view[1] - view[0]) / len) * w - 1), 16);
    }
    const sel = selected ? outline.nodes.get(selected) : null;
    if (sel) {
      g.strokeStyle = col.sel;
      g.lineWidth = 2;
      g.strokeRect((sel.from / len) * w - 1, 8, Math.max(3, ((sel.to - sel.from) / len) * w + 2), 17);
    }
  }, [blocks, hits, view, selected, theme, len, outline]);

  const pick = (e: MouseEvent) => {
    const r = (e.currentTarget as HTMLElement).getBoundingClientRect();
    const x = Math.max(0, Math.min(1, (e.clientX - r.left) / Math.max(1, r.width)));
    const id = leafAt(outline, Math.floor(x * len)) ?? outline.leaves[outline.leaves.length - 1];
    if (id) onPick(id);
  };
  return (
    <div class="minimap" data-testid="minimap" title="Overview of the trace: each block is a step, coloured by kind — click to jump"
      onClick={pick}>
      <canvas ref={canvas} aria-hidden="true" />
    </div>
  );
});

// ---- outline rows -----------------------------------------------------------------

interface RowProps {
  node: StepNode;
  row: Row;
  focused: boolean;
  selected: boolean;
  open: boolean;
  hit: boolean;
  /** The step's text, only when its detail is open. */
  detail: string | null;
  domId: string;
  onRow: (id: string, e: MouseEvent) => void;
}

function leafCount(o: Outline, n: StepNode): number {
  let c = 0;
  const stack = [...n.children];
  while (stack.length) {
    const id = stack.pop()!;
    const k = o.nodes.get(id);
    if (!k) continue;
    if (k.children.length) stack.push(...k.children);
    else c++;
  }
  return c;
}

function sameRow(a: RowProps & { size: number }, b: RowProps & { size: number }): boolean {
  return a.node.step === b.node.step && a.row.depth === b.row.depth && a.row.expanded === b.row.expanded
    && a.row.match === b.row.match && a.row.episode === b.row.episode && a.focused === b.focused
    && a.selected === b.selected && a.open === b.open && a.hit === b.hit && a.detail === b.detail
    && a.domId === b.domId && a.size === b.size && a.onRow === b.onRow;
}

const StepRow = memo(function StepRow({ node, row, focused, selected, open, hit, detail, domId, onRow, size }: RowProps & { size: number }) {
  const s = node.step;
  const status = STATUS_LABEL[s.status] ?? s.status;
  return (
    <div class={`step k-${s.kind}${row.episode ? " episode" : ""}${open ? " open" : ""}`} style={{ "--depth": row.depth }}>
      <div id={domId} role="treeitem" aria-level={row.depth + 1} aria-expanded={row.episode ? row.expanded : open}
        aria-selected={selected}
        class={`step-row k-${s.kind} s-${s.status}${focused ? " focused" : ""}${selected ? " selected" : ""}${row.match ? "" : " context"}${hit ? " hit" : ""}`}
        data-testid="tree-step" data-step-id={s.id} data-kind={s.kind} data-status={s.status}
        onClick={(e) => onRow(s.id, e as MouseEvent)}>
        <span class={`twisty${(row.episode ? row.expanded : open) ? " down" : ""}`} data-twisty="1" aria-hidden="true" />
        <span class="kind-badge" title={KIND_LABEL[s.kind] ?? s.kind}><KindIcon kind={s.kind} size={14} /></span>
        <span class="step-title">{s.title || (KIND_LABEL[s.kind] ?? s.kind)}</span>
        {row.episode && <span class="step-size">{size} {size === 1 ? "step" : "steps"}</span>}
        {s.status === "verified" && <span class="st-badge verified" title="Confirmed by a later check">✓ verified</span>}
        {s.status === "abandoned" && <span class="st-badge abandoned" title="A branch given up">abandoned</span>}
        {s.status === "open" && <span class="st-badge growing" title="Still growing"><i /><i /><i /><span class="sr-only">{status}</span></span>}
      </div>
      {detail !== null && (
        <div class="step-detail">
          <Markdown text={detail} streaming={s.status === "open"} class="step-md" />
        </div>
      )}
    </div>
  );
}, sameRow);

// ---- the view ---------------------------------------------------------------------

export const TraceView = memo(function TraceView({ st, live, thinking }: { st: ResponseState; live: boolean; thinking: string }) {
  const text = st.reasoning;
  const outline = useMemo(() => buildOutline(st.steps, text), [st.steps, text]);
  const hasSteps = outline.leaves.length > 0;
  const [tab, setTab] = useState<"tree" | "text" | null>(null);
  const view = tab ?? (hasSteps ? "tree" : "text");
  const [nav, setNav] = useState<NavState>({ focus: null, toggled: new Map(), open: new Set() });
  const [selected, setSelected] = useState<string | null>(null);
  const [kinds, setKinds] = useState<ReadonlySet<string>>(new Set());
  const [query, setQuery] = useState("");
  /** The current search match; null until the user steps to one. */
  const [hitIdx, setHitIdx] = useState<number | null>(null);
  const [scrollKey, setScrollKey] = useState(0);
  const [viewport, setViewport] = useState<[number, number] | null>(null);
  const outlineRef = useRef<HTMLDivElement>(null);
  const followTree = useRef(true);
  const idPrefix = `ts-${st.id.slice(0, 8)}-`;

  const search = useMemo(
    () => (query.trim() ? searchTrace(outline, text, query) : EMPTY_SEARCH),
    [outline, text, query],
  );
  const searching = query.trim().length > 0;
  const defaultExpanded = useMemo(() => defaultExpandedFor(outline), [outline]);
  const rows = useStableRows(useMemo(
    () => visibleRows(outline, { toggled: nav.toggled, kinds, search: searching ? search.stepIds : null, defaultExpanded }),
    [outline, nav.toggled, kinds, search, searching, defaultExpanded],
  ));
  const stats = useMemo(() => traceStats(outline), [outline]);
  // The overview is redrawn at most a few times a second while the trace grows.
  const mapOutline = useThrottled(outline, live ? 400 : 0);

  useEffect(() => {
    if (text) markPainted(st, outline.leaves.length);
  }, [st.id, text === ""]);

  // Leaves highlighted in the text for the selected step (an episode: all its leaves).
  const highlightIds = useMemo(() => {
    if (!selected) return [];
    const n = outline.nodes.get(selected);
    if (!n) return [];
    if (!n.children.length) return [selected];
    const out: string[] = [];
    for (let i = 0; i < outline.leaves.length; i++) {
      const s = outline.leafStarts[i];
      if (s >= n.from && s < n.to) out.push(outline.leaves[i]);
    }
    return out;
  }, [selected, outline]);

  const scrollRowIntoView = useCallback((id: string) => {
    requestAnimationFrame(() => {
      const box = outlineRef.current;
      const el = box ? document.getElementById(idPrefix + id) : null;
      if (box && el && box.offsetParent !== null) {
        followTree.current = false;
        scrollWithin(box, el, 12);
      }
    });
  }, [idPrefix]);

  const select = useCallback((id: string, opts: { fromText?: boolean; toggleOpen?: boolean } = {}) => {
    setSelected(id);
    setScrollKey((k) => k + 1);
    setNav((prev) => {
      let open = prev.open;
      if (opts.toggleOpen) {
        const o = new Set(open);
        if (o.has(id)) o.delete(id);
        else o.add(id);
        open = o;
      }
      return { ...prev, focus: id, open, toggled: reveal(outline, prev.toggled, id) };
    });
    if (opts.fromText) {
      // A filter could hide the step: drop filters that exclude it.
      const n = outline.nodes.get(id);
      if (n && kinds.size && !kinds.has(n.step.kind)) setKinds(new Set());
      scrollRowIntoView(id);
    }
  }, [outline, kinds, scrollRowIntoView]);

  const onRowImpl = (id: string, _e?: MouseEvent) => {
    const n = outline.nodes.get(id);
    if (!n) return;
    if (n.children.length) {
      const cur = rows.find((r) => r.id === id)?.expanded ?? true;
      setNav((prev) => {
        const t = new Map(prev.toggled);
        t.set(id, !cur);
        return { ...prev, focus: id, toggled: t };
      });
      setSelected(id);
      setScrollKey((k) => k + 1);
    } else {
      select(id, { toggleOpen: true });
    }
  };
  const onRowRef = useRef(onRowImpl);
  onRowRef.current = onRowImpl;
  const onRow = useCallback((id: string, e: MouseEvent) => onRowRef.current(id, e), []);

  const onKeyDown = (e: KeyboardEvent) => {
    if (e.altKey || e.ctrlKey || e.metaKey) return;
    const keys = ["ArrowDown", "ArrowUp", "ArrowLeft", "ArrowRight", "Home", "End", "PageUp", "PageDown", "Enter", " "];
    if (!keys.includes(e.key)) return;
    e.preventDefault();
    const next = navKey(outline, rows, { ...nav, focus: nav.focus ?? selected }, e.key);
    setNav(next);
    if (next.focus && next.focus !== selected) {
      setSelected(next.focus);
      setScrollKey((k) => k + 1);
    }
    if (next.focus) scrollRowIntoView(next.focus);
  };

  // Search navigation
  const hitCount = search.ranges.length;
  const curHit = hitCount && hitIdx !== null ? Math.min(hitIdx, hitCount - 1) : -1;
  const goHit = (d: number) => {
    if (!hitCount) return;
    const i = curHit < 0 ? (d < 0 ? hitCount - 1 : 0) : (curHit + d + hitCount) % hitCount;
    setHitIdx(i);
    const leaf = leafAt(outline, search.ranges[i][0]);
    if (leaf) {
      setSelected(leaf);
      setNav((prev) => ({ ...prev, focus: leaf, toggled: reveal(outline, prev.toggled, leaf) }));
      scrollRowIntoView(leaf);
    }
  };

  // Follow the growing end of the outline while live, unless the user scrolled away.
  useLayoutEffect(() => {
    const box = outlineRef.current;
    if (live && box && followTree.current) box.scrollTop = box.scrollHeight;
  }, [rows, live]);

  // Which part of the text the outline shows (minimap window).
  const measure = useCallback(() => {
    const box = outlineRef.current;
    if (!box || !rows.length || box.offsetParent === null) {
      setViewport(null);
      return;
    }
    const b = box.getBoundingClientRect();
    const items = box.querySelectorAll<HTMLElement>("[data-step-id]");
    let first: string | null = null;
    let last: string | null = null;
    // Binary search the first visible row, then walk to the last.
    let lo = 0;
    let hi = items.length - 1;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (items[mid].getBoundingClientRect().bottom < b.top) lo = mid + 1;
      else hi = mid;
    }
    for (let i = lo; i < items.length; i++) {
      const r = items[i].getBoundingClientRect();
      if (r.top > b.bottom) break;
      if (!first) first = items[i].dataset.stepId ?? null;
      last = items[i].dataset.stepId ?? null;
    }
    const a = first ? outline.nodes.get(first) : null;
    const z = last ? outline.nodes.get(last) : null;
    if (!a || !z) return setViewport(null);
    const v: [number, number] = [a.from, Math.max(a.from, z.to)];
    setViewport((prev) => (prev && prev[0] === v[0] && prev[1] === v[1] ? prev : v));
  }, [rows, outline]);
  const measureRef = useRef(measure);
  measureRef.current = measure;
  const timer = useRef(0);
  const onOutlineScroll = () => {
    const box = outlineRef.current;
    if (box) followTree.current = box.scrollTop + box.clientHeight >= box.scrollHeight - 24;
    if (timer.current) return;
    timer.current = window.setTimeout(() => {
      timer.current = 0;
      measureRef.current();
    }, live ? 300 : 60);
  };
  useEffect(() => {
    const h = window.setTimeout(() => measureRef.current(), live ? 600 : 50);
    return () => window.clearTimeout(h);
  }, [rows, view, live]);

  const sizes = useMemo(() => {
    const m = new Map<string, number>();
    for (const r of rows) if (r.episode) m.set(r.id, leafCount(outline, outline.nodes.get(r.id)!));
    return m;
  }, [rows, outline]);

  const focusId = nav.focus && rows.some((r) => r.id === nav.focus) ? nav.focus : null;

  // Progressive rendering: the first screenful of rows now, the rest in the next tasks,
  // so opening a trace with hundreds of steps paints at once.
  const [limit, setLimit] = useState(60);
  useEffect(() => {
    if (limit >= rows.length) return;
    const h = window.setTimeout(() => setLimit((l) => l + 120), 0);
    return () => window.clearTimeout(h);
  }, [limit, rows.length]);
  const focusIndex = focusId ? rows.findIndex((r) => r.id === focusId) : -1;
  const shown = rows.length > limit ? rows.slice(0, Math.max(limit, focusIndex + 20)) : rows;

  return (
    <div class={`trace-view view-${view}${hasSteps ? " has-steps" : ""}`}>
      {hasSteps && <Stats st={st} outline={outline} thinking={thinking} />}
      {hasSteps && (
        <div class="trace-toolbar">
          <div class="view-tabs" role="tablist" aria-label="Reasoning view">
            <button type="button" role="tab" aria-selected={view === "tree"} data-testid="view-tree"
              class={view === "tree" ? "on" : ""} onClick={() => setTab("tree")}>Tree</button>
            <button type="button" role="tab" aria-selected={view === "text"} data-testid="view-text"
              class={view === "text" ? "on" : ""} onClick={() => setTab("text")}>Text</button>
          </div>
          <label class="tree-search">
            <IconSearch size={14} />
            <span class="sr-only">Search this trace</span>
            <input type="search" data-testid="tree-search" placeholder="Search this trace" value={query}
              onInput={(e) => {
                setQuery((e.currentTarget as HTMLInputElement).value);
                setHitIdx(null);
              }}
              onKeyDown={(e) => {
                if (e.key === "Enter") {
                  e.preventDefault();
                  goHit(e.shiftKey ? -1 : 1);
                } else if (e.key === "Escape") {
                  e.stopPropagation();
                  if (query) {
                    e.preventDefault();
                    setQuery("");
                  }
                }
              }} />
            {searching && (
              <span class="search-count" data-testid="search-count" aria-live="polite">
                {hitCount
                  ? `${curHit < 0 ? "" : `${curHit + 1} / `}${hitCount}${hitCount >= 5000 ? "+" : ""}${curHit < 0 ? (hitCount === 1 ? " match" : " matches") : ""}`
                  : "No matches"}
              </span>
            )}
            {searching && hitCount > 0 && (
              <>
                <button type="button" class="icon-btn tiny" aria-label="Previous match" onClick={() => goHit(-1)}><IconChevronUp size={14} /></button>
                <button type="button" class="icon-btn tiny" aria-label="Next match" onClick={() => goHit(1)}><IconChevronDownSmall size={14} /></button>
              </>
            )}
            {searching && (
              <button type="button" class="icon-btn tiny" aria-label="Clear the search" onClick={() => setQuery("")}><IconX size={14} /></button>
            )}
          </label>
        </div>
      )}
      {hasSteps && (
        <Legend counts={stats.byKind} kinds={kinds}
          onToggle={(k) => setKinds((prev) => {
            const n = new Set(prev);
            if (n.has(k)) n.delete(k);
            else n.add(k);
            return n;
          })}
          onClear={() => setKinds(new Set())} />
      )}
      {hasSteps && <Minimap outline={mapOutline} live={live} selected={selected} hits={search.ranges} view={view === "tree" ? viewport : null}
        onPick={(id) => select(id, { fromText: true })} />}
      <div class="trace-panes">
        {hasSteps && (
          <div class="pane pane-tree">
            <div ref={outlineRef} class={`outline${live ? " live" : ""}`} role="tree" tabIndex={0} data-testid="tree"
              aria-label="Reasoning steps" aria-activedescendant={focusId ? idPrefix + focusId : undefined}
              onKeyDown={onKeyDown} onScroll={onOutlineScroll}>
              {rows.length === 0 && <p class="muted small pad">No step matches{kinds.size ? " these kinds" : ""}{searching ? " this search" : ""}.</p>}
              {shown.map((r) => {
                const n = outline.nodes.get(r.id)!;
                const open = !r.episode && nav.open.has(r.id);
                return (
                  <StepRow key={r.id} node={n} row={r} focused={focusId === r.id} selected={selected === r.id}
                    open={open} hit={searching && search.stepIds.has(r.id)} domId={idPrefix + r.id}
                    detail={open ? text.slice(n.from, n.to) : null} onRow={onRow} size={sizes.get(r.id) ?? 0} />
                );
              })}
            </div>
          </div>
        )}
        <div class="pane pane-text">
          <RawText text={text} outline={hasSteps ? outline : null} live={live} highlightIds={highlightIds}
            hits={search.ranges} currentHit={curHit} scrollKey={scrollKey}
            onPick={(id) => select(id, { fromText: true })} />
        </div>
      </div>
    </div>
  );
});
