import { describe, expect, it } from "vitest";
import { activeBranch, addMessage, buildTree } from "./tree";
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
