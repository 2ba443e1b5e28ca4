// Pure state machine for one response: (state, event) -> state.
// The view never mutates these objects; every applied event returns a new one.
import type {
  ApiErrorBody, ResponseEvent, ResponseSnapshot, ResponseStatus, ResponseSummary, Step, Timings, Usage,
} from "./types";

export interface ResponseState {
  id: string;
  status: ResponseStatus;
  model: string | null;
  reasoning: string;
  content: string;
  steps: Step[];
  finishReason: string | null;
  usage: Usage | null;
  timings: Timings | null;
  error: ApiErrorBody | null;
  /** Highest seq applied; events are applied only in order lastSeq+1. */
  lastSeq: number;
  /** ISO time from response.started (server clock), when seen. */
  startedAt: string | null;
  /** Client clock (ms) when the first answer text arrived live; view-only. */
  thinkingEndedAt: number | null;
  /** False while only the conversation summary is known (no reasoning/steps yet). */
  hydrated: boolean;
}

export const TERMINAL: ReadonlySet<ResponseStatus> = new Set(["completed", "failed", "cancelled"]);

export function isTerminal(s: ResponseState | ResponseStatus): boolean {
  return TERMINAL.has(typeof s === "string" ? s : s.status);
}

export function emptyResponse(id: string, model: string | null = null): ResponseState {
  return {
    id,
    status: "queued",
    model,
    reasoning: "",
    content: "",
    steps: [],
    finishReason: null,
    usage: null,
    timings: null,
    error: null,
    lastSeq: 0,
    startedAt: null,
    thinkingEndedAt: null,
    hydrated: true,
  };
}

export function fromSnapshot(s: ResponseSnapshot): ResponseState {
  return {
    id: s.id,
    status: s.status,
    model: s.model,
    reasoning: s.reasoning ?? "",
    content: s.content ?? "",
    steps: sortSteps(s.steps ?? []),
    finishReason: s.finish_reason,
    usage: s.usage,
    timings: s.timings,
    error: s.error,
    lastSeq: s.last_seq ?? 0,
    startedAt: s.started_at ?? null,
    thinkingEndedAt: null,
    hydrated: true,
  };
}

/** From the `response` summary of a conversation message (no reasoning yet). */
export function fromSummary(r: ResponseSummary, content: string): ResponseState {
  return {
    ...emptyResponse(r.id, r.model),
    status: r.status,
    content,
    finishReason: r.finish_reason,
    usage: r.usage,
    timings: r.timings,
    error: r.error,
    lastSeq: 0,
    startedAt: r.started_at ?? null,
    hydrated: false,
  };
}

function sortSteps(steps: Step[]): Step[] {
  return [...steps].sort((a, b) => a.index - b.index);
}

function upsertStep(steps: Step[], step: Step): Step[] {
  const i = steps.findIndex((s) => s.id === step.id);
  if (i === -1) {
    const next = [...steps, step];
    // Steps normally arrive in index order; keep the list sorted regardless.
    if (steps.length && steps[steps.length - 1].index > step.index) next.sort((a, b) => a.index - b.index);
    return next;
  }
  const next = steps.slice();
  next[i] = { ...steps[i], ...step };
  return next;
}

export type ApplyResult = "applied" | "duplicate" | "gap" | "ignored";

/** How an event relates to the state: the caller buffers gaps and drops duplicates. */
export function classify(state: ResponseState, ev: ResponseEvent): ApplyResult {
  if (ev.response_id !== state.id) return "ignored";
  if (ev.seq <= state.lastSeq) return "duplicate";
  if (ev.seq !== state.lastSeq + 1) return "gap";
  return "applied";
}

/**
 * Apply one event. Events with seq <= lastSeq (duplicates) or seq > lastSeq+1
 * (out of order) return the same state object untouched. After a terminal
 * event nothing but the seq counter changes.
 * `now` is the client clock, used only for the live thinking timer.
 */
export function reduce(state: ResponseState, ev: ResponseEvent, now?: number): ResponseState {
  if (classify(state, ev) !== "applied") return state;
  const base = { ...state, lastSeq: ev.seq };
  if (isTerminal(state)) return base;
  // A response that ends while still thinking stops the thinking clock too.
  const endThinking = state.content === "" && state.thinkingEndedAt === null && now !== undefined ? now : state.thinkingEndedAt;
  switch (ev.type) {
    case "response.started":
      return { ...base, status: "running", model: ev.model ?? state.model, startedAt: ev.started_at ?? null };
    case "reasoning.delta":
      return { ...base, status: "running", reasoning: state.reasoning + ev.text };
    case "content.delta":
      return {
        ...base,
        status: "running",
        content: state.content + ev.text,
        thinkingEndedAt:
          state.thinkingEndedAt ?? (state.content === "" && now !== undefined ? now : state.thinkingEndedAt),
      };
    case "step.added":
    case "step.updated":
      return { ...base, steps: upsertStep(state.steps, ev.step) };
    case "response.completed":
      return {
        ...base,
        status: "completed",
        thinkingEndedAt: endThinking,
        finishReason: ev.finish_reason ?? null,
        usage: ev.usage ?? null,
        timings: ev.timings ?? null,
      };
    case "response.failed":
      return { ...base, status: "failed", thinkingEndedAt: endThinking, error: ev.error ?? { code: "internal", message: "Generation failed" } };
    case "response.cancelled":
      return { ...base, status: "cancelled", thinkingEndedAt: endThinking, finishReason: state.finishReason ?? "cancelled" };
    default:
      return base;
  }
}

/** Apply a batch in order (convenience for replays and tests). */
export function reduceAll(state: ResponseState, events: ResponseEvent[], now?: number): ResponseState {
  let s = state;
  for (const ev of events) s = reduce(s, ev, now);
  return s;
}

/**
 * Per-response ordering buffer: feeds events to the reducer strictly in seq
 * order, holding early arrivals until the gap is filled.
 */
export class Sequencer {
  private pending = new Map<number, ResponseEvent>();

  push(state: ResponseState, ev: ResponseEvent, now?: number): ResponseState {
    const c = classify(state, ev);
    if (c === "duplicate" || c === "ignored") return state;
    if (c === "gap") {
      this.pending.set(ev.seq, ev);
      return state;
    }
    let s = reduce(state, ev, now);
    for (;;) {
      const next = this.pending.get(s.lastSeq + 1);
      if (!next) break;
      this.pending.delete(next.seq);
      s = reduce(s, next, now);
    }
    for (const k of this.pending.keys()) if (k <= s.lastSeq) this.pending.delete(k);
    return s;
  }

  /** True when events are waiting behind a missing seq. */
  get hasGap(): boolean {
    return this.pending.size > 0;
  }

  clear(): void {
    this.pending.clear();
  }
}
