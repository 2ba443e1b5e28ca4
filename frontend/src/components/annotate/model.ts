// The workbench's pure logic: task shapes, the step-label state and its reducer
// (ratings, tags, stop at the first error, merge and split of units), the rubric and
// pairwise states, and the payloads sent to /api/annotate (labels and drafts).
// No DOM here, so all of it is unit-tested (model.test.ts).
import type { Step } from "../../lib/types";

// ---- the API's shapes (webapp/annotation/api.py) -------------------------------------

export type TaskType = "step_labels" | "rubric" | "pairwise";

export interface UnitView {
  /** Code-point offsets into the reasoning (Python's), not UTF-16 indices. */
  start: number;
  end: number;
  answer: boolean;
  step_id: string;
  kind: string;
  title: string;
}

export interface TraceView {
  reasoning: string;
  content: string;
  finish_reason: string | null;
  steps: Step[];
  units: UnitView[];
  usage: { completion_tokens: number | null; reasoning_tokens: number | null };
  thinking_ms: number | null;
  model: string | null;
  auto_correct: boolean | null;
  format_ok: boolean | null;
  extracted_answer: string | null;
}

export interface Task {
  id: string;
  status: string;
  task_type: TaskType;
  campaign: { id: string; name: string };
  guideline: { version: number; text: string };
  prompt: string;
  reference_answer: string;
  traces: TraceView[];
  draft: Record<string, unknown> | null;
  time_spent_ms: number;
  leased_until: string;
  lease_seconds_left: number;
  progress: { done: number; skipped: number };
}

export interface CampaignCard {
  id: string;
  name: string;
  description: string;
  task_types: TaskType[];
  done: number;
  available: number;
}

// ---- labels (webapp/annotation/schemas.py) -------------------------------------------

export type Rating = -1 | 0 | 1;
export const TAGS = [
  "redundant", "hallucinated_fact", "good_self_correction", "arithmetic_error", "logic_error", "misread_problem",
] as const;
export type Tag = (typeof TAGS)[number];
export const TAG_LABEL: Record<Tag, string> = {
  redundant: "Redundant",
  hallucinated_fact: "Hallucinated fact",
  good_self_correction: "Good self-correction",
  arithmetic_error: "Arithmetic error",
  logic_error: "Logic error",
  misread_problem: "Misread problem",
};
export const FINISH_REASONS = ["solution", "found_error", "bad_problem", "give_up"] as const;
export type FinishReason = (typeof FINISH_REASONS)[number];
export const FINISH_LABEL: Record<FinishReason, string> = {
  solution: "Solution: every step rated",
  found_error: "Found an error",
  bad_problem: "Bad problem statement",
  give_up: "Give up",
};
export const RATING_LABEL: Record<string, string> = { "-1": "Bad", "0": "Okay", "1": "Good" };

// ---- text offsets ----------------------------------------------------------------------

const hasSurrogates = (t: string) => /[\uD800-\uDFFF]/.test(t);

/** UTF-16 index of a code-point offset (identity for text without astral characters). */
export function cpToUtf16(text: string, cp: number): number {
  if (!hasSurrogates(text)) return Math.max(0, Math.min(cp, text.length));
  let i = 0;
  for (let n = 0; n < cp && i < text.length; n++) i += text.codePointAt(i)! > 0xffff ? 2 : 1;
  return i;
}

/** Code-point offset of a UTF-16 index. */
export function utf16ToCp(text: string, i: number): number {
  if (!hasSurrogates(text)) return Math.max(0, Math.min(i, text.length));
  return Array.from(text.slice(0, i)).length;
}

/** The text of a unit: its slice of the reasoning, or the answer. */
export function unitText(trace: Pick<TraceView, "reasoning" | "content">, u: Pick<UnitView, "start" | "end" | "answer">): string {
  if (u.answer) return trace.content;
  return trace.reasoning.slice(cpToUtf16(trace.reasoning, u.start), cpToUtf16(trace.reasoning, u.end));
}

/**
 * Places where a unit may be split, as code-point offsets strictly inside it: after
 * each sentence end (". ", "? ", "! ", ":\n") and at line breaks, skipping the
 * whitespace so the second part starts on a word.
 */
export function splitPoints(reasoning: string, u: Pick<UnitView, "start" | "end">): number[] {
  const from = cpToUtf16(reasoning, u.start);
  const to = cpToUtf16(reasoning, u.end);
  const text = reasoning.slice(from, to);
  const out: number[] = [];
  const re = /(?:[.!?:](?=\s)|\n)\s*/g;
  let m: RegExpExecArray | null;
  while ((m = re.exec(text))) {
    const at = m.index + m[0].length;
    if (at > 0 && at < text.length && text.slice(at).trim()) {
      const cp = utf16ToCp(reasoning, from + at);
      if (cp > u.start && cp < u.end && out[out.length - 1] !== cp) out.push(cp);
    }
    if (m[0].length === 0) re.lastIndex++;
  }
  return out;
}

// ---- step labels ------------------------------------------------------------------------

export interface LUnit {
  start: number;
  end: number;
  answer: boolean;
  kind: string;
  title: string;
}

export interface StepMark {
  rating: Rating | null;
  tags: Tag[];
  note: string;
}

export interface StepState {
  units: LUnit[];
  marks: StepMark[];
  edited: boolean;
  stop: boolean;
  /** Chosen by the annotator; null: derived from the ratings (see finishReason). */
  finish: FinishReason | null;
  rationale: string;
  cursor: number;
}

const EMPTY: StepMark = { rating: null, tags: [], note: "" };

export function initialStepState(units: UnitView[]): StepState {
  return {
    units: units.map(({ start, end, answer, kind, title }) => ({ start, end, answer, kind, title })),
    marks: units.map(() => EMPTY),
    edited: false,
    stop: true,
    finish: null,
    rationale: "",
    cursor: 0,
  };
}

/** Index of the first unit rated -1, or -1. */
export function firstError(s: Pick<StepState, "marks">): number {
  return s.marks.findIndex((m) => m.rating === -1);
}

/** Units from this index on are greyed out and sent unrated (stop at the first error). */
export function lockedFrom(s: Pick<StepState, "marks" | "stop" | "units">): number {
  const fe = firstError(s);
  return s.stop && fe >= 0 ? fe + 1 : s.units.length;
}

export function isLocked(s: StepState, i: number): boolean {
  return i >= lockedFrom(s);
}

/** Units that still need a rating (the locked ones do not). */
export function unrated(s: StepState): number[] {
  const end = lockedFrom(s);
  const out: number[] = [];
  for (let i = 0; i < end; i++) if (s.marks[i].rating === null) out.push(i);
  return out;
}

export function ratedCount(s: StepState): { rated: number; total: number } {
  const end = lockedFrom(s);
  let rated = 0;
  for (let i = 0; i < end; i++) if (s.marks[i].rating !== null) rated++;
  return { rated, total: end };
}

/**
 * Why "solution" cannot be chosen now, or null when it can. The server wants every step
 * of a solution rated, and the steps after a −1 with "stop at the first error" on are
 * sent unrated.
 */
export function solutionBlocked(s: StepState): string | null {
  const locked = s.units.length - lockedFrom(s);
  if (locked > 0)
    return `A solution rates every step: after the −1 at step ${firstError(s) + 1} the rest is locked. Choose “${FINISH_LABEL.found_error}”, or turn off “Stop at the first error” and rate the rest.`;
  const todo = unrated(s).length;
  if (todo) return `A solution rates every step: ${todo} not rated.`;
  return null;
}

/** The finish reason to send: the annotator's choice, else what the ratings say. */
export function finishReason(s: StepState): FinishReason | null {
  if (s.finish) return s.finish;
  if (firstError(s) >= 0) return "found_error";
  if (unrated(s).length === 0) return "solution";
  return null;
}

export type StepAction =
  | { type: "rate"; i?: number; rating: Rating | null }
  | { type: "toggleTag"; i?: number; tag: Tag }
  | { type: "note"; i?: number; note: string }
  | { type: "cursor"; i: number }
  | { type: "move"; by: number }
  | { type: "nextUnrated" }
  | { type: "firstError" }
  | { type: "merge"; i?: number }
  | { type: "split"; i?: number; at: number }
  | { type: "stop"; on: boolean }
  | { type: "finish"; reason: FinishReason | null }
  | { type: "cycleFinish" }
  | { type: "rationale"; text: string };

const clamp = (i: number, n: number) => Math.max(0, Math.min(n - 1, i));

function setMark(s: StepState, i: number, m: Partial<StepMark>): StepState {
  const marks = s.marks.slice();
  marks[i] = { ...marks[i], ...m };
  return { ...s, marks };
}

/** Merge unit i with the next one (reasoning units only; the answer stays alone). */
export function mergeUnits(s: StepState, i: number): StepState {
  const a = s.units[i];
  const b = s.units[i + 1];
  if (!a || !b || a.answer || b.answer) return s;
  const units = s.units.slice();
  units.splice(i, 2, { start: a.start, end: b.end, answer: false, kind: a.kind, title: a.title || b.title });
  const ma = s.marks[i];
  const mb = s.marks[i + 1];
  const merged: StepMark = {
    // The merged text is a new step: keep a rating only if both halves agreed.
    rating: ma.rating === mb.rating ? ma.rating : null,
    tags: [...new Set([...ma.tags, ...mb.tags])],
    note: [ma.note, mb.note].filter(Boolean).join("\n"),
  };
  const marks = s.marks.slice();
  marks.splice(i, 2, merged);
  return { ...s, units, marks, edited: true, cursor: i };
}

/** Split unit i at a code-point offset strictly inside it; both parts start unrated. */
export function splitUnit(s: StepState, i: number, at: number): StepState {
  const u = s.units[i];
  if (!u || u.answer || at <= u.start || at >= u.end) return s;
  const units = s.units.slice();
  units.splice(i, 1, { ...u, end: at }, { ...u, start: at, title: "" });
  const marks = s.marks.slice();
  marks.splice(i, 1, { ...EMPTY, note: s.marks[i].note }, EMPTY);
  return { ...s, units, marks, edited: true, cursor: i };
}

export function stepReducer(s: StepState, a: StepAction): StepState {
  const n = s.units.length;
  const at = (i?: number) => clamp(i ?? s.cursor, n);
  switch (a.type) {
    case "rate": {
      const i = at(a.i);
      if (isLocked(s, i)) return s;
      const rating = a.rating;
      let next = setMark(s, i, { rating });
      // A −1 that locks the rest rules out a solution: fall back to the derived reason.
      if (next.finish === "solution" && lockedFrom(next) < n) next = { ...next, finish: null };
      // Rating moves on to the next unit still to rate, as in PRM800K's flow; after a
      // -1 with "stop" on, the rest is locked and the cursor stays on the error.
      const locked = lockedFrom(next);
      if (rating !== null && i + 1 < locked) next = { ...next, cursor: i + 1 };
      else next = { ...next, cursor: i };
      return next;
    }
    case "toggleTag": {
      const i = at(a.i);
      if (isLocked(s, i)) return s;
      const tags = s.marks[i].tags.includes(a.tag)
        ? s.marks[i].tags.filter((t) => t !== a.tag)
        : TAGS.filter((t) => t === a.tag || s.marks[i].tags.includes(t));
      return setMark(s, i, { tags });
    }
    case "note":
      return setMark(s, at(a.i), { note: a.note.slice(0, 1000) });
    case "cursor":
      return { ...s, cursor: at(a.i) };
    case "move":
      return { ...s, cursor: clamp(s.cursor + a.by, n) };
    case "nextUnrated": {
      const todo = unrated(s);
      if (todo.length === 0) return s;
      const after = todo.find((i) => i > s.cursor);
      return { ...s, cursor: after ?? todo[0] };
    }
    case "firstError": {
      const fe = firstError(s);
      return fe < 0 ? s : { ...s, cursor: fe };
    }
    case "merge":
      return mergeUnits(s, at(a.i));
    case "split":
      return splitUnit(s, at(a.i), a.at);
    case "stop": {
      const next = { ...s, stop: a.on };
      return next.finish === "solution" && lockedFrom(next) < n ? { ...next, finish: null } : next;
    }
    case "finish":
      return a.reason === "solution" && solutionBlocked(s) ? s : { ...s, finish: a.reason };
    case "cycleFinish": {
      // Skips "solution" while it cannot be sent (see solutionBlocked).
      const open = FINISH_REASONS.filter((r) => r !== "solution" || !solutionBlocked(s));
      const cur = finishReason(s);
      const idx = cur ? FINISH_REASONS.indexOf(cur) : -1;
      const after = [...FINISH_REASONS.slice(idx + 1), ...FINISH_REASONS.slice(0, idx + 1)];
      return { ...s, finish: after.find((r) => open.includes(r)) ?? s.finish };
    }
    case "rationale":
      return { ...s, rationale: a.text.slice(0, 5000) };
  }
}

/** What keeps the label from being submitted, and what only deserves a confirmation. */
export function stepProblems(s: StepState): { blocking: string[]; warnings: string[] } {
  const blocking: string[] = [];
  const warnings: string[] = [];
  const reason = finishReason(s);
  const todo = unrated(s);
  if (!reason) blocking.push(`${todo.length} of ${lockedFrom(s)} steps are not rated yet; rate them or choose a finish reason.`);
  else if (reason === "solution" && solutionBlocked(s)) blocking.push(solutionBlocked(s)!);
  else if (reason === "found_error" && firstError(s) < 0) blocking.push("“Found an error” needs a step rated −1.");
  else if ((reason === "solution" || reason === "found_error") && s.marks[0]?.rating === null && !isLocked(s, 0))
    blocking.push("Rate at least the first step.");
  if (!blocking.length && todo.length) warnings.push(`${todo.length} step${todo.length === 1 ? " is" : "s are"} not rated and will be sent unrated.`);
  return { blocking, warnings };
}

export function stepPayload(s: StepState): Record<string, unknown> {
  const locked = lockedFrom(s);
  return {
    units: s.units.map(({ start, end, answer }) => ({ start, end, answer })),
    segmentation_edited: s.edited,
    steps: s.marks.map((m, i) => (i >= locked ? { rating: null, tags: [], note: "" } : { rating: m.rating, tags: m.tags, note: m.note })),
    finish_reason: finishReason(s),
    rationale: s.rationale,
  };
}

// ---- rubric -------------------------------------------------------------------------------

export const RUBRIC_DIMS = ["correctness", "soundness", "efficiency", "clarity"] as const;
export type RubricDim = (typeof RUBRIC_DIMS)[number];
export const RUBRIC_HELP: Record<RubricDim, [string, string]> = {
  correctness: ["Correctness", "Is the final answer right?"],
  soundness: ["Soundness", "Does the reasoning hold up, step by step?"],
  efficiency: ["Efficiency", "Few wasted steps, no loops or needless re-checks."],
  clarity: ["Clarity", "Could a reader follow it?"],
};

export interface RubricState {
  scores: Record<RubricDim, number | null>;
  rationale: string;
  cursor: number;
}

export function initialRubric(): RubricState {
  return { scores: { correctness: null, soundness: null, efficiency: null, clarity: null }, rationale: "", cursor: 0 };
}

export type RubricAction =
  | { type: "score"; dim?: RubricDim; value: number }
  | { type: "move"; by: number }
  | { type: "cursor"; i: number }
  | { type: "rationale"; text: string };

export function rubricReducer(s: RubricState, a: RubricAction): RubricState {
  switch (a.type) {
    case "score": {
      const dim = a.dim ?? RUBRIC_DIMS[s.cursor];
      if (!(a.value >= 1 && a.value <= 5)) return s;
      const i = RUBRIC_DIMS.indexOf(dim);
      return { ...s, scores: { ...s.scores, [dim]: a.value }, cursor: Math.min(RUBRIC_DIMS.length - 1, i + 1) };
    }
    case "move":
      return { ...s, cursor: clamp(s.cursor + a.by, RUBRIC_DIMS.length) };
    case "cursor":
      return { ...s, cursor: clamp(a.i, RUBRIC_DIMS.length) };
    case "rationale":
      return { ...s, rationale: a.text.slice(0, 5000) };
  }
}

export function rubricProblems(s: RubricState): { blocking: string[]; warnings: string[] } {
  const missing = RUBRIC_DIMS.filter((d) => s.scores[d] === null);
  return {
    blocking: missing.length ? [`Score ${missing.map((d) => RUBRIC_HELP[d][0].toLowerCase()).join(", ")} (1–5).`] : [],
    warnings: [],
  };
}

export function rubricPayload(s: RubricState): Record<string, unknown> {
  return { ...s.scores, rationale: s.rationale };
}

// ---- pairwise -------------------------------------------------------------------------------

export const CHOICES = ["left", "right", "tie", "both_bad"] as const;
export type Choice = (typeof CHOICES)[number];
export const CHOICE_LABEL: Record<Choice, string> = { left: "Left", right: "Right", tie: "Tie", both_bad: "Both bad" };
export const QUESTIONS = ["reasoning", "answer"] as const;
export type Question = (typeof QUESTIONS)[number];

export interface PairState {
  reasoning: Choice | null;
  answer: Choice | null;
  rationale: string;
  cursor: number;
  /** Reasoning shown per side (left, right). */
  open: [boolean, boolean];
}

export function initialPair(): PairState {
  return { reasoning: null, answer: null, rationale: "", cursor: 0, open: [false, false] };
}

export type PairAction =
  | { type: "choose"; q?: Question; choice: Choice }
  | { type: "move"; by: number }
  | { type: "toggleSide"; side: 0 | 1 }
  | { type: "rationale"; text: string };

export function pairReducer(s: PairState, a: PairAction): PairState {
  switch (a.type) {
    case "choose": {
      const q = a.q ?? QUESTIONS[s.cursor];
      return { ...s, [q]: a.choice, cursor: q === "reasoning" ? 1 : s.cursor };
    }
    case "move":
      return { ...s, cursor: clamp(s.cursor + a.by, QUESTIONS.length) };
    case "toggleSide": {
      const open: [boolean, boolean] = [...s.open];
      open[a.side] = !open[a.side];
      return { ...s, open };
    }
    case "rationale":
      return { ...s, rationale: a.text.slice(0, 5000) };
  }
}

export function pairProblems(s: PairState): { blocking: string[]; warnings: string[] } {
  const blocking: string[] = [];
  if (!s.reasoning) blocking.push("Choose which reasoning is better.");
  if (!s.answer) blocking.push("Choose which final answer is better.");
  return { blocking, warnings: [] };
}

export function pairPayload(s: PairState): Record<string, unknown> {
  return { reasoning: s.reasoning, answer: s.answer, rationale: s.rationale };
}

// ---- drafts -----------------------------------------------------------------------------------

export const DRAFT_VERSION = 1;

export type LabelState =
  | { kind: "step_labels"; step: StepState }
  | { kind: "rubric"; rubric: RubricState }
  | { kind: "pairwise"; pair: PairState };

export function initialLabel(task: Pick<Task, "task_type" | "traces">): LabelState {
  if (task.task_type === "step_labels") return { kind: "step_labels", step: initialStepState(task.traces[0].units) };
  if (task.task_type === "rubric") return { kind: "rubric", rubric: initialRubric() };
  return { kind: "pairwise", pair: initialPair() };
}

export function draftOf(l: LabelState): Record<string, unknown> {
  if (l.kind === "step_labels") {
    const s = l.step;
    return {
      v: DRAFT_VERSION,
      kind: l.kind,
      // Units only when edited: the segmenter's are in the task already.
      units: s.edited ? s.units : null,
      marks: s.marks,
      stop: s.stop,
      finish: s.finish,
      rationale: s.rationale,
      cursor: s.cursor,
    };
  }
  if (l.kind === "rubric") return { v: DRAFT_VERSION, kind: l.kind, ...l.rubric };
  return { v: DRAFT_VERSION, kind: l.kind, ...l.pair };
}

const isObj = (x: unknown): x is Record<string, unknown> => typeof x === "object" && x !== null && !Array.isArray(x);
const str = (x: unknown, max: number) => (typeof x === "string" ? x.slice(0, max) : "");

function markOf(x: unknown): StepMark {
  if (!isObj(x)) return EMPTY;
  const rating = x.rating === -1 || x.rating === 0 || x.rating === 1 ? x.rating : null;
  const tags = Array.isArray(x.tags) ? TAGS.filter((t) => (x.tags as unknown[]).includes(t)) : [];
  return { rating, tags, note: str(x.note, 1000) };
}

function unitsOf(x: unknown, reasoningLength: number): LUnit[] | null {
  if (!Array.isArray(x) || x.length === 0) return null;
  const out: LUnit[] = [];
  let last = 0;
  for (const [i, u] of x.entries()) {
    if (!isObj(u) || typeof u.start !== "number" || typeof u.end !== "number") return null;
    const answer = u.answer === true;
    if (answer && i !== x.length - 1) return null;
    if (!answer && (u.start < last || u.end <= u.start || u.end > reasoningLength)) return null;
    if (!answer) last = u.end;
    out.push({ start: u.start, end: u.end, answer, kind: str(u.kind, 40) || "other", title: str(u.title, 300) });
  }
  return out;
}

/** The label state a saved draft describes, or a fresh one when the draft does not fit. */
export function restoreDraft(task: Pick<Task, "task_type" | "traces" | "draft">): LabelState {
  const fresh = initialLabel(task);
  const d = task.draft;
  if (!isObj(d) || d.v !== DRAFT_VERSION || d.kind !== task.task_type) return fresh;
  if (fresh.kind === "step_labels") {
    const trace = task.traces[0];
    const edited = d.units != null;
    const units = edited ? unitsOf(d.units, Array.from(trace.reasoning).length) : fresh.step.units;
    if (!units || !Array.isArray(d.marks) || d.marks.length !== units.length) return fresh;
    return {
      kind: "step_labels",
      step: {
        units,
        marks: d.marks.map(markOf),
        edited,
        stop: d.stop !== false,
        finish: FINISH_REASONS.includes(d.finish as FinishReason) ? (d.finish as FinishReason) : null,
        rationale: str(d.rationale, 5000),
        cursor: typeof d.cursor === "number" ? clamp(d.cursor, units.length) : 0,
      },
    };
  }
  if (fresh.kind === "rubric") {
    const scores = { ...fresh.rubric.scores };
    const saved = isObj(d.scores) ? d.scores : {};
    for (const dim of RUBRIC_DIMS) {
      const v = saved[dim];
      scores[dim] = typeof v === "number" && v >= 1 && v <= 5 ? Math.round(v) : null;
    }
    return { kind: "rubric", rubric: { scores, rationale: str(d.rationale, 5000), cursor: typeof d.cursor === "number" ? clamp(d.cursor, 4) : 0 } };
  }
  const choice = (x: unknown) => (CHOICES.includes(x as Choice) ? (x as Choice) : null);
  const open = Array.isArray(d.open) ? [d.open[0] === true, d.open[1] === true] as [boolean, boolean] : [false, false] as [boolean, boolean];
  return {
    kind: "pairwise",
    pair: { reasoning: choice(d.reasoning), answer: choice(d.answer), rationale: str(d.rationale, 5000), cursor: d.cursor === 1 ? 1 : 0, open },
  };
}

export function labelPayload(l: LabelState): Record<string, unknown> {
  if (l.kind === "step_labels") return stepPayload(l.step);
  if (l.kind === "rubric") return rubricPayload(l.rubric);
  return pairPayload(l.pair);
}

export function labelProblems(l: LabelState): { blocking: string[]; warnings: string[] } {
  if (l.kind === "step_labels") return stepProblems(l.step);
  if (l.kind === "rubric") return rubricProblems(l.rubric);
  return pairProblems(l.pair);
}

// ---- small formatting -------------------------------------------------------------------------

export function clock(seconds: number): string {
  const s = Math.max(0, Math.floor(seconds));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const r = s % 60;
  const mm = h ? String(m).padStart(2, "0") : String(m);
  return `${h ? `${h}:` : ""}${mm}:${String(r).padStart(2, "0")}`;
}
