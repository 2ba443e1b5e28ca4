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

/** Root to leaf, always taking the most recent child. */
export function activeBranch(tree: MessageTree): Message[] {
  const out: Message[] = [];
  const seen = new Set<string>();
  let cur = latest(tree, tree.children.get(null));
  while (cur && !seen.has(cur.id)) {
    out.push(cur);
    seen.add(cur.id);
    cur = latest(tree, tree.children.get(cur.id));
  }
  return out;
}
