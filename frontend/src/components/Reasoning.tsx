import { useEffect, useState } from "preact/hooks";
import { formatElapsed, formatMs, thinkingLabel } from "../lib/format";
import type { ResponseState } from "../lib/reducer";
import { IconBrain, IconChevron } from "./icons";
import { TraceView, useThrottled } from "./TraceTree";

/** Client-side estimate of when thinking started (server clock). */
function startMs(st: ResponseState, fallbackIso: string | null): number | null {
  const t = st.startedAt ? Date.parse(st.startedAt) : NaN;
  if (!Number.isNaN(t)) return t;
  const f = fallbackIso ? Date.parse(fallbackIso) : NaN;
  if (Number.isNaN(f)) return null;
  return f + (st.timings?.queued_ms ?? 0);
}

export function thinkingMs(st: ResponseState, fallbackIso: string | null, now: number): number | null {
  if (st.timings?.thinking_ms != null) return st.timings.thinking_ms;
  const start = startMs(st, fallbackIso);
  if (start === null) return null;
  if (st.thinkingEndedAt !== null) return Math.max(0, st.thinkingEndedAt - start);
  if (st.status === "running" && st.content === "") return Math.max(0, now - start);
  return null;
}

function useNow(live: boolean): number {
  const [now, setNow] = useState(() => Date.now());
  useEffect(() => {
    if (!live) return;
    setNow(Date.now());
    const h = window.setInterval(() => setNow(Date.now()), 1000);
    return () => window.clearInterval(h);
  }, [live]);
  return now;
}

function ThinkingTimer({ st, createdAt, live }: { st: ResponseState; createdAt: string | null; live: boolean }) {
  const now = useNow(live);
  const ms = thinkingMs(st, createdAt, now);
  return (
    <span class="thinking-timer" data-testid="thinking-timer" data-live={live ? "true" : "false"}>
      {thinkingLabel(ms, live)}
    </span>
  );
}

export function ReasoningPanel({ st, createdAt }: { st: ResponseState; createdAt: string | null }) {
  const thinking = st.status === "running" && st.content === "";
  const [userOpen, setUserOpen] = useState<boolean | null>(null);
  const open = userOpen ?? thinking;
  const id = `reasoning-${st.id}`;
  const steps = st.steps.length;
  const empty = st.reasoning === "";
  const waiting = !st.hydrated && empty;

  return (
    <section class={`reasoning${thinking ? " is-live" : ""}${open ? " is-open" : ""}${steps > 0 ? " has-tree" : ""}`}>
      <button type="button" class="reasoning-toggle" data-testid="reasoning-toggle" aria-expanded={open}
        aria-controls={id} onClick={() => {
          if (!open) performance.mark?.("arbor:trace-open");
          setUserOpen(!open);
        }}>
        <IconChevron size={16} class="chev" />
        <IconBrain size={16} class="brain" />
        <ThinkingTimer st={st} createdAt={createdAt} live={thinking} />
        {steps > 0 && (
          <span class="chip" data-testid="step-count" title="Reasoning steps detected so far">
            {steps} {steps === 1 ? "step" : "steps"}
          </span>
        )}
        {!empty && <span class="reasoning-size">{st.reasoning.length.toLocaleString("en-US")} chars</span>}
      </button>
      {open && (
        <div id={id} class="reasoning-body">
          {waiting ? (
            <p class="muted small">Loading the chain of thought…</p>
          ) : empty ? (
            <p class="muted small">{thinking ? "Waiting for the first thoughts…" : "No reasoning was recorded."}</p>
          ) : (
            <TraceBody st={st} createdAt={createdAt} live={thinking} />
          )}
        </div>
      )}
    </section>
  );
}

function TraceBody({ st: latest, createdAt, live }: { st: ResponseState; createdAt: string | null; live: boolean }) {
  // While the trace grows, the tree and text follow ~7 times a second (not every frame):
  // reading stays fluid and the main thread stays free for typing.
  const st = useThrottled(latest, live ? 140 : 0);
  const now = useNow(live);
  const ms = thinkingMs(st, createdAt, now);
  const label = ms === null ? "–" : live ? `${formatElapsed(ms)} so far` : formatMs(ms);
  return <TraceView st={st} live={live} thinking={label} />;
}
