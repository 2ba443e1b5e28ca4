// Conversation messages as a tree; the shown branch follows the latest child.
import type { Message } from "./types";

export interface MessageTree {
  byId: Map<string, Message>;
  children: Map<string | null, string[]>;
}

const time = (m: Message) => Date.parse(m.created_at) || 0;

export function buildTree(messages: Message[]): MessageTree {
  const byId = new Map<string, Message>();
  const children = new Map<string | null, string[]>();
  for (const m of messages) byId.set(m.id, m);
  for (const m of messages) {
    const parent = m.parent_id && byId.has(m.parent_id) ? m.parent_id : null;
    const list = children.get(parent) ?? [];
    list.push(m.id);
    children.set(parent, list);
  }
  return { byId, children };
}

export function addMessage(tree: MessageTree, m: Message): MessageTree {
  const byId = new Map(tree.byId);
  const children = new Map(tree.children);
  byId.set(m.id, m);
  const parent = m.parent_id && byId.has(m.parent_id) ? m.parent_id : null;
  children.set(parent, [...(children.get(parent) ?? []).filter((x) => x !== m.id), m.id]);
  return { byId, children };
}

export function removeMessage(tree: MessageTree, id: string): MessageTree {
  if (!tree.byId.has(id)) return tree;
  const byId = new Map(tree.byId);
  byId.delete(id);
  const children = new Map<string | null, string[]>();
  for (const [k, v] of tree.children) children.set(k, v.filter((x) => x !== id));
  return { byId, children };
}

function latest(tree: MessageTree, ids: string[] | undefined): Message | null {
  let best: Message | null = null;
  for (const id of ids ?? []) {
    const m = tree.byId.get(id);
    if (m && (!best || time(m) >= time(best))) best = m;
  }
  return best;
}

/**
 * The user's branch choices: parent id ("" for the root level) -> chosen child.
 * Levels without a choice follow the most recent child.
 */
export type Selection = ReadonlyMap<string, string>;

export const ROOT = "";

const key = (parent: string | null): string => parent ?? ROOT;

function pick(tree: MessageTree, parent: string | null, sel: Selection | undefined): Message | null {
  const ids = tree.children.get(parent);
  const chosen = sel?.get(key(parent));
  if (chosen && ids?.includes(chosen)) return tree.byId.get(chosen) ?? null;
  return latest(tree, ids);
}

/** Root to leaf: the selected child at each level, else the most recent one. */
export function activeBranch(tree: MessageTree, sel?: Selection): Message[] {
  const out: Message[] = [];
  const seen = new Set<string>();
  let cur = pick(tree, null, sel);
  while (cur && !seen.has(cur.id)) {
    out.push(cur);
    seen.add(cur.id);
    cur = pick(tree, cur.id, sel);
  }
  return out;
}

function parentKeyOf(tree: MessageTree, m: Message): string | null {
  return m.parent_id && tree.byId.has(m.parent_id) ? m.parent_id : null;
}

/** The message and its siblings (same parent), oldest first. */
export function siblings(tree: MessageTree, id: string): Message[] {
  const m = tree.byId.get(id);
  if (!m) return [];
  const ids = tree.children.get(parentKeyOf(tree, m)) ?? [];
  return ids
    .map((x) => tree.byId.get(x))
    .filter((x): x is Message => !!x)
    .map((x, i) => [x, i] as const)
    .sort((a, b) => time(a[0]) - time(b[0]) || a[1] - b[1])
    .map(([x]) => x);
}

/** Choose `id` at its level (and keep every other choice). */
export function selectMessage(tree: MessageTree, sel: Selection, id: string): Map<string, string> {
  const next = new Map(sel);
  const m = tree.byId.get(id);
  if (m) next.set(key(parentKeyOf(tree, m)), id);
  return next;
}

/** Move to the previous (-1) or next (+1) sibling of `id`; unchanged at the ends. */
export function stepSibling(tree: MessageTree, sel: Selection, id: string, dir: -1 | 1): Map<string, string> {
  const sibs = siblings(tree, id);
  const i = sibs.findIndex((m) => m.id === id);
  const j = i + dir;
  if (i < 0 || j < 0 || j >= sibs.length) return new Map(sel);
  return selectMessage(tree, sel, sibs[j].id);
}

/** Choices that make the shown branch pass through `id` (below it: as chosen before). */
export function selectPathTo(tree: MessageTree, sel: Selection, id: string): Map<string, string> {
  const next = new Map(sel);
  const seen = new Set<string>();
  let cur = tree.byId.get(id);
  while (cur && !seen.has(cur.id)) {
    seen.add(cur.id);
    const parent = parentKeyOf(tree, cur);
    next.set(key(parent), cur.id);
    cur = parent ? tree.byId.get(parent) : undefined;
  }
  return next;
}

// ---- compact branch map (sidebar) -------------------------------------------

export interface MapNode {
  id: string;
  role: Message["role"];
  label: string;
  /** Indentation level: grows only where the conversation forks. */
  level: number;
  /** On the shown branch. */
  active: boolean;
  /** Position among its siblings, e.g. 2 of 3 (1 of 1 when there is no fork). */
  n: number;
  of: number;
}

/**
 * The whole message tree as rows, depth-first, oldest sibling first. Linear
 * runs keep their level; each fork indents its alternatives by one.
 */
export function branchMap(tree: MessageTree, sel?: Selection, maxRows = 400): MapNode[] {
  const active = new Set(activeBranch(tree, sel).map((m) => m.id));
  const rows: MapNode[] = [];
  const kids = (parent: string | null): Message[] => {
    const ids = tree.children.get(parent) ?? [];
    return ids.length ? siblings(tree, ids[0]) : [];
  };
  const walk = (parent: string | null, level: number, seen: Set<string>) => {
    const list = kids(parent);
    const fork = list.length > 1;
    list.forEach((m, i) => {
      if (rows.length >= maxRows || seen.has(m.id)) return;
      seen.add(m.id);
      const text = m.content.replace(/\s+/g, " ").trim();
      rows.push({
        id: m.id,
        role: m.role,
        label: m.role === "user" ? text || "(empty)" : text || "Answer",
        level: fork ? level + 1 : level,
        active: active.has(m.id),
        n: i + 1,
        of: list.length,
      });
      walk(m.id, fork ? level + 1 : level, seen);
    });
  };
  walk(null, 0, new Set());
  return rows;
}

/** True when any message has a sibling. */
export function hasBranches(tree: MessageTree): boolean {
  for (const ids of tree.children.values()) if (ids.length > 1) return true;
  return false;
}
