import { describe, expect, it } from "vitest";
import {
  buildOutline, defaultExpandedFor, leafAt, minimapBlocks, navKey, offsetMapper, reveal, searchTrace, traceStats,
  visibleRows,
} from "./steps";
import type { NavState, RowOptions } from "./steps";
import type { Step } from "./types";

let idx = 0;
const st = (id: string, parent: string | null, kind: string, start: number, end: number | null, status = "closed"): Step => ({
  id, parent_id: parent, index: idx++, kind, start, end, title: `${kind} ${id}`, status,
});

// "aaaa|bbbb|cccc|dddd|eeee" (5 chars each with the bar) — e0 holds s0,s5; e10 holds s10, and a nested e15 (s15, s20).
const TEXT = "aaaa|bbbb|cccc|dddd|eeee";
function steps(): Step[] {
  idx = 0;
  return [
    st("e0", null, "setup", 0, 10),
    st("s0", "e0", "setup", 0, 5),
    st("s5", "e0", "compute", 5, 10),
    st("e10", null, "reflect", 10, null, "open"),
    st("s10", "e10", "backtrack", 10, 15, "abandoned"),
    st("e15", "e10", "verify", 15, null, "open"),
    st("s15", "e15", "verify", 15, 20, "verified"),
    st("s20", "e15", "result", 20, null, "open"),
  ];
}
const opts = (o: ReturnType<typeof buildOutline>, extra: Partial<RowOptions> = {}): RowOptions => ({
  toggled: new Map(), kinds: new Set(), search: null, defaultExpanded: defaultExpandedFor(o), ...extra,
});

describe("outline", () => {
  it("builds the tree, leaves in text order, depths and spans", () => {
    const o = buildOutline(steps(), TEXT);
    expect(o.roots).toEqual(["e0", "e10"]);
    expect(o.leaves).toEqual(["s0", "s5", "s10", "s15", "s20"]);
    expect(o.nodes.get("e15")!.depth).toBe(1);
    expect(o.nodes.get("s20")!.depth).toBe(2);
    // an open step runs to the end of the text
    expect(o.nodes.get("s20")!.to).toBe(TEXT.length);
  });

  it("finds the leaf at an offset", () => {
    const o = buildOutline(steps(), TEXT);
    expect(leafAt(o, 0)).toBe("s0");
    expect(leafAt(o, 7)).toBe("s5");
    expect(leafAt(o, 23)).toBe("s20");
  });

  it("counts steps, backtracks and verifications", () => {
    const s = traceStats(buildOutline(steps(), TEXT));
    expect(s).toMatchObject({ steps: 5, episodes: 3, backtracks: 1, verifications: 1, abandoned: 1, verified: 1 });
  });

  it("lists visible rows and honours collapse", () => {
    const o = buildOutline(steps(), TEXT);
    expect(visibleRows(o, opts(o)).map((r) => r.id)).toEqual(["e0", "s0", "s5", "e10", "s10", "e15", "s15", "s20"]);
    const folded = visibleRows(o, opts(o, { toggled: new Map([["e10", false]]) })).map((r) => r.id);
    expect(folded).toEqual(["e0", "s0", "s5", "e10"]);
  });

  it("filters by kind, keeping ancestors as context", () => {
    const o = buildOutline(steps(), TEXT);
    const rows = visibleRows(o, opts(o, { kinds: new Set(["backtrack", "verify"]) }));
    expect(rows.map((r) => r.id)).toEqual(["e10", "s10", "e15", "s15"]);
    expect(rows.find((r) => r.id === "e10")!.match).toBe(false);
    expect(rows.find((r) => r.id === "e15")!.match).toBe(true);
  });

  it("searches the text and maps hits to steps", () => {
    const o = buildOutline(steps(), TEXT);
    const res = searchTrace(o, TEXT, "DD|e");
    expect(res.ranges).toEqual([[17, 21]]);
    expect(res.leafIds).toEqual(["s15"]);
    expect([...res.stepIds].sort()).toEqual(["e10", "e15", "s15"]);
    const rows = visibleRows(o, opts(o, { search: res.stepIds }));
    expect(rows.map((r) => r.id)).toEqual(["e10", "e15", "s15"]);
    expect(searchTrace(o, TEXT, " ").ranges).toEqual([]);
  });

  it("folds big traces to episodes and abandoned branches by default", () => {
    idx = 0;
    const many: Step[] = [];
    let text = "";
    for (let e = 0; e < 40; e++) {
      const start = text.length;
      many.push(st(`e${start}`, null, "compute", start, start + 40, e === 3 ? "abandoned" : "closed"));
      for (let k = 0; k < 4; k++) {
        many.push(st(`s${start + k * 10}`, `e${start}`, "compute", start + k * 10, start + k * 10 + 10));
      }
      text += "x".repeat(40);
    }
    const o = buildOutline(many, text);
    const rows = visibleRows(o, opts(o));
    expect(rows.length).toBe(40);
    const small = buildOutline(steps(), TEXT);
    expect(defaultExpandedFor(small)(small.nodes.get("e0")!)).toBe(true);
    const ab = buildOutline(many.slice(0, 20), text.slice(0, 160));
    expect(defaultExpandedFor(ab)(ab.nodes.get("e120")!)).toBe(false);
  });

  it("minimap blocks are fractions of the text", () => {
    const m = minimapBlocks(buildOutline(steps(), TEXT));
    expect(m.leaves[0]).toMatchObject({ id: "s0", x: 0 });
    expect(m.leaves[0].w).toBeCloseTo(5 / 24);
    expect(m.episodes.map((b) => b.id)).toEqual(["e0", "e10"]);
  });
});

describe("offsets", () => {
  it("is the identity without astral characters", () => {
    const f = offsetMapper("plain text");
    expect(f(3)).toBe(3);
    expect(f(99)).toBe(10);
  });

  it("maps code points to UTF-16 indices around surrogate pairs", () => {
    const text = "a😀b𝑥c"; // code points: a, 😀, b, 𝑥, c
    const f = offsetMapper(text);
    expect([0, 1, 2, 3, 4, 5].map(f)).toEqual([0, 1, 3, 4, 6, 7]);
    // steps in code points land on the right characters
    idx = 0;
    const o = buildOutline([st("s0", null, "setup", 0, 2), st("s2", null, "compute", 2, 5)], text);
    const n = o.nodes.get("s2")!;
    expect(text.slice(n.from, n.to)).toBe("b𝑥c");
  });
});

describe("keyboard navigation", () => {
  const o = buildOutline(steps(), TEXT);
  const rowsOf = (s: NavState) => visibleRows(o, opts(o, { toggled: s.toggled }));
  const press = (s: NavState, ...keys: string[]) => keys.reduce((acc, k) => navKey(o, rowsOf(acc), acc, k), s);
  const start: NavState = { focus: null, toggled: new Map(), open: new Set() };

  it("moves up and down, Home and End", () => {
    expect(press(start, "ArrowDown").focus).toBe("e0");
    expect(press(start, "ArrowDown", "ArrowDown", "ArrowDown").focus).toBe("s5");
    expect(press(start, "End").focus).toBe("s20");
    expect(press(start, "End", "ArrowDown").focus).toBe("s20");
    expect(press(start, "End", "Home", "ArrowUp").focus).toBe("e0");
  });

  it("Left collapses an episode, then goes to the parent; Right expands and enters", () => {
    let s = press(start, "ArrowDown"); // e0
    s = press(s, "ArrowLeft");
    expect(s.toggled.get("e0")).toBe(false);
    expect(rowsOf(s).map((r) => r.id)).toEqual(["e0", "e10", "s10", "e15", "s15", "s20"]);
    s = press(s, "ArrowRight");
    expect(s.toggled.get("e0")).toBe(true);
    s = press(s, "ArrowRight");
    expect(s.focus).toBe("s0");
    s = press(s, "ArrowLeft");
    expect(s.focus).toBe("e0");
  });

  it("Enter opens a step's text; Left closes it", () => {
    let s = press(start, "ArrowDown", "ArrowDown"); // s0
    s = press(s, "Enter");
    expect(s.open.has("s0")).toBe(true);
    s = press(s, "ArrowLeft");
    expect(s.open.has("s0")).toBe(false);
    expect(s.focus).toBe("s0");
  });

  it("reveal unfolds every ancestor", () => {
    const t = reveal(o, new Map([["e10", false], ["e15", false]]), "s20");
    expect(t.get("e10")).toBe(true);
    expect(t.get("e15")).toBe(true);
  });
});
