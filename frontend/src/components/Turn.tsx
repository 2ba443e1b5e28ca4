import { useState } from "preact/hooks";
import { formatCount, formatMs } from "../lib/format";
import { copyText } from "../lib/markdown";
import { isTerminal } from "../lib/reducer";
import type { ResponseState } from "../lib/reducer";
import type { Message } from "../lib/types";
import { getBoot, responseSignal, stopping } from "../store";
import { IconAlert, IconCheck, IconCopy } from "./icons";
import { Markdown } from "./Markdown";
import { ReasoningPanel } from "./Reasoning";

export function UserTurn({ m }: { m: Message }) {
  const pending = m.id.startsWith("local:");
  return (
    <div class={`turn user${pending ? " pending" : ""}`} data-testid="user-turn">
      <div class="bubble">{m.content}</div>
      {pending && <div class="turn-note">Sending…</div>}
    </div>
  );
}

function modelName(slug: string | null): string {
  if (!slug) return "Assistant";
  return getBoot().models.find((m) => m.slug === slug)?.name ?? slug;
}

const STATUS_LABEL: Record<string, string> = {
  queued: "Queued",
  running: "Generating",
  completed: "Done",
  failed: "Failed",
  cancelled: "Stopped",
};

function CopyButton({ text, label }: { text: string; label: string }) {
  const [done, setDone] = useState(false);
  return (
    <button type="button" class="ghost small" data-testid="copy-answer" onClick={() =>
      void copyText(text).then((ok) => {
        if (!ok) return;
        setDone(true);
        window.setTimeout(() => setDone(false), 1500);
      })}>
      {done ? <IconCheck size={14} /> : <IconCopy size={14} />} {done ? "Copied" : label}
    </button>
  );
}

function Footer({ st }: { st: ResponseState }) {
  const u = st.usage;
  const t = st.timings;
  const answerTokens = u ? Math.max(0, u.completion_tokens - (u.reasoning_tokens ?? 0)) : null;
  const finish =
    st.status === "cancelled" ? "stopped" : st.status === "failed" ? "error" : st.finishReason ?? "–";
  return (
    <footer class="turn-footer" data-testid="response-footer">
      <dl class="stats">
        {u && (
          <div title={`Completion tokens: ${formatCount(u.completion_tokens)}`}>
            <dt>Tokens</dt>
            <dd>
              <span title="prompt">{formatCount(u.prompt_tokens)}</span> /{" "}
              <span title="reasoning">{formatCount(u.reasoning_tokens)}</span> /{" "}
              <span title="answer">{formatCount(answerTokens)}</span>
              <span class="muted"> prompt / reasoning / answer</span>
            </dd>
          </div>
        )}
        {t && (
          <>
            <div><dt>First token</dt><dd>{formatMs(t.ttft_ms)}</dd></div>
            <div><dt>Thinking</dt><dd>{formatMs(t.thinking_ms)}</dd></div>
            <div><dt>Total</dt><dd>{formatMs(t.total_ms)}</dd></div>
          </>
        )}
        <div><dt>Finish</dt><dd class={`finish finish-${finish}`}>{finish}</dd></div>
      </dl>
      {st.content && <CopyButton text={st.content} label="Copy answer" />}
    </footer>
  );
}

export function AssistantTurn({ m }: { m: Message }) {
  const st = responseSignal(m.id).value;
  const done = isTerminal(st);
  const streaming = st.status === "running";
  const showReasoning = st.reasoning !== "" || st.status === "running" || !st.hydrated;
  const isStopping = stopping.value === st.id && !done;
  return (
    <article class={`turn assistant status-${st.status}`} data-testid="assistant-turn" data-response-id={st.id}
      data-status={st.status} aria-busy={!done}>
      <header class="turn-head">
        <span class="model-name">{modelName(st.model ?? m.response?.model ?? null)}</span>
        {(!done || st.status !== "completed") && (
          <span class={`badge badge-${st.status}`}>{isStopping ? "Stopping…" : STATUS_LABEL[st.status]}</span>
        )}
        {st.finishReason === "length" && <span class="badge badge-failed">Hit the length limit</span>}
      </header>
      {st.status === "queued" && st.reasoning === "" && (
        <div class="queued"><span class="dots" aria-hidden="true"><i /><i /><i /></span> Waiting for the model…</div>
      )}
      {showReasoning && st.status !== "queued" && <ReasoningPanel st={st} createdAt={m.created_at} />}
      {(st.content !== "" || (done && st.status === "completed")) && (
        <Markdown text={st.content} streaming={streaming} class={`answer${streaming ? " streaming" : ""}`}
          testid="answer" />
      )}
      {st.status === "failed" && (
        <div class="turn-error" role="alert">
          <IconAlert size={16} />
          <div>
            <strong>The generation failed.</strong> {st.error?.message ?? ""}
            {st.error?.code && <span class="muted"> ({st.error.code})</span>}
            {(st.content || st.reasoning) && <div class="muted small">The text generated before the failure is kept.</div>}
          </div>
        </div>
      )}
      {st.status === "cancelled" && (
        <div class="turn-note stopped">Stopped by you. {st.content || st.reasoning ? "The partial output is kept." : ""}</div>
      )}
      {done && <Footer st={st} />}
    </article>
  );
}
