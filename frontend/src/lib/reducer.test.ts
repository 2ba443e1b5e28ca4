import { describe, expect, it } from "vitest";
import { Sequencer, emptyResponse, fromSnapshot, isTerminal, reduce, reduceAll } from "./reducer";
import type { ResponseState } from "./reducer";
import type { ResponseEvent, ResponseSnapshot, Step } from "./types";

const R = "r1";
const step = (id: string, index: number, extra: Partial<Step> = {}): Step => ({
  id, parent_id: null, index, kind: "compute", start: 0, end: null, title: id, status: "open", ...extra,
});

function script(): ResponseEvent[] {
  const evs: Omit<ResponseEvent, "seq" | "response_id">[] = [
    { type: "response.started", model: "deepseek-r1", started_at: "2026-01-01T00:00:00Z" },
    { type: "step.added", step: step("s1", 0) },
    { type: "reasoning.delta", text: "Let me think. " },
    { type: "reasoning.delta", text: "2+2 is 4." },
    { type: "step.updated", step: step("s1", 0, { end: 23, status: "closed" }) },
    { type: "step.added", step: step("s2", 1, { start: 23 }) },
    { type: "reasoning.delta", text: " Verify: yes." },
    { type: "content.delta", text: "The answer is " },
    { type: "content.delta", text: "$4$." },
    {
      type: "response.completed", finish_reason: "stop",
      usage: { prompt_tokens: 10, completion_tokens: 30, reasoning_tokens: 20 },
      timings: { queued_ms: 5, ttft_ms: 50, thinking_ms: 900, total_ms: 1000 },
    },
  ] as never;
  return evs.map((e, i) => ({ ...e, response_id: R, seq: i + 1 }) as ResponseEvent);
}

/** The parts of the state that the protocol determines (no client clocks). */
const proj = (s: ResponseState) => ({
  status: s.status, reasoning: s.reasoning, content: s.content, steps: s.steps, lastSeq: s.lastSeq,
  usage: s.usage, timings: s.timings, finishReason: s.finishReason, error: s.error,
});

describe("reduce", () => {
  it("replays a full response", () => {
    const s = reduceAll(emptyResponse(R), script());
    expect(s.status).toBe("completed");
    expect(s.reasoning).toBe("Let me think. 2+2 is 4. Verify: yes.");
    expect(s.content).toBe("The answer is $4$.");
    expect(s.steps.map((x) => [x.id, x.status])).toEqual([["s1", "closed"], ["s2", "open"]]);
    expect(s.steps[0].end).toBe(23);
    expect(s.lastSeq).toBe(10);
    expect(s.usage?.reasoning_tokens).toBe(20);
    expect(s.timings?.thinking_ms).toBe(900);
    expect(s.model).toBe("deepseek-r1");
    expect(isTerminal(s)).toBe(true);
  });

  it("ignores duplicates (seq <= last applied)", () => {
    const evs = script();
    let s = reduceAll(emptyResponse(R), evs.slice(0, 4));
    const before = s;
    s = reduce(s, evs[2]);
    s = reduce(s, evs[3]);
    expect(s).toBe(before);
    expect(s.reasoning).toBe("Let me think. 2+2 is 4.");
  });

  it("never applies out of order", () => {
    const evs = script();
    const s1 = reduceAll(emptyResponse(R), evs.slice(0, 2));
    const s2 = reduce(s1, evs[3]); // seq 4 while 3 is missing
    expect(s2).toBe(s1);
  });

  it("ignores events of other responses", () => {
    const s = emptyResponse(R);
    expect(reduce(s, { type: "reasoning.delta", text: "x", seq: 1, response_id: "other" })).toBe(s);
  });

  it("has exactly one terminal: later events change nothing but the seq", () => {
    const evs = script();
    const done = reduceAll(emptyResponse(R), evs);
    const after = reduceAll(done, [
      { type: "content.delta", text: "more", response_id: R, seq: 11 },
      { type: "response.failed", error: { code: "internal", message: "x" }, response_id: R, seq: 12 },
    ]);
    expect(after.status).toBe("completed");
    expect(after.content).toBe(done.content);
    expect(after.error).toBeNull();
  });

  it("keeps partial text on failure and cancel", () => {
    const evs = script().slice(0, 7);
    const failed = reduce(reduceAll(emptyResponse(R), evs), {
      type: "response.failed", error: { code: "engine_error", message: "boom" }, response_id: R, seq: 8,
    });
    expect(failed.status).toBe("failed");
    expect(failed.error?.message).toBe("boom");
    expect(failed.reasoning).toContain("Verify");
    const cancelled = reduce(reduceAll(emptyResponse(R), evs), { type: "response.cancelled", response_id: R, seq: 8 });
    expect(cancelled.status).toBe("cancelled");
    expect(cancelled.reasoning).toContain("Verify");
  });

  it("records when thinking ended (first answer text, client clock)", () => {
    const evs = script();
    const s = reduceAll(emptyResponse(R), evs.slice(0, 8), 12345);
    expect(s.thinkingEndedAt).toBe(12345);
    const s2 = reduce(s, evs[8], 99999);
    expect(s2.thinkingEndedAt).toBe(12345);
  });

  it("resuming from a snapshot plus later events equals a full replay", () => {
    const evs = script();
    const full = reduceAll(emptyResponse(R), evs);
    for (let cut = 0; cut <= evs.length; cut++) {
      const at = reduceAll(emptyResponse(R), evs.slice(0, cut));
      const snap: ResponseSnapshot = {
        id: R, status: at.status, model: at.model, reasoning: at.reasoning, content: at.content,
        finish_reason: at.finishReason, usage: at.usage, timings: at.timings, error: at.error,
        last_seq: at.lastSeq, steps: at.steps,
      };
      // The socket may resend some already-covered events: they must be ignored.
      const resumed = reduceAll(fromSnapshot(snap), evs.slice(Math.max(0, cut - 2)));
      expect(proj(resumed)).toEqual(proj(full));
    }
  });
});

describe("Sequencer", () => {
  it("buffers early events and drains them in order", () => {
    const evs = script();
    const q = new Sequencer();
    let s = emptyResponse(R);
    const order = [0, 2, 3, 1, 4, 4, 6, 5, 7, 9, 8];
    for (const i of order) s = q.push(s, evs[i]);
    expect(proj(s)).toEqual(proj(reduceAll(emptyResponse(R), evs)));
    expect(q.hasGap).toBe(false);
  });

  it("reports a gap until the missing event arrives", () => {
    const evs = script();
    const q = new Sequencer();
    let s = q.push(emptyResponse(R), evs[0]);
    s = q.push(s, evs[2]);
    expect(s.lastSeq).toBe(1);
    expect(q.hasGap).toBe(true);
    s = q.push(s, evs[1]);
    expect(s.lastSeq).toBe(3);
    expect(q.hasGap).toBe(false);
  });
});
