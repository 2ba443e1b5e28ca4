// The workbench's keyboard map: one pure function from a key press (and what is open)
// to a command, so the map is tested and the shortcut sheet is generated from the
// same table the handler uses.
import type { Choice, Rating, Tag, TaskType } from "./model";
import { TAGS } from "./model";

export type Command =
  | { cmd: "move"; by: number }
  | { cmd: "rate"; rating: Rating | null }
  | { cmd: "score"; value: number }
  | { cmd: "choose"; choice: Choice }
  | { cmd: "toggleSide"; side: 0 | 1 }
  | { cmd: "tagsMenu" }
  | { cmd: "tag"; tag: Tag }
  | { cmd: "merge" }
  | { cmd: "split" }
  | { cmd: "nextUnrated" }
  | { cmd: "firstError" }
  | { cmd: "expand" }
  | { cmd: "cycleFinish" }
  | { cmd: "note" }
  | { cmd: "rationale" }
  | { cmd: "guidelines" }
  | { cmd: "submit" }
  | { cmd: "skip" }
  | { cmd: "help" }
  | { cmd: "close" };

export interface KeyPress {
  key: string;
  shiftKey?: boolean;
  ctrlKey?: boolean;
  metaKey?: boolean;
  altKey?: boolean;
}

export type Mode = "normal" | "tags" | "dialog";

/** Whether key presses aimed at this element belong to it (typing), not to the workbench. */
export function isTyping(el: EventTarget | null): boolean {
  if (!el || !(el as HTMLElement).tagName) return false;
  const h = el as HTMLElement;
  const tag = h.tagName;
  if (tag === "TEXTAREA" || tag === "SELECT") return true;
  if (tag === "INPUT") {
    const type = (h as HTMLInputElement).type;
    return !["checkbox", "radio", "button", "submit", "range"].includes(type);
  }
  return h.isContentEditable === true;
}

const COMMON: Record<string, Command> = {
  "?": { cmd: "help" },
  g: { cmd: "guidelines" },
  r: { cmd: "rationale" },
  Enter: { cmd: "submit" },
  S: { cmd: "skip" },
  Escape: { cmd: "close" },
};

const STEP: Record<string, Command> = {
  j: { cmd: "move", by: 1 },
  ArrowDown: { cmd: "move", by: 1 },
  k: { cmd: "move", by: -1 },
  ArrowUp: { cmd: "move", by: -1 },
  "1": { cmd: "rate", rating: -1 },
  "-": { cmd: "rate", rating: -1 },
  "2": { cmd: "rate", rating: 0 },
  "0": { cmd: "rate", rating: 0 },
  "3": { cmd: "rate", rating: 1 },
  "+": { cmd: "rate", rating: 1 },
  "=": { cmd: "rate", rating: 1 },
  Backspace: { cmd: "rate", rating: null },
  t: { cmd: "tagsMenu" },
  m: { cmd: "merge" },
  s: { cmd: "split" },
  n: { cmd: "nextUnrated" },
  e: { cmd: "firstError" },
  o: { cmd: "expand" },
  f: { cmd: "cycleFinish" },
  c: { cmd: "note" },
};

const RUBRIC: Record<string, Command> = {
  j: { cmd: "move", by: 1 },
  ArrowDown: { cmd: "move", by: 1 },
  k: { cmd: "move", by: -1 },
  ArrowUp: { cmd: "move", by: -1 },
  ...Object.fromEntries([1, 2, 3, 4, 5].map((v) => [String(v), { cmd: "score", value: v } as Command])),
};

const PAIR: Record<string, Command> = {
  j: { cmd: "move", by: 1 },
  ArrowDown: { cmd: "move", by: 1 },
  k: { cmd: "move", by: -1 },
  ArrowUp: { cmd: "move", by: -1 },
  a: { cmd: "choose", choice: "left" },
  b: { cmd: "choose", choice: "right" },
  t: { cmd: "choose", choice: "tie" },
  x: { cmd: "choose", choice: "both_bad" },
  "[": { cmd: "toggleSide", side: 0 },
  "]": { cmd: "toggleSide", side: 1 },
};

/** The command of a key press, or null (let the browser have it). */
export function commandFor(task: TaskType, mode: Mode, e: KeyPress): Command | null {
  if (e.ctrlKey || e.metaKey || e.altKey) return null;
  if (mode === "dialog") return null; // dialogs handle their own keys
  if (mode === "tags") {
    if (e.key === "Escape" || e.key === "t") return { cmd: "close" };
    const n = Number(e.key);
    if (Number.isInteger(n) && n >= 1 && n <= TAGS.length) return { cmd: "tag", tag: TAGS[n - 1] };
    if (e.key === "j" || e.key === "ArrowDown") return { cmd: "move", by: 1 };
    if (e.key === "k" || e.key === "ArrowUp") return { cmd: "move", by: -1 };
    return null;
  }
  // Shift+S is skip; any other shifted letter falls through to its own meaning ("?", "+").
  if (e.key === "S" && e.shiftKey) return COMMON.S;
  if (e.key === "Enter" && e.shiftKey) return null;
  const table = task === "step_labels" ? STEP : task === "rubric" ? RUBRIC : PAIR;
  return table[e.key] ?? (e.key === "S" ? null : COMMON[e.key]) ?? null;
}

/** The shortcut sheet: [keys, what they do], per task type. */
export function shortcutSheet(task: TaskType): Array<[string, string]> {
  const common: Array<[string, string]> = [
    ["Enter", "Submit (asks first when something is missing)"],
    ["Shift + S", "Skip this task, with a reason"],
    ["g", "Show or hide the guidelines"],
    ["r", "Write the rationale"],
    ["?", "This sheet"],
    ["Esc", "Close a menu or dialog; leave a text box"],
  ];
  if (task === "step_labels")
    return [
      ["j / ↓, k / ↑", "Next, previous step"],
      ["1 or −", "Rate −1 (bad)"],
      ["2 or 0", "Rate 0 (okay)"],
      ["3 or +", "Rate +1 (good)"],
      ["Backspace", "Clear the rating"],
      ["t, then 1–6", "Tags of the step"],
      ["c", "Note on the step"],
      ["n", "Jump to the next unrated step"],
      ["e", "Jump to the first error"],
      ["o", "Expand or collapse a long step"],
      ["m", "Merge the step with the next"],
      ["s", "Split the step (←/→ choose where, Enter)"],
      ["f", "Cycle the finish reason"],
      ...common,
    ];
  if (task === "rubric")
    return [["j / ↓, k / ↑", "Next, previous scale"], ["1–5", "Score the scale"], ...common];
  return [
    ["j / ↓, k / ↑", "Reasoning or answer question"],
    ["a", "Left is better"],
    ["b", "Right is better"],
    ["t", "Tie"],
    ["x", "Both bad"],
    ["[ and ]", "Show or hide the left, right reasoning"],
    ...common,
  ];
}
