// View model of the reasoning step tree ("thinking tree"): pure functions,
// no DOM. The component layer (components/TraceTree.tsx) renders what these return.
import type { Step } from "./types";

export const KINDS = [
  "setup", "plan", "recall", "compute", "result", "reflect", "verify", "backtrack", "alternative", "final",
] as const;
export type Kind = (typeof KINDS)[number];

export const KIND_LABEL: Record<string, string> = {
  setup: "Setup",
  plan: "Plan",
  recall: "Recall",
  compute: "Compute",
  result: "Result",
  reflect: "Reflect",
  verify: "Verify",
  backtrack: "Backtrack",
  alternative: "Alternative",
  final: "Final",
};

export const STATUS_LABEL: Record<string, string> = {
  open: "still growing",
  closed: "",
  abandoned: "abandoned",
  verified: "verified",
};

// ---- offsets ------------------------------------------------------------------

/**
 * Step offsets are Python code-point offsets; JS strings index UTF-16 units.
 * Returns a function mapping a code-point offset to a UTF-16 index (identity
 * when the text has no astral-plane characters, the usual case).
 */
export function offsetMapper(text: string): (cp: number) => number {
  if (!/[\uD800-\uDFFF]/.test(text)) {
    return (cp) => (cp < 0 ? 0 : cp > text.length ? text.length : cp);
  }
  const idx: number[] = [];
  for (let i = 0; i < text.length; i++) {
    idx.push(i);
    const c = text.charCodeAt(i);
    if (c >= 0xd800 && c <= 0xdbff && i + 1 < text.length) {
      const d = text.charCodeAt(i + 1);
      if (d >= 0xdc00 && d <= 0xdfff) i++;
    }
  }
  idx.push(text.length);
  const table = Int32Array.from(idx);
  return (cp) => (cp <= 0 ? 0 : cp >= table.length ? text.length : table[cp]);
}

// ---- outline ------------------------------------------------------------------

export interface StepNode {
  step: Step;
  depth: number;
  parent: string | null;
  children: string[];
  /** Start/end as UTF-16 indices into the reasoning string (end: text end while open). */
  from: number;
  to: number;
}

export interface Outline {
  nodes: Map<string, StepNode>;
  roots: string[];
  /** Leaf steps (no children, not episodes) in text order. */
  leaves: string[];
  /** Leaf start indices (UTF-16), parallel to `leaves`, for binary search. */
  leafStarts: number[];
  textLength: number;
}

export const isEpisode = (s: Step): boolean => s.id.startsWith("e");

export function buildOutline(steps: Step[], text: string): Outline {
  const map = offsetMapper(text);
  const nodes = new Map<string, StepNode>();
  const roots: string[] = [];
  const sorted = steps.length > 1 && steps.some((s, i) => i > 0 && steps[i - 1].index > s.index)
    ? [...steps].sort((a, b) => a.index - b.index)
    : steps;
  for (const s of sorted) {
    const parent = s.parent_id && nodes.has(s.parent_id) ? s.parent_id : null;
    const depth = parent ? nodes.get(parent)!.depth + 1 : 0;
    const from = map(s.start);
    const to = s.end == null ? text.length : map(s.end);
    nodes.set(s.id, { step: s, depth, parent, children: [], from, to: Math.max(from, to) });
    if (parent) nodes.get(parent)!.children.push(s.id);
    else roots.push(s.id);
  }
  const leaves: string[] = [];
  const leafStarts: number[] = [];
  for (const s of sorted) {
    const n = nodes.get(s.id)!;
    if (n.children.length === 0 && !isEpisode(s)) {
      leaves.push(s.id);
      leafStarts.push(n.from);
    }
  }
  // Leaves arrive in text order; keep them sorted regardless.
  if (leafStarts.some((v, i) => i > 0 && leafStarts[i - 1] > v)) {
    const order = leaves.map((id, i) => [leafStarts[i], id] as const).sort((a, b) => a[0] - b[0]);
    leaves.length = 0;
    leafStarts.length = 0;
    for (const [st, id] of order) {
      leaves.push(id);
      leafStarts.push(st);
    }
  }
  return { nodes, roots, leaves, leafStarts, textLength: text.length };
}

/** The leaf step covering UTF-16 index `i`, or null. */
export function leafAt(o: Outline, i: number): string | null {
  let lo = 0;
  let hi = o.leafStarts.length - 1;
  let best = -1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    if (o.leafStarts[mid] <= i) {
      best = mid;
      lo = mid + 1;
    } else hi = mid - 1;
  }
  if (best < 0) return null;
  const n = o.nodes.get(o.leaves[best])!;
  return i < n.to || (i === n.to && n.step.end == null) ? n.step.id : null;
}

export function ancestors(o: Outline, id: string): string[] {
  const out: string[] = [];
  let cur = o.nodes.get(id)?.parent ?? null;
  while (cur) {
    out.push(cur);
    cur = o.nodes.get(cur)?.parent ?? null;
  }
  return out;
}

// ---- stats --------------------------------------------------------------------

export interface TraceStats {
  steps: number;
  episodes: number;
  backtracks: number;
  verifications: number;
  abandoned: number;
  verified: number;
  byKind: Record<string, number>;
}

export function traceStats(o: Outline): TraceStats {
  const byKind: Record<string, number> = {};
  let episodes = 0;
  let abandoned = 0;
  let verified = 0;
  for (const n of o.nodes.values()) {
    if (isEpisode(n.step)) {
      episodes++;
      continue;
    }
    byKind[n.step.kind] = (byKind[n.step.kind] ?? 0) + 1;
    if (n.step.status === "abandoned") abandoned++;
    if (n.step.status === "verified") verified++;
  }
  return {
    steps: o.leaves.length,
    episodes,
    backtracks: byKind.backtrack ?? 0,
    verifications: byKind.verify ?? 0,
    abandoned,
    verified,
    byKind,
  };
}

// ---- search -------------------------------------------------------------------

export interface SearchResult {
  /** Matches as UTF-16 [from, to) ranges into the text. */
  ranges: Array<[number, number]>;
  /** Leaf ids containing a match, in text order. */
  leafIds: string[];
  /** Every step (leaf or episode) containing a match. */
  stepIds: Set<string>;
}

export const EMPTY_SEARCH: SearchResult = { ranges: [], leafIds: [], stepIds: new Set() };

export function searchTrace(o: Outline, text: string, query: string, maxRanges = 5000): SearchResult {
  const q = query.trim().toLowerCase();
  if (q.length < 2 && !(q.length === 1 && /\S/.test(q) && text.length < 5000)) return EMPTY_SEARCH;
  const hay = text.toLowerCase();
  // toLowerCase can change lengths for a few characters; fall back to exact case then.
  const same = hay.length === text.length;
  const src = same ? hay : text;
  const needle = same ? q : query.trim();
  const ranges: Array<[number, number]> = [];
  const leafIds: string[] = [];
  const stepIds = new Set<string>();
  let from = 0;
  for (;;) {
    const i = src.indexOf(needle, from);
    if (i < 0 || ranges.length >= maxRanges) break;
    ranges.push([i, i + needle.length]);
    from = i + needle.length;
    const leaf = leafAt(o, i);
    if (leaf && leafIds[leafIds.length - 1] !== leaf) {
      leafIds.push(leaf);
      stepIds.add(leaf);
      for (const a of ancestors(o, leaf)) stepIds.add(a);
    }
  }
  // Titles can match even where the text differs (ellipsis); count them too.
  for (const n of o.nodes.values()) {
    if (!stepIds.has(n.step.id) && n.step.title.toLowerCase().includes(q)) {
      stepIds.add(n.step.id);
      for (const a of ancestors(o, n.step.id)) stepIds.add(a);
    }
  }
  return { ranges, leafIds, stepIds };
}

// ---- rows (the flattened, visible outline) ------------------------------------

export interface Row {
  id: string;
  depth: number;
  episode: boolean;
  /** For episodes: whether its children are shown. */
  expanded: boolean;
  /** Matches a filter/search itself (false = shown only as context for a match below). */
  match: boolean;
}

export interface RowOptions {
  /** Episode ids whose collapse state the user chose (true = expanded). */
  toggled: ReadonlyMap<string, boolean>;
  /** Kinds to show; empty = all. */
  kinds: ReadonlySet<string>;
  /** Steps matching the search; null = no search active. */
  search: ReadonlySet<string> | null;
  /** Default for episodes not toggled by the user. */
  defaultExpanded: (n: StepNode) => boolean;
}

/** Default collapse state: abandoned branches folded; big traces start folded to episodes. */
export function defaultExpandedFor(o: Outline): (n: StepNode) => boolean {
  const big = o.leaves.length > 150;
  const lastRoot = o.roots[o.roots.length - 1];
  return (n) => {
    if (n.step.status === "abandoned") return false;
    if (n.step.status === "open") return true;
    // An episode of one step repeats that step's title: folded, it reads as one row.
    if (n.children.length === 1 && !o.nodes.get(n.children[0])?.children.length) return false;
    if (!big) return true;
    // In big traces show the live (last) top-level episode unfolded, the rest folded.
    let top = n.step.id;
    let p = n.parent;
    while (p) {
      top = p;
      p = o.nodes.get(p)?.parent ?? null;
    }
    return top === lastRoot && o.nodes.get(lastRoot)?.step.status === "open";
  };
}

export function isExpanded(n: StepNode, opts: RowOptions): boolean {
  return opts.toggled.get(n.step.id) ?? opts.defaultExpanded(n);
}

export function filtering(opts: RowOptions): boolean {
  return opts.kinds.size > 0 || opts.search !== null;
}

/** Depth-first list of the rows to show. Filters and search force matching branches open. */
export function visibleRows(o: Outline, opts: RowOptions): Row[] {
  const rows: Row[] = [];
  const active = filtering(opts);
  // Which steps match, and which episodes contain a match (to keep as context).
  let keep: Set<string> | null = null;
  const matches = new Set<string>();
  if (active) {
    keep = new Set();
    for (const n of o.nodes.values()) {
      const kindOk = opts.kinds.size === 0 || opts.kinds.has(n.step.kind);
      const searchOk = opts.search === null || opts.search.has(n.step.id);
      const leafish = n.children.length === 0;
      if (kindOk && searchOk && (leafish || opts.kinds.size > 0)) {
        matches.add(n.step.id);
        keep.add(n.step.id);
        let p = n.parent;
        while (p && !keep.has(p)) {
          keep.add(p);
          p = o.nodes.get(p)?.parent ?? null;
        }
      }
    }
  }
  const walk = (ids: string[]) => {
    for (const id of ids) {
      const n = o.nodes.get(id)!;
      if (keep && !keep.has(id)) continue;
      const episode = n.children.length > 0 || isEpisode(n.step);
      // While filtering, branches with matches are shown open unless the user folded them.
      const expanded = episode && (active ? opts.toggled.get(id) ?? true : isExpanded(n, opts));
      rows.push({ id, depth: n.depth, episode, expanded, match: !active || matches.has(id) });
      if (episode && expanded) walk(n.children);
    }
  };
  walk(o.roots);
  return rows;
}

// ---- keyboard navigation --------------------------------------------------------

export interface NavState {
  focus: string | null;
  /** Episode collapse choices (true = expanded). */
  toggled: ReadonlyMap<string, boolean>;
  /** Leaf steps whose full text is open. */
  open: ReadonlySet<string>;
}

/**
 * Tree keyboard model (WAI-ARIA tree pattern): Up/Down move, Right expands or
 * enters, Left collapses or goes to the parent, Home/End jump, Enter/Space
 * toggles. `rows` are the rows currently visible.
 */
export function navKey(o: Outline, rows: Row[], st: NavState, key: string): NavState {
  if (rows.length === 0) return st;
  const idx = st.focus ? rows.findIndex((r) => r.id === st.focus) : -1;
  const at = (i: number): NavState => ({ ...st, focus: rows[Math.max(0, Math.min(rows.length - 1, i))].id });
  if (idx < 0) return key === "End" ? at(rows.length - 1) : at(0);
  const row = rows[idx];
  const withToggle = (id: string, v: boolean): NavState => {
    const t = new Map(st.toggled);
    t.set(id, v);
    return { ...st, toggled: t };
  };
  const withOpen = (id: string, v: boolean): NavState => {
    const s = new Set(st.open);
    if (v) s.add(id);
    else s.delete(id);
    return { ...st, open: s };
  };
  switch (key) {
    case "ArrowDown":
      return at(idx + 1);
    case "ArrowUp":
      return at(idx - 1);
    case "Home":
      return at(0);
    case "End":
      return at(rows.length - 1);
    case "PageDown":
      return at(idx + 10);
    case "PageUp":
      return at(idx - 10);
    case "ArrowRight":
      if (row.episode) {
        if (!row.expanded) return withToggle(row.id, true);
        return idx + 1 < rows.length && rows[idx + 1].depth > row.depth ? at(idx + 1) : st;
      }
      return st.open.has(row.id) ? st : withOpen(row.id, true);
    case "ArrowLeft": {
      if (row.episode && row.expanded) return withToggle(row.id, false);
      if (!row.episode && st.open.has(row.id)) return withOpen(row.id, false);
      const parent = o.nodes.get(row.id)?.parent;
      return parent && rows.some((r) => r.id === parent) ? { ...st, focus: parent } : st;
    }
    case "Enter":
    case " ":
      if (row.episode) return withToggle(row.id, !row.expanded);
      return withOpen(row.id, !st.open.has(row.id));
    default:
      return st;
  }
}

/** Make a step visible: unfold every collapsed ancestor. */
export function reveal(o: Outline, toggled: ReadonlyMap<string, boolean>, id: string): Map<string, boolean> {
  const t = new Map(toggled);
  for (const a of ancestors(o, id)) t.set(a, true);
  return t;
}

// ---- minimap --------------------------------------------------------------------

export interface MiniBlock {
  id: string;
  kind: string;
  status: string;
  /** Fractions of the text length, 0..1. */
  x: number;
  w: number;
}

/** Leaf blocks for the minimap strip, and top-level episode bands. */
export function minimapBlocks(o: Outline, scale = o.textLength): { leaves: MiniBlock[]; episodes: MiniBlock[] } {
  const len = Math.max(1, scale);
  const block = (id: string): MiniBlock => {
    const n = o.nodes.get(id)!;
    return { id, kind: n.step.kind, status: n.step.status, x: n.from / len, w: Math.max(0, n.to - n.from) / len };
  };
  return {
    leaves: o.leaves.map(block),
    episodes: o.roots.filter((id) => o.nodes.get(id)!.children.length > 0).map(block),
  };
}
