import { describe, expect, it } from "vitest";
import { activeBranch, addMessage, branchMap, buildTree, hasBranches, selectPathTo, siblings, stepSibling } from "./tree";
import type { Message } from "./types";

const m = (id: string, parent: string | null, t: number, role: Message["role"] = "user"): Message => ({
  id, parent_id: parent, role, content: id, created_at: new Date(t * 1000).toISOString(), response: null,
});

describe("message tree", () => {
  it("follows the latest child from the root", () => {
    const tree = buildTree([
      m("u1", null, 1), m("a1", "u1", 2, "assistant"), m("a1b", "u1", 5, "assistant"),
      m("u2", "a1", 3), m("u3", "a1b", 6),
    ]);
    expect(activeBranch(tree).map((x) => x.id)).toEqual(["u1", "a1b", "u3"]);
  });

  it("adds a message to the end of the branch", () => {
    let tree = buildTree([m("u1", null, 1), m("a1", "u1", 2, "assistant")]);
    tree = addMessage(tree, m("u2", "a1", 3));
    expect(activeBranch(tree).map((x) => x.id)).toEqual(["u1", "a1", "u2"]);
  });
});

describe("branches", () => {
  // u1 -> a1 (old) / a2 (regenerated); a1 -> u2 ; a2 -> u3 (old) / u3b (edited) -> a3b
  const tree = buildTree([
    m("u1", null, 1), m("a1", "u1", 2, "assistant"), m("u2", "a1", 3),
    m("a2", "u1", 4, "assistant"), m("u3", "a2", 5), m("u3b", "a2", 6), m("a3b", "u3b", 7, "assistant"),
  ]);

  it("lists siblings oldest first", () => {
    expect(siblings(tree, "a2").map((x) => x.id)).toEqual(["a1", "a2"]);
    expect(siblings(tree, "u1").map((x) => x.id)).toEqual(["u1"]);
  });

  it("shows the latest branch by default and follows a selection", () => {
    expect(activeBranch(tree).map((x) => x.id)).toEqual(["u1", "a2", "u3b", "a3b"]);
    const sel = stepSibling(tree, new Map(), "a2", -1);
    expect(activeBranch(tree, sel).map((x) => x.id)).toEqual(["u1", "a1", "u2"]);
    // at the ends nothing changes
    expect(activeBranch(tree, stepSibling(tree, sel, "a1", -1)).map((x) => x.id)).toEqual(["u1", "a1", "u2"]);
    const back = stepSibling(tree, sel, "a1", 1);
    expect(activeBranch(tree, back).map((x) => x.id)).toEqual(["u1", "a2", "u3b", "a3b"]);
  });

  it("keeps choices deeper in the tree when switching above", () => {
    let sel = stepSibling(tree, new Map(), "u3b", -1); // u3 under a2
    sel = stepSibling(tree, sel, "a2", -1); // switch to a1
    sel = stepSibling(tree, sel, "a1", 1); // and back to a2: still u3
    expect(activeBranch(tree, sel).map((x) => x.id)).toEqual(["u1", "a2", "u3"]);
  });

  it("selects the path to any message", () => {
    const sel = selectPathTo(tree, new Map(), "u2");
    expect(activeBranch(tree, sel).map((x) => x.id)).toEqual(["u1", "a1", "u2"]);
    expect(activeBranch(tree, selectPathTo(tree, sel, "u3")).map((x) => x.id)).toEqual(["u1", "a2", "u3"]);
  });

  it("draws a compact branch map that indents only at forks", () => {
    const rows = branchMap(tree);
    expect(rows.map((r) => [r.id, r.level, r.active, `${r.n}/${r.of}`])).toEqual([
      ["u1", 0, true, "1/1"],
      ["a1", 1, false, "1/2"],
      ["u2", 1, false, "1/1"],
      ["a2", 1, true, "2/2"],
      ["u3", 2, false, "1/2"],
      ["u3b", 2, true, "2/2"],
      ["a3b", 2, true, "1/1"],
    ]);
    expect(hasBranches(tree)).toBe(true);
    expect(hasBranches(buildTree([m("u1", null, 1)]))).toBe(false);
  });
});
