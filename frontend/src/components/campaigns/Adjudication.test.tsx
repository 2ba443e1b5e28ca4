import { render } from "preact";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { TraceView } from "./api";
import { TraceText } from "./Adjudication";

let root: HTMLDivElement;
beforeEach(() => {
  root = document.createElement("div");
  document.body.appendChild(root);
});
afterEach(() => {
  render(null, root);
  root.remove();
});

describe("TraceText", () => {
  it("slices units by code points, so astral characters before a unit do not shift it", () => {
    // "🙂" is one code point (Python's offsets) but two UTF-16 units.
    const reasoning = "Smile 🙂 first. Then 12 * 7 = 84.";
    const second = reasoning.indexOf("Then");
    const cp = Array.from(reasoning.slice(0, second)).length;
    expect(cp).toBe(second - 1);
    const trace: TraceView = {
      id: 1,
      model: "m",
      reasoning,
      content: "84",
      units: [
        { start: 0, end: cp, answer: false },
        { start: cp, end: Array.from(reasoning).length, answer: false },
        { start: 0, end: 0, answer: true },
      ],
      auto_correct: true,
      format_ok: true,
      extracted_answer: "84",
    };
    render(<TraceText trace={trace} active={null} title="Trace" />, root);
    const texts = [...root.querySelectorAll(".tu-text")].map((e) => e.textContent);
    expect(texts).toEqual(["Smile 🙂 first.", "Then 12 * 7 = 84.", "84"]);
  });
});
