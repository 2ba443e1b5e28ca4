import { useEffect, useLayoutEffect, useRef, useState } from "preact/hooks";
import { formatCount, formatMs } from "../lib/format";
import { copyText } from "../lib/markdown";
import { isTerminal } from "../lib/reducer";
import type { ResponseState } from "../lib/reducer";
import type { Message } from "../lib/types";
import { siblings } from "../lib/tree";
import { busy, editMessage, getBoot, regenerate, responseSignal, stopping, switchBranch, view } from "../store";
import { IconAlert, IconCheck, IconChevron, IconCopy, IconEdit, IconRegenerate } from "./icons";
import { Markdown } from "./Markdown";
import { ReasoningPanel } from "./Reasoning";

/** "‹ 2 / 3 ›" between the message and its siblings (other branches). */
export function BranchSwitcher({ m }: { m: Message }) {
  const sibs = siblings(view.value.tree, m.id);
  if (sibs.length < 2) return null;
  const i = sibs.findIndex((x) => x.id === m.id);
  const what = m.role === "user" ? "version of this message" : "answer";
  return (
    <div class="branch-switch" role="group" aria-label={`Branches: ${i + 1} of ${sibs.length}`}>
      <button type="button" class="icon-btn tiny" data-testid="branch-prev" disabled={i <= 0}
        aria-label={`Previous ${what}`} title={`Previous ${what}`} onClick={() => switchBranch(m.id, -1)}>
        <IconChevron size={14} class="flip" />
      </button>
      <span class="branch-indicator" data-testid="branch-indicator" aria-live="polite">{i + 1} / {sibs.length}</span>
      <button type="button" class="icon-btn tiny" data-testid="branch-next" disabled={i >= sibs.length - 1}
        aria-label={`Next ${what}`} title={`Next ${what}`} onClick={() => switchBranch(m.id, 1)}>
        <IconChevron size={14} />
      </button>
    </div>
  );
}

function Editor({ m, onDone }: { m: Message; onDone: () => void }) {
  const ta = useRef<HTMLTextAreaElement>(null);
  const [text, setText] = useState(m.content);
  const max = getBoot().max_prompt_chars;
  useEffect(() => {
    const el = ta.current;
    if (!el) return;
    el.focus();
    el.setSelectionRange(el.value.length, el.value.length);
  }, []);
  useLayoutEffect(() => {
    const el = ta.current;
    if (!el) return;
    el.style.height = "auto";
    el.style.height = `${Math.min(el.scrollHeight, Math.round(window.innerHeight * 0.4))}px`;
  }, [text]);
  const unchanged = text.trim() === m.content.trim();
  const submit = () => {
    if (!text.trim() || unchanged || text.length > max) return;
    if (editMessage(m.id, text)) onDone();
  };
  return (
    <form class="edit-box" onSubmit={(e) => { e.preventDefault(); submit(); }}>
      <label class="sr-only" for={`edit-${m.id}`}>Edit your message</label>
      <textarea id={`edit-${m.id}`} ref={ta} data-testid="edit-input" value={text} rows={1}
        onInput={(e) => setText((e.currentTarget as HTMLTextAreaElement).value)}
        onKeyDown={(e) => {
          if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
            e.preventDefault();
            submit();
          } else if (e.key === "Escape") {
            e.preventDefault();
            e.stopPropagation();
            onDone();
          }
        }} />
      <div class="edit-bar">
        <span class="muted small">Sends as a new branch · <kbd>Enter</kbd> send · <kbd>Esc</kbd> cancel</span>
        <span class="spacer" />
        <button type="button" class="btn ghost small" data-testid="edit-cancel" onClick={onDone}>Cancel</button>
        <button type="submit" class="btn primary small" data-testid="edit-send"
          disabled={!text.trim() || unchanged || text.length > max || busy.value}>Send</button>
      </div>
    </form>
  );
}

export function UserTurn({ m }: { m: Message }) {
  const pending = m.id.startsWith("local:");
  const [editing, setEditing] = useState(false);
  const canEdit = !pending && !!view.value.id;
  return (
    <div class={`turn user${pending ? " pending" : ""}${editing ? " editing" : ""}`} data-testid="user-turn"
      data-message-id={m.id}>
      {editing ? <Editor m={m} onDone={() => setEditing(false)} /> : <div class="bubble">{m.content}</div>}
      {pending && <div class="turn-note">Sending…</div>}
      {!editing && !pending && (
        <div class="turn-actions">
          <BranchSwitcher m={m} />
          {canEdit && (
            <button type="button" class="icon-btn tiny" data-testid="edit" aria-label="Edit this message (new branch)"
              title="Edit (sends a new branch)" disabled={busy.value} onClick={() => setEditing(true)}>
              <IconEdit size={14} />
            </button>
          )}
        </div>
      )}
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

function Footer({ st, m }: { st: ResponseState; m: Message }) {
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
      <div class="footer-actions">
        <BranchSwitcher m={m} />
        <button type="button" class="ghost small" data-testid="regenerate" disabled={busy.value}
          title="Generate another answer (kept as a sibling branch)" onClick={() => regenerate(m.id)}>
          <IconRegenerate size={14} /> Regenerate
        </button>
        {st.content && <CopyButton text={st.content} label="Copy answer" />}
      </div>
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
      {done ? <Footer st={st} m={m} /> : <div class="footer-actions live"><BranchSwitcher m={m} /></div>}
    </article>
  );
}
