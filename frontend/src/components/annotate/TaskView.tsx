// One task: its header (progress, time, lease, save state), the guidelines, the prompt,
// the labelling surface of its type, and the keyboard, autosave and submit logic.
import { useCallback, useEffect, useMemo, useRef, useState } from "preact/hooks";
import { notify } from "../pages/Shell";
import { IconClock } from "../icons";
import type { AnnotateApi } from "./api";
import { describeError, draftFailure } from "./api";
import type { Command, Mode } from "./keys";
import { commandFor, isTyping, shortcutSheet } from "./keys";
import { LazyMarkdown } from "./LazyMarkdown";
import type { LabelState, PairAction, RubricAction, StepAction, Task } from "./model";
import {
  RUBRIC_DIMS, clock, draftOf, labelPayload, labelProblems, pairReducer, ratedCount, restoreDraft, rubricReducer,
  stepReducer,
} from "./model";
import { PairControls, PairSides } from "./Pairwise";
import { RubricControls } from "./Rubric";
import type { SplitApi, StepUi, UiAction } from "./StepLabels";
import { StepControls, StepList } from "./StepLabels";
import { TraceReader } from "./TraceReader";

const AUTOSAVE_MS = 1200;
const HEARTBEAT_MS = 60_000;
const SKIP_REASONS = ["I can't judge this problem", "The trace is unreadable or broken", "The task is a duplicate"];

type Save = "saved" | "dirty" | "saving" | "error" | "lost";

/** Active time on the task: counts only while the tab is visible. */
function useActiveTime(initialMs: number): { get: () => number; shown: number } {
  const acc = useRef(initialMs);
  const since = useRef<number | null>(document.visibilityState === "visible" ? performance.now() : null);
  const [shown, setShown] = useState(initialMs);
  const get = useCallback(() => acc.current + (since.current === null ? 0 : performance.now() - since.current), []);
  useEffect(() => {
    const onVis = () => {
      if (document.visibilityState === "visible") since.current ??= performance.now();
      else if (since.current !== null) {
        acc.current += performance.now() - since.current;
        since.current = null;
      }
    };
    document.addEventListener("visibilitychange", onVis);
    const h = window.setInterval(() => setShown(get()), 1000);
    return () => {
      document.removeEventListener("visibilitychange", onVis);
      window.clearInterval(h);
    };
  }, []);
  return { get, shown };
}

export function TaskView({ task, api, onDone, onLeave, flash }: {
  task: Task; api: AnnotateApi; onDone: (what: string) => void; onLeave: () => void; flash: string | null;
}) {
  const [label, setLabel] = useState<LabelState>(() => restoreDraft(task));
  const [save, setSave] = useState<Save>("saved");
  const [leaseLeft, setLeaseLeft] = useState(task.lease_seconds_left);
  const leaseAt = useRef(performance.now() + task.lease_seconds_left * 1000);
  const time = useActiveTime(task.time_spent_ms);
  const [guidelinesOpen, setGuidelinesOpen] = useState(false);
  const [dialog, setDialog] = useState<null | "help" | "skip" | "confirm">(null);
  const [warnings, setWarnings] = useState<string[]>([]);
  const [busy, setBusy] = useState(false);
  const [ui, setUi] = useState<StepUi>({ tagsOpen: false, noteOpen: null, splitting: null, toggled: new Set() });
  const splitApi = useRef<SplitApi | null>(null);
  const rationaleRef = useRef<HTMLTextAreaElement>(null);
  const rootRef = useRef<HTMLDivElement>(null);
  const labelRef = useRef(label);
  labelRef.current = label;
  const dirty = useRef(false);
  const done = useRef(false);
  // After a 409 on a draft save the task is not ours any more: no more saves, one toast.
  const lost = useRef(false);
  const lastSaveError = useRef<string | null>(null);
  const trace = task.traces[0];

  // ---- dispatch ----
  const stepDispatch = useCallback((a: StepAction) => {
    setLabel((l) => (l.kind === "step_labels" ? { ...l, step: stepReducer(l.step, a) } : l));
  }, []);
  const rubricDispatch = useCallback((a: RubricAction) => {
    setLabel((l) => (l.kind === "rubric" ? { ...l, rubric: rubricReducer(l.rubric, a) } : l));
  }, []);
  const pairDispatch = useCallback((a: PairAction) => {
    setLabel((l) => (l.kind === "pairwise" ? { ...l, pair: pairReducer(l.pair, a) } : l));
  }, []);
  const uiDispatch = useCallback((a: UiAction) => {
    setUi((u) => {
      if (a.type === "tags") return { ...u, tagsOpen: !(u.tagsOpen && labelRef.current.kind === "step_labels" && labelRef.current.step.cursor === a.i) };
      if (a.type === "note") return { ...u, noteOpen: u.noteOpen === a.i ? null : a.i };
      if (a.type === "split") return { ...u, splitting: a.i < 0 ? null : a.i, tagsOpen: false };
      const toggled = new Set(u.toggled);
      if (toggled.has(a.start)) toggled.delete(a.start);
      else toggled.add(a.start);
      return { ...u, toggled };
    });
    if (a.type === "tags" || a.type === "note" || a.type === "split") {
      if (a.i >= 0) stepDispatch({ type: "cursor", i: a.i });
    }
    if (a.type === "note") {
      requestAnimationFrame(() => rootRef.current?.querySelector<HTMLTextAreaElement>(`[data-unit-index="${a.i}"] textarea`)?.focus());
    }
  }, []);

  // ---- saving ----
  const saveNow = useCallback(async () => {
    if (done.current || lost.current) return;
    dirty.current = false;
    setSave("saving");
    try {
      const r = await api.saveDraft(task.id, draftOf(labelRef.current), time.get());
      leaseAt.current = performance.now() + r.lease_seconds_left * 1000;
      setLeaseLeft(r.lease_seconds_left);
      lastSaveError.current = null;
      setSave(dirty.current ? "dirty" : "saved");
    } catch (e) {
      const f = draftFailure(e, lastSaveError.current);
      lastSaveError.current = f.key;
      lost.current = f.lost;
      setSave(f.lost ? "lost" : "error");
      if (f.toast) notify("error", f.toast.title, f.toast.message);
    }
  }, [task.id]);

  const first = useRef(true);
  useEffect(() => {
    if (first.current) {
      first.current = false;
      return;
    }
    if (lost.current) return;
    dirty.current = true;
    setSave("dirty");
    const h = window.setTimeout(() => void saveNow(), AUTOSAVE_MS);
    return () => window.clearTimeout(h);
  }, [label]);

  useEffect(() => {
    // Leaving or hiding the tab saves at once; a heartbeat keeps the lease and the time.
    const flush = () => {
      if (done.current || lost.current) return;
      api.saveDraftOnExit(task.id, draftOf(labelRef.current), time.get());
      dirty.current = false;
    };
    const onVis = () => document.visibilityState === "hidden" && flush();
    window.addEventListener("pagehide", flush);
    document.addEventListener("visibilitychange", onVis);
    const beat = window.setInterval(() => {
      if (document.visibilityState === "visible") void saveNow();
    }, HEARTBEAT_MS);
    const tick = window.setInterval(() => setLeaseLeft(Math.max(0, Math.round((leaseAt.current - performance.now()) / 1000))), 1000);
    return () => {
      window.removeEventListener("pagehide", flush);
      document.removeEventListener("visibilitychange", onVis);
      window.clearInterval(beat);
      window.clearInterval(tick);
    };
  }, [task.id]);

  // ---- submit and skip ----
  const submit = async () => {
    if (busy) return;
    setBusy(true);
    try {
      await api.submit(task.id, labelPayload(labelRef.current), time.get(), task.guideline.version);
      done.current = true;
      onDone("Submitted");
    } catch (e) {
      const d = describeError(e, "submit");
      notify("error", d.title, d.message);
      setBusy(false);
    }
  };

  const trySubmit = () => {
    const { blocking, warnings: warn } = labelProblems(labelRef.current);
    if (blocking.length) {
      notify("error", "Not ready to submit", blocking.join(" "));
      if (labelRef.current.kind === "step_labels") stepDispatch({ type: "nextUnrated" });
      return;
    }
    if (warn.length) {
      setWarnings(warn);
      setDialog("confirm");
      return;
    }
    void submit();
  };

  const skip = async (reason: string) => {
    setBusy(true);
    try {
      await api.skip(task.id, reason);
      done.current = true;
      onDone("Skipped");
    } catch (e) {
      const d = describeError(e, "skip");
      notify("error", d.title, d.message);
      setBusy(false);
    }
  };

  // ---- keyboard ----
  const run = (c: Command) => {
    const l = labelRef.current;
    switch (c.cmd) {
      case "help":
        setDialog("help");
        return;
      case "guidelines":
        setGuidelinesOpen((o) => !o);
        return;
      case "rationale":
        rationaleRef.current?.focus();
        return;
      case "submit":
        trySubmit();
        return;
      case "skip":
        setDialog("skip");
        return;
      case "close":
        setUi((u) => ({ ...u, tagsOpen: false, splitting: null }));
        return;
    }
    if (l.kind === "step_labels") {
      const s = l.step;
      switch (c.cmd) {
        case "move":
          stepDispatch({ type: "move", by: c.by });
          return;
        case "rate":
          stepDispatch({ type: "rate", rating: c.rating });
          return;
        case "tagsMenu":
          uiDispatch({ type: "tags", i: s.cursor });
          return;
        case "tag":
          stepDispatch({ type: "toggleTag", tag: c.tag });
          return;
        case "merge":
          stepDispatch({ type: "merge" });
          return;
        case "split":
          if (!s.units[s.cursor]?.answer) uiDispatch({ type: "split", i: s.cursor });
          return;
        case "nextUnrated":
          stepDispatch({ type: "nextUnrated" });
          return;
        case "firstError":
          stepDispatch({ type: "firstError" });
          return;
        case "expand":
          uiDispatch({ type: "fold", start: s.units[s.cursor].start });
          return;
        case "cycleFinish":
          stepDispatch({ type: "cycleFinish" });
          return;
        case "note":
          uiDispatch({ type: "note", i: s.cursor });
          return;
      }
    } else if (l.kind === "rubric") {
      if (c.cmd === "move") rubricDispatch({ type: "move", by: c.by });
      if (c.cmd === "score") rubricDispatch({ type: "score", value: c.value });
    } else {
      if (c.cmd === "move") pairDispatch({ type: "move", by: c.by });
      if (c.cmd === "choose") pairDispatch({ type: "choose", choice: c.choice });
      if (c.cmd === "toggleSide") pairDispatch({ type: "toggleSide", side: c.side });
    }
  };
  const runRef = useRef(run);
  runRef.current = run;
  const uiRef = useRef(ui);
  uiRef.current = ui;
  const dialogRef = useRef(dialog);
  dialogRef.current = dialog;

  useEffect(() => {
    const onKey = (e: KeyboardEvent) => {
      if (e.defaultPrevented || done.current) return;
      if (isTyping(e.target)) {
        if (e.key === "Escape") (e.target as HTMLElement).blur();
        return;
      }
      if (dialogRef.current) return;
      const t = e.target as HTMLElement | null;
      // A focused button or link keeps Enter and Space for itself.
      if ((e.key === "Enter" || e.key === " ") && t?.closest?.("button, a, summary")) return;
      const u = uiRef.current;
      if (u.splitting !== null) {
        const sp = splitApi.current;
        if (e.key === "ArrowLeft" || e.key === "ArrowRight") sp?.move(e.key === "ArrowLeft" ? -1 : 1);
        else if (e.key === "Enter") sp?.confirm();
        else if (e.key === "Escape" || e.key === "s") uiDispatch({ type: "split", i: -1 });
        else return;
        e.preventDefault();
        return;
      }
      const mode: Mode = u.tagsOpen ? "tags" : "normal";
      const c = commandFor(task.task_type, mode, e);
      if (!c) return;
      e.preventDefault();
      runRef.current(c);
    };
    document.addEventListener("keydown", onKey);
    return () => document.removeEventListener("keydown", onKey);
  }, []);

  // Ready: every unit is in the DOM and the handlers are attached (the benchmark waits for it).
  useEffect(() => {
    const h = requestAnimationFrame(() => {
      rootRef.current?.setAttribute("data-ready", "true");
      performance.mark("arbor:workbench-ready");
    });
    return () => cancelAnimationFrame(h);
  }, []);

  // ---- progress ----
  const progress = useMemo(() => {
    if (label.kind === "step_labels") {
      const { rated, total } = ratedCount(label.step);
      return { n: rated, of: total, unit: "steps rated" };
    }
    if (label.kind === "rubric") {
      const n = RUBRIC_DIMS.filter((d) => label.rubric.scores[d] !== null).length;
      return { n, of: 4, unit: "scales scored" };
    }
    return { n: Number(!!label.pair.reasoning) + Number(!!label.pair.answer), of: 2, unit: "questions answered" };
  }, [label]);

  const rationale = label.kind === "step_labels" ? label.step.rationale : label.kind === "rubric" ? label.rubric.rationale : label.pair.rationale;
  const setRationale = (text: string) => {
    if (label.kind === "step_labels") stepDispatch({ type: "rationale", text });
    else if (label.kind === "rubric") rubricDispatch({ type: "rationale", text });
    else pairDispatch({ type: "rationale", text });
  };

  const typeName = task.task_type === "step_labels" ? "Step labels" : task.task_type === "rubric" ? "Rubric" : "Pairwise";
  const leaseLow = leaseLeft < 120;
  return (
    <div class={`wb-task t-${task.task_type}`} ref={rootRef} data-testid="task" data-task-id={task.id}
      data-task-type={task.task_type}>
      <header class="wb-bar" data-testid="task-bar">
        <div class="wb-bar-title">
          <button type="button" class="ghost small" onClick={onLeave} title="All campaigns" aria-label={`All campaigns (now: ${task.campaign.name})`}>
            ← <span class="wb-camp-name">{task.campaign.name}</span>
          </button>
          <span class="wb-type">{typeName}</span>
        </div>
        <div class="wb-progress" data-testid="progress" aria-label={`${progress.n} of ${progress.of} ${progress.unit}`}>
          <span class="wb-progress-text"><strong>{progress.n}</strong>/{progress.of} <span class="muted">{progress.unit}</span></span>
          <span class="wb-progress-track" aria-hidden="true">
            <span class="wb-progress-fill" style={{ width: `${progress.of ? (100 * progress.n) / progress.of : 0}%` }} />
          </span>
        </div>
        <div class="wb-meta small">
          <span class="wb-time" title="Time on this task (counted while the tab is visible)">
            <IconClock size={13} /> {clock(time.shown / 1000)}
          </span>
          <span class={leaseLow ? "warn" : "muted"} data-testid="lease"
            title="Your hold on this task; saving a draft renews it">
            {leaseLeft > 0 ? `Lease ${clock(leaseLeft)}` : "Lease expired: submit may be refused"}
          </span>
          {flash && <span class="wb-flash" role="status">✓ {flash}</span>}
          <span class={`wb-save s-${save}`} data-testid="save-state" aria-live="polite">
            {save === "saved" ? "Saved" : save === "saving" ? "Saving…" : save === "dirty" ? "Unsaved" : save === "lost" ? "Not saved: lease expired" : "Not saved"}
          </span>
        </div>
        <div class="wb-actions">
          <button type="button" class="btn small-btn wb-guide-btn" onClick={() => setGuidelinesOpen((o) => !o)} aria-expanded={guidelinesOpen}
            title="Guidelines (g)">Guidelines v{task.guideline.version}</button>
          <button type="button" class="btn small-btn" onClick={() => setDialog("help")} title="Shortcuts (?)"
            aria-label="Keyboard shortcuts">?</button>
          <button type="button" class="btn small-btn" onClick={() => setDialog("skip")} disabled={busy}
            data-testid="skip" title="Skip (Shift+S)">Skip</button>
          <button type="button" class="btn small-btn primary" onClick={trySubmit} disabled={busy}
            data-testid="submit" title="Submit (Enter)">Submit</button>
        </div>
      </header>

      {guidelinesOpen && (
        <section class="wb-guidelines card" aria-label="Guidelines" data-testid="guidelines">
          <div class="card-head">
            <h2 class="card-title">Guidelines <span class="wb-version">version {task.guideline.version}</span></h2>
            <button type="button" class="ghost small" onClick={() => setGuidelinesOpen(false)}>Close (g)</button>
          </div>
          <LazyMarkdown text={task.guideline.text || "_No guidelines._"} class="wb-md" eager />
        </section>
      )}

      <div class="wb-layout">
        <div class="wb-main">
          <section class="wb-prompt card" aria-label="Prompt">
            <h2 class="wb-h">Prompt</h2>
            <LazyMarkdown text={task.prompt} class="wb-md" eager testid="prompt" />
          </section>
          {task.task_type === "step_labels" && label.kind === "step_labels" && (
            <StepList trace={trace} s={label.step} dispatch={stepDispatch} ui={uiDispatch} uiState={ui} splitApi={splitApi} />
          )}
          {task.task_type === "rubric" && (
            <section class="card wb-rubric-trace" aria-label="The trace">
              <h2 class="wb-h">Reasoning</h2>
              <TraceReader trace={trace} />
              <h2 class="wb-h">Final answer</h2>
              <LazyMarkdown text={trace.content || "_(no answer)_"} class="wb-md" eager />
            </section>
          )}
          {task.task_type === "pairwise" && label.kind === "pairwise" && (
            <PairSides traces={task.traces} s={label.pair} dispatch={pairDispatch} />
          )}
        </div>
        <aside class="wb-aside" aria-label="Label">
          {task.task_type !== "pairwise" && <TraceFacts task={task} />}
          {label.kind === "step_labels" && <StepControls s={label.step} dispatch={stepDispatch} />}
          {label.kind === "rubric" && <RubricControls s={label.rubric} dispatch={rubricDispatch} />}
          {label.kind === "pairwise" && <PairControls s={label.pair} dispatch={pairDispatch} />}
          <label class="wb-rationale">
            <span class="wb-h">Rationale <span class="muted small">(r)</span></span>
            <textarea ref={rationaleRef} rows={4} maxLength={5000} value={rationale} data-testid="rationale"
              placeholder={task.task_type === "pairwise" ? "Why this choice?" : "What decided your label? (optional)"}
              onInput={(e) => setRationale((e.currentTarget as HTMLTextAreaElement).value)} />
          </label>
          <p class="small muted wb-hint">Press <kbd>?</kbd> for the keyboard shortcuts.</p>
        </aside>
      </div>

      {dialog === "help" && <HelpDialog task={task} onClose={() => setDialog(null)} />}
      {dialog === "skip" && (
        <SkipDialog onClose={() => setDialog(null)} onSkip={(r) => {
          setDialog(null);
          void skip(r);
        }} />
      )}
      {dialog === "confirm" && (
        <ConfirmDialog warnings={warnings} onClose={() => setDialog(null)} onConfirm={() => {
          setDialog(null);
          void submit();
        }} />
      )}
    </div>
  );
}

/** What the single trace is: model, grade, reference answer, size. */
function TraceFacts({ task }: { task: Task }) {
  const t = task.traces[0];
  const grade = t.auto_correct === true ? "correct" : t.auto_correct === false ? "incorrect" : "ungraded";
  return (
    <section class="wb-facts" aria-label="About this trace">
      {task.reference_answer && (
        <div class="wb-ref">
          <span class="wb-h">Reference answer</span>
          <LazyMarkdown text={task.reference_answer} class="wb-md" eager testid="reference-answer" />
        </div>
      )}
      <div class="wb-facts-row">
        <span class={`wb-grade g-${grade}`} data-testid="auto-grade"
          title={t.extracted_answer ? `Extracted answer: ${t.extracted_answer}` : "No answer extracted"}>
          {grade === "correct" ? "✓ Auto-grade: correct" : grade === "incorrect" ? "✗ Auto-grade: incorrect" : "Not auto-graded"}
        </span>
        {t.format_ok === false && <span class="wb-grade g-incorrect">Format check failed</span>}
      </div>
      <dl class="wb-dl small">
        {t.extracted_answer && <><dt>Extracted</dt><dd><code>{t.extracted_answer}</code></dd></>}
        {t.model && <><dt>Model</dt><dd>{t.model}</dd></>}
        {t.usage.reasoning_tokens != null && <><dt>Reasoning</dt><dd>{t.usage.reasoning_tokens.toLocaleString()} tokens</dd></>}
        {t.thinking_ms != null && <><dt>Thought for</dt><dd>{clock(t.thinking_ms / 1000)}</dd></>}
      </dl>
    </section>
  );
}

// ---- dialogs ------------------------------------------------------------------------------

function Modal({ title, onClose, children, testid }: {
  title: string; onClose: () => void; children: preact.ComponentChildren; testid: string;
}) {
  const ref = useRef<HTMLDialogElement>(null);
  useEffect(() => {
    const d = ref.current;
    if (!d) return;
    const back = document.activeElement as HTMLElement | null;
    if (typeof d.showModal === "function" && !d.open) d.showModal();
    else d.setAttribute("open", "");
    return () => back?.focus?.();
  }, []);
  return (
    <dialog ref={ref} class="wb-dialog" aria-label={title} data-testid={testid}
      onCancel={(e) => {
        e.preventDefault();
        onClose();
      }}
      onClick={(e) => e.target === ref.current && onClose()}>
      <div class="wb-dialog-body">
        <h2 class="wb-dialog-title">{title}</h2>
        {children}
      </div>
    </dialog>
  );
}

function HelpDialog({ task, onClose }: { task: Task; onClose: () => void }) {
  return (
    <Modal title="Keyboard shortcuts" onClose={onClose} testid="help">
      <table class="wb-keys">
        <tbody>
          {shortcutSheet(task.task_type).map(([k, what]) => (
            <tr key={k}><th scope="row"><kbd>{k}</kbd></th><td>{what}</td></tr>
          ))}
        </tbody>
      </table>
      <p class="small muted">Shortcuts are off while you type in a text box; <kbd>Esc</kbd> leaves it.</p>
      <div class="wb-dialog-actions">
        <button type="button" class="btn primary" onClick={onClose} autoFocus>Close</button>
      </div>
    </Modal>
  );
}

function SkipDialog({ onClose, onSkip }: { onClose: () => void; onSkip: (reason: string) => void }) {
  const [reason, setReason] = useState("");
  const ok = reason.trim().length > 0;
  return (
    <Modal title="Skip this task" onClose={onClose} testid="skip-dialog">
      <form method="dialog" onSubmit={(e) => {
        e.preventDefault();
        if (ok) onSkip(reason.trim());
      }}>
        <p class="small muted">You will not be offered it again. Why skip it?</p>
        <div class="wb-quick">
          {SKIP_REASONS.map((r) => (
            <button key={r} type="button" class="wb-mini" aria-pressed={reason === r} onClick={() => setReason(r)}>{r}</button>
          ))}
        </div>
        <label class="block">
          <span class="sr-only">Reason</span>
          <textarea rows={3} maxLength={500} value={reason} autoFocus data-testid="skip-reason" class="wb-textarea"
            placeholder="Your reason" onInput={(e) => setReason((e.currentTarget as HTMLTextAreaElement).value)}
            onKeyDown={(e) => {
              if (e.key === "Enter" && !e.shiftKey && ok) {
                e.preventDefault();
                onSkip(reason.trim());
              }
            }} />
        </label>
        <div class="wb-dialog-actions">
          <button type="button" class="btn" onClick={onClose}>Cancel</button>
          <button type="submit" class="btn primary" disabled={!ok} data-testid="skip-confirm">Skip</button>
        </div>
      </form>
    </Modal>
  );
}

function ConfirmDialog({ warnings, onClose, onConfirm }: { warnings: string[]; onClose: () => void; onConfirm: () => void }) {
  return (
    <Modal title="Submit with gaps?" onClose={onClose} testid="confirm-dialog">
      <ul class="wb-warnings">{warnings.map((w) => <li key={w}>{w}</li>)}</ul>
      <div class="wb-dialog-actions">
        <button type="button" class="btn" onClick={onClose}>Keep labelling</button>
        <button type="button" class="btn primary" onClick={onConfirm} autoFocus data-testid="confirm-submit">Submit anyway</button>
      </div>
    </Modal>
  );
}
