import { useEffect, useLayoutEffect, useRef, useState } from "preact/hooks";
import { thinkingLabel } from "../lib/format";
import type { ResponseState } from "../lib/reducer";
import { IconArrowDown, IconBrain, IconChevron } from "./icons";

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

function ThinkingTimer({ st, createdAt, live }: { st: ResponseState; createdAt: string | null; live: boolean }) {
  const [now, setNow] = useState(() => Date.now());
  useEffect(() => {
    if (!live) return;
    setNow(Date.now());
    const h = window.setInterval(() => setNow(Date.now()), 1000);
    return () => window.clearInterval(h);
  }, [live]);
  const ms = thinkingMs(st, createdAt, now);
  return (
    <span class="thinking-timer" data-testid="thinking-timer" data-live={live ? "true" : "false"}>
      {thinkingLabel(ms, live)}
    </span>
  );
}

/** Plain-text trace: appends only the new suffix to one text node per frame. */
function TraceText({ text, live }: { text: string; live: boolean }) {
  const scroller = useRef<HTMLDivElement>(null);
  const node = useRef<Text | null>(null);
  const len = useRef(0);
  const follow = useRef(true);
  const [detached, setDetached] = useState(false);

  useLayoutEffect(() => {
    const el = scroller.current?.firstElementChild as HTMLElement | null;
    if (!el) return;
    if (!node.current || text.length < len.current) {
      el.textContent = "";
      node.current = document.createTextNode(text);
      el.appendChild(node.current);
    } else if (text.length > len.current) {
      node.current.appendData(text.slice(len.current));
    }
    len.current = text.length;
    if (follow.current && scroller.current) scroller.current.scrollTop = scroller.current.scrollHeight;
  }, [text]);

  const onScroll = () => {
    const s = scroller.current;
    if (!s) return;
    const atBottom = s.scrollTop + s.clientHeight >= s.scrollHeight - 24;
    follow.current = atBottom;
    if (detached === atBottom) setDetached(!atBottom);
  };

  const jump = () => {
    const s = scroller.current;
    if (!s) return;
    follow.current = true;
    s.scrollTop = s.scrollHeight;
    setDetached(false);
  };

  return (
    <div class="trace-wrap">
      <div ref={scroller} class={`trace-scroll${live ? " live" : ""}`} onScroll={onScroll} tabIndex={0}
        role="region" aria-label="Chain of thought">
        <div class="trace-text" data-testid="reasoning" />
      </div>
      {live && detached && (
        <button type="button" class="jump-latest" onClick={jump}>
          <IconArrowDown size={14} /> Follow live
        </button>
      )}
    </div>
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
    <section class={`reasoning${thinking ? " is-live" : ""}${open ? " is-open" : ""}`}>
      <button type="button" class="reasoning-toggle" data-testid="reasoning-toggle" aria-expanded={open}
        aria-controls={id} onClick={() => setUserOpen(!open)}>
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
          {/* Room for the step outline ("thinking tree") beside the raw text. */}
          {waiting ? (
            <p class="muted small">Loading the chain of thought…</p>
          ) : empty ? (
            <p class="muted small">{thinking ? "Waiting for the first thoughts…" : "No reasoning was recorded."}</p>
          ) : (
            <TraceText text={st.reasoning} live={thinking} />
          )}
        </div>
      )}
    </section>
  );
}
