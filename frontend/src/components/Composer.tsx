import { useEffect, useLayoutEffect, useRef, useState } from "preact/hooks";
import { activeResponseId, composerRestore, conn, getBoot, selectedModel, send, sending, stop, stopping } from "../store";
import { IconSend, IconStop } from "./icons";

export const composerFocus = { fn: () => {} };

export function Composer() {
  const boot = getBoot();
  const ta = useRef<HTMLTextAreaElement>(null);
  const [text, setText] = useState("");
  const active = activeResponseId.value;
  const max = boot.max_prompt_chars;
  const over = text.length > max;

  const grow = () => {
    const el = ta.current;
    if (!el) return;
    el.style.height = "auto";
    el.style.height = `${Math.min(el.scrollHeight, Math.round(window.innerHeight * 0.4))}px`;
  };
  useLayoutEffect(grow, [text]);
  useEffect(() => {
    composerFocus.fn = () => ta.current?.focus();
    ta.current?.focus();
  }, []);
  useEffect(() => {
    const r = composerRestore.value;
    if (r && !ta.current?.value) setText(r.text);
  }, [composerRestore.value]);

  const submit = () => {
    if (over || !text.trim()) return;
    if (send(text)) setText("");
  };

  const onKey = (e: KeyboardEvent) => {
    if (e.key === "Enter" && !e.shiftKey && !e.isComposing && !e.altKey) {
      e.preventDefault();
      if (!active) submit();
    } else if (e.key === "Escape" && active) {
      e.preventDefault();
      stop();
    }
  };

  const models = boot.models;
  const sel = models.find((m) => m.slug === selectedModel.value);
  const offline = conn.value.state !== "open";

  return (
    <form class="composer" onSubmit={(e) => { e.preventDefault(); submit(); }} aria-label="Message composer">
      <div class={`composer-box${over ? " over" : ""}`}>
        <label for="composer-input" class="sr-only">Message</label>
        <textarea id="composer-input" ref={ta} data-testid="composer" rows={1} value={text}
          placeholder="Ask anything — math, code, puzzles…"
          onInput={(e) => setText((e.currentTarget as HTMLTextAreaElement).value)} onKeyDown={onKey}
          aria-describedby="composer-hint" />
        <div class="composer-bar">
          <label class="model-picker">
            <span class="sr-only">Model</span>
            <select data-testid="model-picker" value={selectedModel.value ?? ""}
              onChange={(e) => (selectedModel.value = (e.currentTarget as HTMLSelectElement).value)}
              title={sel?.description || "Model"}>
              {models.length === 0 && <option value="">Default model</option>}
              {models.map((m) => (
                <option key={m.slug} value={m.slug}>{m.name}{m.healthy ? "" : " (unavailable)"}</option>
              ))}
            </select>
          </label>
          {sel && !sel.healthy && <span class="warn small">This model is currently unavailable.</span>}
          <span class="spacer" />
          {text.length > max * 0.8 && (
            <span class={`count small${over ? " over" : ""}`} aria-live="polite">
              {text.length.toLocaleString()} / {max.toLocaleString()}
            </span>
          )}
          {active ? (
            <button type="button" class="btn stop" data-testid="stop" onClick={stop}
              disabled={stopping.value === active} aria-label="Stop generating (Esc)" title="Stop generating (Esc)">
              <IconStop size={16} /> {stopping.value === active ? "Stopping…" : "Stop"}
            </button>
          ) : (
            <button type="submit" class="btn primary send" data-testid="send"
              disabled={!text.trim() || over || sending.value} aria-label="Send message (Enter)"
              title="Send (Enter)">
              <IconSend size={16} /> Send
            </button>
          )}
        </div>
      </div>
      <p id="composer-hint" class="hint">
        <kbd>Enter</kbd> to send · <kbd>Shift</kbd>+<kbd>Enter</kbd> new line · <kbd>Esc</kbd> to stop
        {offline && <span class="warn"> · Offline: your message will be sent when the connection is back.</span>}
      </p>
    </form>
  );
}
