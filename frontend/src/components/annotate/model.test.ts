import { describe, expect, it } from "vitest";
import { ApiError } from "../../lib/api";
import { describeError, draftFailure } from "./api";
import type { KeyPress } from "./keys";
import { commandFor, isTyping, shortcutSheet } from "./keys";
import type { StepState, Task, TraceView, UnitView } from "./model";
import {
  clock, cpToUtf16, draftOf, finishReason, firstError, initialPair, initialRubric, initialStepState, labelPayload,
  lockedFrom, mergeUnits, pairPayload, pairProblems, pairReducer, ratedCount, restoreDraft, rubricPayload,
  rubricProblems, rubricReducer, solutionBlocked, splitPoints, splitUnit, stepPayload, stepProblems, stepReducer, unitText, unrated,
  utf16ToCp,
} from "./model";

const REASONING = "First, 10 * 7 = 70.\n\nThen 2 * 7 = 14.\n\nWait, 70 + 14 = 84. Yes.";
const ANSWER = "The answer is $\\boxed{84}$.";

function unitsOf(text: string): UnitView[] {
  // One unit per paragraph, then the answer.
  const out: UnitView[] = [];
  let at = 0;
  for (const part of text.split("\n\n")) {
    const start = text.indexOf(part, at);
    out.push({ start, end: start + part.length, answer: false, step_id: `s${out.length}`, kind: "compute", title: "" });
    at = start + part.length;
  }
  out.push({ start: 0, end: 0, answer: true, step_id: "", kind: "answer", title: "" });
  return out;
}

const trace: TraceView = {
  reasoning: REASONING, content: ANSWER, finish_reason: "stop", steps: [], units: unitsOf(REASONING),
  usage: { completion_tokens: 40, reasoning_tokens: 30 }, thinking_ms: 1200, model: "R1",
  auto_correct: true, format_ok: true, extracted_answer: "84",
};

const fresh = () => initialStepState(trace.units);
const run = (s: StepState, ...actions: Parameters<typeof stepReducer>[1][]) => actions.reduce(stepReducer, s);

describe("step ratings", () => {
  it("rates and moves on to the next unit", () => {
    const s = run(fresh(), { type: "rate", rating: 1 });
    expect(s.marks[0].rating).toBe(1);
    expect(s.cursor).toBe(1);
    expect(ratedCount(s)).toEqual({ rated: 1, total: 4 });
  });

  it("stops at the first error: later units are locked and sent unrated", () => {
    let s = run(fresh(), { type: "rate", rating: 1 }, { type: "rate", rating: 1 }, { type: "rate", i: 3, rating: 1 });
    s = run(s, { type: "rate", i: 1, rating: -1 });
    expect(firstError(s)).toBe(1);
    expect(lockedFrom(s)).toBe(2);
    expect(s.cursor).toBe(1);
    expect(finishReason(s)).toBe("found_error");
    // Locked units refuse ratings and tags.
    expect(run(s, { type: "rate", i: 2, rating: 1 })).toBe(s);
    expect(run(s, { type: "toggleTag", i: 3, tag: "redundant" })).toBe(s);
    const p = stepPayload(s) as { steps: Array<{ rating: number | null }>; finish_reason: string };
    expect(p.steps.map((x) => x.rating)).toEqual([1, -1, null, null]);
    expect(p.finish_reason).toBe("found_error");
    expect(stepProblems(s)).toEqual({ blocking: [], warnings: [] });
  });

  it("turning stop off unlocks the rest and keeps earlier ratings", () => {
    let s = run(fresh(), { type: "rate", i: 3, rating: 1 }, { type: "rate", i: 0, rating: -1 });
    expect((stepPayload(s).steps as Array<{ rating: unknown }>)[3].rating).toBeNull();
    s = run(s, { type: "stop", on: false });
    expect(lockedFrom(s)).toBe(4);
    expect((stepPayload(s).steps as Array<{ rating: unknown }>)[3].rating).toBe(1);
    expect(unrated(s)).toEqual([1, 2]);
    expect(stepProblems(s).warnings[0]).toMatch(/2 steps are not rated/);
  });

  it("derives solution when all are rated, and blocks when nothing decides", () => {
    expect(finishReason(fresh())).toBeNull();
    expect(stepProblems(fresh()).blocking[0]).toMatch(/not rated yet/);
    const s = run(fresh(), ...[0, 1, 2, 3].map((i) => ({ type: "rate" as const, i, rating: 1 as const })));
    expect(finishReason(s)).toBe("solution");
    expect(stepProblems(s)).toEqual({ blocking: [], warnings: [] });
    // An explicit choice wins; a solution with gaps is refused before the server does.
    const chosen = run(s, { type: "finish", reason: "solution" });
    expect(chosen.finish).toBe("solution");
    const gap = run(chosen, { type: "rate", i: 2, rating: null });
    expect(stepProblems(gap).blocking[0]).toMatch(/every step: 1 not rated/);
    // With a gap, "solution" cannot be picked at all.
    expect(run(fresh(), { type: "finish", reason: "solution" }).finish).toBeNull();
    const giveUp = run(gap, { type: "finish", reason: "give_up" });
    expect(stepProblems(giveUp)).toEqual({ blocking: [], warnings: ["1 step is not rated and will be sent unrated."] });
  });

  it("cycles the finish reason and clears it back to derived", () => {
    const all = run(fresh(), ...[0, 1, 2, 3].map((i) => ({ type: "rate" as const, i, rating: 1 as const })));
    let s = run(all, { type: "cycleFinish" });
    expect(s.finish).toBe("found_error");
    s = run(s, { type: "cycleFinish" }, { type: "cycleFinish" });
    expect(s.finish).toBe("give_up");
    expect(run(s, { type: "cycleFinish" }).finish).toBe("solution");
    expect(run(s, { type: "finish", reason: null }).finish).toBeNull();
    // Nothing rated yet: the cycle passes "solution" by.
    expect(run(fresh(), { type: "cycleFinish" }).finish).toBe("found_error");
  });

  it("never lets a solution through after a −1 with stop on", () => {
    // Step 2 is wrong: steps 3 and the answer are locked and sent unrated.
    const s = run(fresh(), { type: "rate", i: 0, rating: 1 }, { type: "rate", i: 1, rating: -1 });
    expect(finishReason(s)).toBe("found_error");
    expect(solutionBlocked(s)).toMatch(/after the −1 at step 2 the rest is locked/);
    // Neither the radio nor the "f" key can pick it: f goes found_error -> bad_problem -> give_up -> found_error.
    expect(run(s, { type: "finish", reason: "solution" }).finish).toBeNull();
    const cycled = [1, 2, 3].map((k) => finishReason(run(s, ...Array.from({ length: k }, () => ({ type: "cycleFinish" as const })))));
    expect(cycled).toEqual(["bad_problem", "give_up", "found_error"]);
    // A solution chosen before the −1 falls back to the derived reason.
    const all = run(fresh(), ...[0, 1, 2, 3].map((i) => ({ type: "rate" as const, i, rating: 1 as const })));
    const before = run(all, { type: "finish", reason: "solution" }, { type: "rate", i: 1, rating: -1 });
    expect(before.finish).toBeNull();
    expect(finishReason(before)).toBe("found_error");
    expect(stepProblems(before).blocking).toEqual([]);
    // Restored from a draft as is, it is blocked with the reason rather than sent.
    const restored: StepState = { ...before, finish: "solution" };
    expect(stepProblems(restored).blocking[0]).toMatch(/rest is locked/);
    // Turning stop off unlocks the rest: a solution is allowed again once all are rated.
    const off = run(before, { type: "stop", on: false });
    expect(solutionBlocked(off)).toBeNull();
    expect(run(off, { type: "finish", reason: "solution" }).finish).toBe("solution");
    // ...and turning it back on drops that solution again.
    expect(run(off, { type: "finish", reason: "solution" }, { type: "stop", on: true }).finish).toBeNull();
  });

  it("toggles tags in a stable order and bounds notes", () => {
    let s = run(fresh(), { type: "toggleTag", tag: "logic_error" }, { type: "toggleTag", tag: "redundant" });
    expect(s.marks[0].tags).toEqual(["redundant", "logic_error"]);
    s = run(s, { type: "toggleTag", tag: "redundant" }, { type: "note", note: "x".repeat(2000) });
    expect(s.marks[0].tags).toEqual(["logic_error"]);
    expect(s.marks[0].note).toHaveLength(1000);
  });

  it("moves, jumps to the next unrated and to the first error", () => {
    let s = run(fresh(), { type: "move", by: 10 });
    expect(s.cursor).toBe(3);
    s = run(s, { type: "move", by: -10 }, { type: "rate", rating: 1 }, { type: "cursor", i: 3 });
    expect(run(s, { type: "nextUnrated" }).cursor).toBe(1); // wraps around
    s = run(s, { type: "cursor", i: 0 }, { type: "nextUnrated" });
    expect(s.cursor).toBe(1);
    s = run(s, { type: "stop", on: false }, { type: "rate", i: 2, rating: -1 }, { type: "cursor", i: 0 }, { type: "firstError" });
    expect(s.cursor).toBe(2);
  });
});

describe("merge and split", () => {
  it("merges a unit with the next, keeping an agreed rating and the tags", () => {
    let s = run(fresh(), { type: "stop", on: false }, { type: "rate", i: 0, rating: 1 }, { type: "rate", i: 1, rating: 1 },
      { type: "toggleTag", i: 1, tag: "redundant" });
    s = mergeUnits(s, 0);
    expect(s.units).toHaveLength(3);
    expect(s.units[0]).toMatchObject({ start: 0, end: trace.units[1].end });
    expect(s.marks[0]).toEqual({ rating: 1, tags: ["redundant"], note: "" });
    expect(s.edited).toBe(true);
    expect(unitText(trace, s.units[0])).toBe("First, 10 * 7 = 70.\n\nThen 2 * 7 = 14.");
    // Disagreeing halves give an unrated unit; the answer never merges.
    const d = mergeUnits(run(fresh(), { type: "stop", on: false }, { type: "rate", i: 1, rating: 1 }, { type: "rate", i: 2, rating: -1 }), 1);
    expect(d.marks[1].rating).toBeNull();
    expect(mergeUnits(s, 1)).toBe(s);
    expect(mergeUnits(s, 2)).toBe(s);
  });

  it("splits a unit at a point strictly inside it", () => {
    const s = fresh();
    const u = s.units[2];
    const points = splitPoints(REASONING, u);
    // Sentence ends only: "Wait, 70 + 14" stays whole.
    expect(points.map((p) => REASONING.slice(p, p + 4))).toEqual(["Yes."]);
    expect(splitPoints(REASONING, { start: 0, end: REASONING.length }).map((p) => REASONING.slice(p, p + 4))).toEqual([
      "Then", "Wait", "Yes.",
    ]);
    const t = splitUnit(s, 2, points[0]);
    expect(t.units).toHaveLength(5);
    expect(unitText(trace, t.units[2])).toBe("Wait, 70 + 14 = 84. ");
    expect(unitText(trace, t.units[3])).toBe("Yes.");
    expect(t.marks[2].rating).toBeNull();
    expect(t.edited).toBe(true);
    expect(splitUnit(s, 2, u.start)).toBe(s);
    expect(splitUnit(s, 2, u.end)).toBe(s);
    expect(splitUnit(s, 3, 1)).toBe(s); // the answer
    // The payload sends the edited units.
    const p = stepPayload(t) as { units: unknown[]; segmentation_edited: boolean; steps: unknown[] };
    expect(p.segmentation_edited).toBe(true);
    expect(p.units).toHaveLength(5);
    expect(p.steps).toHaveLength(5);
  });

  it("maps code points and UTF-16 indices around astral characters", () => {
    const text = "a😀b. c😀d";
    expect(cpToUtf16(text, 2)).toBe(3);
    expect(utf16ToCp(text, 3)).toBe(2);
    const u = { start: 0, end: Array.from(text).length, answer: false };
    const [p] = splitPoints(text, u);
    expect(Array.from(text).slice(p).join("")).toBe("c😀d");
    expect(unitText({ reasoning: text, content: "" }, { start: 4, end: 7, answer: false })).toBe(" c😀");
  });
});

describe("rubric and pairwise", () => {
  it("scores the current scale and moves on", () => {
    let s = rubricReducer(initialRubric(), { type: "score", value: 4 });
    expect(s.scores.correctness).toBe(4);
    expect(s.cursor).toBe(1);
    expect(rubricProblems(s).blocking[0]).toMatch(/soundness, efficiency, clarity/);
    s = [5, 3, 2].reduce((acc, v) => rubricReducer(acc, { type: "score", value: v }), s);
    expect(rubricReducer(s, { type: "score", value: 9 })).toBe(s);
    expect(rubricProblems(s).blocking).toEqual([]);
    expect(rubricPayload(rubricReducer(s, { type: "rationale", text: "ok" }))).toEqual({
      correctness: 4, soundness: 5, efficiency: 3, clarity: 2, rationale: "ok",
    });
  });

  it("answers the reasoning question, then the answer question", () => {
    let s = pairReducer(initialPair(), { type: "choose", choice: "left" });
    expect(s).toMatchObject({ reasoning: "left", cursor: 1 });
    expect(pairProblems(s).blocking).toEqual(["Choose which final answer is better."]);
    s = pairReducer(s, { type: "choose", choice: "both_bad" });
    s = pairReducer(s, { type: "toggleSide", side: 1 });
    expect(s.open).toEqual([false, true]);
    expect(pairPayload(s)).toEqual({ reasoning: "left", answer: "both_bad", rationale: "" });
  });
});

describe("drafts", () => {
  const task = (type: Task["task_type"], draft: Record<string, unknown> | null) =>
    ({ task_type: type, traces: [trace, trace], draft }) as Pick<Task, "task_type" | "traces" | "draft">;

  it("round-trips every task type", () => {
    let s = run(fresh(), { type: "rate", rating: 1 }, { type: "toggleTag", tag: "redundant" }, { type: "rationale", text: "why" });
    s = splitUnit(s, 2, splitPoints(REASONING, s.units[2])[0]);
    const step = { kind: "step_labels" as const, step: s };
    expect(restoreDraft(task("step_labels", draftOf(step)))).toEqual(step);
    const rubric = { kind: "rubric" as const, rubric: rubricReducer(initialRubric(), { type: "score", value: 3 }) };
    expect(restoreDraft(task("rubric", draftOf(rubric)))).toEqual(rubric);
    const pair = { kind: "pairwise" as const, pair: pairReducer(initialPair(), { type: "choose", choice: "tie" }) };
    expect(restoreDraft(task("pairwise", draftOf(pair)))).toEqual(pair);
    expect(labelPayload(pair)).toEqual({ reasoning: "tie", answer: null, rationale: "" });
  });

  it("ignores drafts that do not fit the task", () => {
    const blank = { kind: "step_labels", step: fresh() };
    expect(restoreDraft(task("step_labels", null))).toEqual(blank);
    expect(restoreDraft(task("step_labels", { v: 99 }))).toEqual(blank);
    expect(restoreDraft(task("step_labels", { v: 1, kind: "rubric" }))).toEqual(blank);
    expect(restoreDraft(task("step_labels", { v: 1, kind: "step_labels", marks: [{}] }))).toEqual(blank);
    // Hostile units: overlapping, past the text, answer in the middle.
    for (const units of [
      [{ start: 0, end: 5 }, { start: 3, end: 8 }, { start: 0, end: 0, answer: true }],
      [{ start: 0, end: 9999 }, { start: 0, end: 0, answer: true }],
      [{ start: 0, end: 0, answer: true }, { start: 0, end: 5 }],
    ]) {
      expect(restoreDraft(task("step_labels", { v: 1, kind: "step_labels", units, marks: units.map(() => ({})) }))).toEqual(blank);
    }
    // Bad values inside an otherwise fitting draft are dropped one by one.
    const d = restoreDraft(task("step_labels", {
      v: 1, kind: "step_labels", units: null, marks: [{ rating: 7, tags: ["redundant", "bogus"] }, {}, {}, {}],
      stop: false, finish: "nope", cursor: 99,
    }));
    expect(d.kind === "step_labels" && d.step.marks[0]).toEqual({ rating: null, tags: ["redundant"], note: "" });
    expect(d.kind === "step_labels" && [d.step.stop, d.step.finish, d.step.cursor]).toEqual([false, null, 3]);
  });
});

describe("keyboard map", () => {
  const k = (key: string, extra: Partial<KeyPress> = {}): KeyPress => ({ key, ...extra });

  it("maps step-label keys", () => {
    expect(commandFor("step_labels", "normal", k("j"))).toEqual({ cmd: "move", by: 1 });
    expect(commandFor("step_labels", "normal", k("ArrowUp"))).toEqual({ cmd: "move", by: -1 });
    expect(commandFor("step_labels", "normal", k("1"))).toEqual({ cmd: "rate", rating: -1 });
    expect(commandFor("step_labels", "normal", k("-"))).toEqual({ cmd: "rate", rating: -1 });
    expect(commandFor("step_labels", "normal", k("0"))).toEqual({ cmd: "rate", rating: 0 });
    expect(commandFor("step_labels", "normal", k("+", { shiftKey: true }))).toEqual({ cmd: "rate", rating: 1 });
    expect(commandFor("step_labels", "normal", k("m"))).toEqual({ cmd: "merge" });
    expect(commandFor("step_labels", "normal", k("s"))).toEqual({ cmd: "split" });
    expect(commandFor("step_labels", "normal", k("S", { shiftKey: true }))).toEqual({ cmd: "skip" });
    expect(commandFor("step_labels", "normal", k("Enter"))).toEqual({ cmd: "submit" });
    expect(commandFor("step_labels", "normal", k("?", { shiftKey: true }))).toEqual({ cmd: "help" });
    expect(commandFor("step_labels", "normal", k("t"))).toEqual({ cmd: "tagsMenu" });
  });

  it("turns digits into tags while the tags menu is open", () => {
    expect(commandFor("step_labels", "tags", k("1"))).toEqual({ cmd: "tag", tag: "redundant" });
    expect(commandFor("step_labels", "tags", k("6"))).toEqual({ cmd: "tag", tag: "misread_problem" });
    expect(commandFor("step_labels", "tags", k("7"))).toBeNull();
    expect(commandFor("step_labels", "tags", k("t"))).toEqual({ cmd: "close" });
    expect(commandFor("step_labels", "tags", k("Escape"))).toEqual({ cmd: "close" });
  });

  it("maps rubric and pairwise keys", () => {
    expect(commandFor("rubric", "normal", k("4"))).toEqual({ cmd: "score", value: 4 });
    expect(commandFor("rubric", "normal", k("6"))).toBeNull();
    expect(commandFor("pairwise", "normal", k("a"))).toEqual({ cmd: "choose", choice: "left" });
    expect(commandFor("pairwise", "normal", k("b"))).toEqual({ cmd: "choose", choice: "right" });
    expect(commandFor("pairwise", "normal", k("t"))).toEqual({ cmd: "choose", choice: "tie" });
    expect(commandFor("pairwise", "normal", k("x"))).toEqual({ cmd: "choose", choice: "both_bad" });
    expect(commandFor("pairwise", "normal", k("]"))).toEqual({ cmd: "toggleSide", side: 1 });
  });

  it("leaves modified keys, dialogs and typing alone", () => {
    expect(commandFor("step_labels", "normal", k("s", { ctrlKey: true }))).toBeNull();
    expect(commandFor("step_labels", "normal", k("j", { metaKey: true }))).toBeNull();
    expect(commandFor("step_labels", "dialog", k("j"))).toBeNull();
    expect(commandFor("step_labels", "normal", k("S"))).toBeNull(); // caps lock is not Shift
    expect(commandFor("step_labels", "normal", k("Enter", { shiftKey: true }))).toBeNull();
    const ta = document.createElement("textarea");
    const box = document.createElement("input");
    box.type = "checkbox";
    const text = document.createElement("input");
    expect([isTyping(ta), isTyping(text), isTyping(box), isTyping(document.body), isTyping(null)]).toEqual([
      true, true, false, false, false,
    ]);
  });

  it("lists every mapped key in the shortcut sheet", () => {
    const sheet = shortcutSheet("step_labels").map(([keys]) => keys).join(" ");
    for (const key of ["j", "1", "t", "m", "s", "n", "Enter", "Shift + S", "?"]) expect(sheet).toContain(key);
    expect(shortcutSheet("pairwise").map(([keys]) => keys)).toEqual(expect.arrayContaining(["a", "b", "t", "x"]));
  });
});

describe("format", () => {
  it("prints clocks", () => {
    expect(clock(0)).toBe("0:00");
    expect(clock(75.4)).toBe("1:15");
    expect(clock(3725)).toBe("1:02:05");
  });
});

describe("draft save failures", () => {
  const expired = () => new ApiError(409, "conflict", "Your lease on this task expired and others completed it.");

  it("a 409 says the lease expired and others completed it, never that the draft was kept", () => {
    const f = draftFailure(expired(), null);
    expect(f.lost).toBe(true);
    expect(f.toast?.title).toMatch(/lease expired/i);
    expect(f.toast?.message).toMatch(/others completed it/);
    expect(f.toast?.message).toMatch(/not be saved/);
    expect(`${f.toast?.title} ${f.toast?.message}`).not.toMatch(/kept/i);
    expect(describeError(expired(), "submit").message).not.toMatch(/kept/i);
  });

  it("shows the same failure once, a different one again", () => {
    const first = draftFailure(expired(), null);
    expect(draftFailure(expired(), first.key).toast).toBeNull();
    const net = draftFailure(new ApiError(0, "network", "offline"), first.key);
    expect(net.toast?.title).toBe("Could not save the draft");
    expect(net.lost).toBe(false);
    expect(draftFailure(new ApiError(0, "network", "offline"), net.key).toast).toBeNull();
  });
});
