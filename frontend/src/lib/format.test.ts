import { describe, expect, it } from "vitest";
import { formatElapsed, formatMs, formatRetryAfter, thinkingLabel } from "./format";

describe("thinking timer", () => {
  it("formats elapsed time", () => {
    expect(formatElapsed(0)).toBe("0 s");
    expect(formatElapsed(999)).toBe("0 s");
    expect(formatElapsed(1000)).toBe("1 s");
    expect(formatElapsed(59_999)).toBe("59 s");
    expect(formatElapsed(60_000)).toBe("1 min");
    expect(formatElapsed(65_400)).toBe("1 min 5 s");
    expect(formatElapsed(3_600_000)).toBe("1 h");
    expect(formatElapsed(3_720_000)).toBe("1 h 2 min");
    expect(formatElapsed(-5)).toBe("0 s");
    expect(formatElapsed(Number.NaN)).toBe("0 s");
  });

  it("labels live and finished thinking", () => {
    expect(thinkingLabel(12_300, true)).toBe("Thinking for 12 s");
    expect(thinkingLabel(null, true)).toBe("Thinking for 0 s");
    expect(thinkingLabel(125_000, false)).toBe("Thought for 2 min 5 s");
    expect(thinkingLabel(400, false)).toBe("Thought for less than a second");
    expect(thinkingLabel(null, false)).toBe("Thought");
  });

  it("formats footer durations and retry hints", () => {
    expect(formatMs(85)).toBe("85 ms");
    expect(formatMs(1234)).toBe("1.23 s");
    expect(formatMs(12_340)).toBe("12.3 s");
    expect(formatMs(null)).toBe("–");
    expect(formatRetryAfter(42)).toBe("Try again in 42 s.");
    expect(formatRetryAfter(3600)).toBe("Try again in 1 h.");
    expect(formatRetryAfter(null)).toBe("");
  });
});
