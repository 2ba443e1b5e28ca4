// Adjudication: the items whose labels disagree, each annotator's label side by
// side (step labels as a strip of per-unit ratings aligned by unit, first error
// marked; rubric scores; pairwise choices), the trace text, and a form to set the
// final label (take one annotator's, or edit), clear it, or mark the item gold.
import { useEffect, useRef, useState } from "preact/hooks";
import { formatRelative } from "../../lib/format";
import { unitText } from "../annotate/model";
import { notify } from "../pages/Shell";
import type {
  CampaignsApi, Disagreement, ItemDetail, LabelValue, PairwiseValue, RubricValue, StepLabelsValue, TraceView, UnitSpan,
} from "./api";
import { CHOICES, FINISH_REASONS, RUBRIC_DIMENSIONS, TASK_LABELS } from "./api";
import { errText, useLoad } from "./common";
import type { StripCell } from "./shape";
import { CHOICE_TEXT, cleanValue, isPairwiseValue, isStepValue, nextRating, rubricSpread, stripCells } from "./shape";

const RATING_TEXT: Record<string, string> = { "1": "+1 good", "0": "0 okay", "-1": "−1 bad", null: "not rated" };
const RATING_GLYPH: Record<string, string> = { "1": "+", "0": "0", "-1": "−", null: "" };

// ---- the strip -------------------------------------------------------------------------

export function LabelStrip({ cells, who, onCell, editable, active }: {
  cells: StripCell[];
  who: string;
  onCell?: (i: number) => void;
  editable?: boolean;
  active?: number | null;
}) {
  return (
    <div class="strip-cells" role="group" aria-label={`${who}: step ratings`} data-testid="label-strip">
      {cells.map((c) => {
        const text = `${who}, ${c.answer ? "answer" : `step ${c.index + 1}`}: ${c.kind === "missing" ? "no matching step" : RATING_TEXT[String(c.rating)]}${c.firstError ? ", first error" : ""}${c.tags.length ? ` (${c.tags.join(", ")})` : ""}`;
        return (
          <button key={c.index} type="button" class={`sc k-${c.kind}${c.firstError ? " fe" : ""}${c.answer ? " ans" : ""}${active === c.index ? " active" : ""}`}
            aria-label={text} title={text} data-kind={c.kind} data-first-error={c.firstError ? "true" : undefined}
            onClick={() => onCell?.(c.index)} tabIndex={editable || onCell ? 0 : -1}>
            {RATING_GLYPH[String(c.rating)]}
          </button>
        );
      })}
    </div>
  );
}

function UnitAxis({ units }: { units: UnitSpan[] }) {
  return (
    <div class="strip-cells axis-row" aria-hidden="true">
      {units.map((u, i) => <span key={i} class="sc-axis">{u.answer ? "A" : (i + 1) % 5 === 0 || i === 0 ? i + 1 : ""}</span>)}
    </div>
  );
}

// ---- trace text ----------------------------------------------------------------------------

export function TraceText({ trace, active, onUnit, title }: { trace: TraceView; active: number | null; onUnit?: (i: number) => void; title: string }) {
  const box = useRef<HTMLDivElement>(null);
  useEffect(() => {
    if (active === null) return;
    box.current?.querySelector(`[data-unit="${active}"]`)?.scrollIntoView({ block: "nearest" });
  }, [active]);
  const verdict = trace.auto_correct === null ? "not graded" : trace.auto_correct ? "correct" : "incorrect";
  return (
    <div class="trace-box">
      <div class="trace-meta small muted">
        <strong class="trace-title">{title}</strong> · {trace.model} · auto-grade: <span class={`verdict v-${verdict.replace(" ", "-")}`}>{verdict}</span>
        {trace.extracted_answer && <> (answer <code>{trace.extracted_answer}</code>)</>}
      </div>
      <div class="trace-scroll" ref={box} tabIndex={0} aria-label={`${title}: reasoning and answer`}>
        <ol class="trace-units">
          {trace.units.map((u, i) => (
            <li key={i} data-unit={i} class={`tu${active === i ? " active" : ""}${u.answer ? " ans" : ""}`}
              onClick={() => onUnit?.(i)}>
              <span class="tu-n" aria-hidden="true">{u.answer ? "A" : i + 1}</span>
              {/* Unit offsets are Python code points, not UTF-16 indices. */}
              <span class="tu-text">{unitText(trace, u).trim()}</span>
            </li>
          ))}
        </ol>
      </div>
    </div>
  );
}

// ---- editors of the final label -------------------------------------------------------------

function StepEditor({ base, value, onChange, active, setActive }: {
  base: UnitSpan[]; value: StepLabelsValue; onChange: (v: StepLabelsValue) => void; active: number | null; setActive: (i: number) => void;
}) {
  const same = value.units.length === base.length;
  const cells = stripCells(base, value);
  const cycle = (i: number) => {
    setActive(i);
    if (!same) return;
    const steps = value.steps.map((s, j) => (j === i ? { ...s, rating: nextRating(s.rating) } : s));
    onChange({ ...value, steps });
  };
  return (
    <div class="strip-row final">
      <span class="strip-who">Final</span>
      <LabelStrip cells={cells} who="Final label" onCell={cycle} editable active={active} />
      <label class="finish">
        <span class="sr-only">Finish reason</span>
        <select class="select" value={value.finish_reason} data-testid="final-finish"
          onChange={(e) => onChange({ ...value, finish_reason: (e.currentTarget as HTMLSelectElement).value as StepLabelsValue["finish_reason"] })}>
          {FINISH_REASONS.map((f) => <option key={f} value={f}>{f.replace("_", " ")}</option>)}
        </select>
      </label>
      {!same && <span class="small muted">Edited segmentation: pick another label to edit ratings.</span>}
    </div>
  );
}

function ScoreSelect({ value, onChange, label, options }: { value: string; onChange: (v: string) => void; label: string; options: [string, string][] }) {
  return (
    <select class="select" aria-label={label} value={value} onChange={(e) => onChange((e.currentTarget as HTMLSelectElement).value)}>
      {options.map(([v, t]) => <option key={v} value={v}>{t}</option>)}
    </select>
  );
}

// ---- one item ------------------------------------------------------------------------------

function ItemPanel({ api, itemId, onChanged }: { api: CampaignsApi; itemId: number; onChanged: (d: ItemDetail) => void }) {
  const item = useLoad(() => api.item(itemId), [itemId]);
  const [draft, setDraft] = useState<LabelValue | null>(null);
  const [from, setFrom] = useState<string | null>(null);
  const [note, setNote] = useState("");
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const [active, setActive] = useState<number | null>(null);

  useEffect(() => {
    const d = item.data;
    if (!d) return;
    setDraft(d.adjudication ? cleanValue(d.task_type, d.adjudication.value) : null);
    setFrom(d.adjudication ? "saved" : null);
    setNote(d.adjudication?.note ?? "");
    setError(null);
  }, [item.data]);

  if (item.loading) return <p class="muted">Loading the item…</p>;
  if (item.error || !item.data) return <p class="error-text" role="alert">{item.error ?? "Not found."}</p>;
  const d = item.data;

  const run = async (what: string, fn: () => Promise<ItemDetail | null>) => {
    setBusy(true);
    setError(null);
    try {
      const res = (await fn()) ?? (await api.item(d.id));
      item.set(res);
      onChanged(res);
      notify("success", what, `Item ${d.id}`);
    } catch (e) {
      setError(errText(e));
    } finally {
      setBusy(false);
    }
  };
  const save = () => draft && run("Final label saved", () => api.adjudicate(d.id, cleanValue(d.task_type, draft), note));
  const clear = () => run("Final label cleared", () => api.clearAdjudication(d.id));
  const gold = () => draft && run("Marked as gold", () => api.setGold(d.id, cleanValue(d.task_type, draft)));
  const ungold = () => run("No longer gold", () => api.clearGold(d.id));
  const take = (label: { annotator: string; value: LabelValue }) => {
    setDraft(cleanValue(d.task_type, label.value));
    setFrom(label.annotator);
  };
  const base = d.traces[0]?.units ?? [];

  return (
    <div class="item-panel" data-testid="adjudication-item" data-item-id={String(d.id)}>
      <header class="item-head">
        <div>
          <h4 class="item-title">Item {d.id} · {TASK_LABELS[d.task_type]}</h4>
          <div class="small muted">
            {d.labels.length} labels{d.is_gold ? " · gold item" : ""}
            {d.adjudication && <> · final label by {d.adjudication.adjudicator}, {formatRelative(d.adjudication.updated_at)}</>}
          </div>
        </div>
        {d.is_gold && <span class="badge gold">gold</span>}
      </header>
      <details class="prompt-box" open>
        <summary>Prompt</summary>
        <p class="prompt-text">{d.prompt}</p>
        {d.reference_answer && <p class="small"><span class="muted">Reference answer:</span> <code>{d.reference_answer}</code></p>}
      </details>

      {d.task_type === "step_labels" && (
        <div class="strips" data-testid="step-strips">
          <div class="strip-row">
            <span class="strip-who muted small">Step</span>
            <UnitAxis units={base} />
          </div>
          {d.labels.map((l) => isStepValue(l.value) && (
            <div class="strip-row" key={l.annotator}>
              <span class="strip-who" title={l.summary}>{l.annotator}</span>
              <LabelStrip cells={stripCells(base, l.value)} who={l.annotator} onCell={setActive} active={active} />
              <span class="small muted strip-sum">{l.summary}</span>
              <button type="button" class="btn small-btn" data-testid="use-label" onClick={() => take(l)}>Use</button>
            </div>
          ))}
          {draft && isStepValue(draft) && (
            <StepEditor base={base} value={draft} onChange={setDraft} active={active} setActive={setActive} />
          )}
          <p class="small muted legend-line">
            <span class="sc k-good mini" /> +1 <span class="sc k-okay mini" /> 0 <span class="sc k-bad mini" /> −1
            <span class="sc k-unrated mini" /> not rated <span class="sc k-bad fe mini" /> first error. Click a cell to show its step;
            in the final row, clicking cycles +1 → 0 → −1 → not rated.
          </p>
        </div>
      )}

      {d.task_type === "rubric" && (
        <div class="table-wrap">
          <table class="data-table compare" data-testid="rubric-compare">
            <thead>
              <tr><th scope="col">Annotator</th>{RUBRIC_DIMENSIONS.map((dim) => <th key={dim} scope="col" class="num">{dim}</th>)}<th scope="col">Rationale</th><th /></tr>
            </thead>
            <tbody>
              {(() => {
                const spread = rubricSpread(d.labels.map((l) => l.value as RubricValue));
                return d.labels.map((l) => {
                  const v = l.value as RubricValue;
                  return (
                    <tr key={l.annotator}>
                      <th scope="row">{l.annotator}</th>
                      {RUBRIC_DIMENSIONS.map((dim) => <td key={dim} class={`num${spread[dim] > 1 ? " differs" : ""}`}>{v[dim]}</td>)}
                      <td class="small">{v.rationale}</td>
                      <td class="actions"><button type="button" class="btn small-btn" data-testid="use-label" onClick={() => take(l)}>Use</button></td>
                    </tr>
                  );
                });
              })()}
              {draft && !isStepValue(draft) && !isPairwiseValue(draft) && (
                <tr class="final-row">
                  <th scope="row">Final</th>
                  {RUBRIC_DIMENSIONS.map((dim) => (
                    <td key={dim} class="num">
                      <ScoreSelect label={`Final ${dim}`} value={String((draft as RubricValue)[dim])}
                        options={[1, 2, 3, 4, 5].map((n) => [String(n), String(n)])}
                        onChange={(v) => setDraft({ ...(draft as RubricValue), [dim]: Number(v) })} />
                    </td>
                  ))}
                  <td colSpan={2} />
                </tr>
              )}
            </tbody>
          </table>
        </div>
      )}

      {d.task_type === "pairwise" && (
        <div class="table-wrap">
          <table class="data-table compare" data-testid="pairwise-compare">
            <thead><tr><th scope="col">Annotator</th><th scope="col">Reasoning</th><th scope="col">Answer</th><th scope="col">Rationale</th><th /></tr></thead>
            <tbody>
              {d.labels.map((l) => {
                const v = l.value as PairwiseValue;
                return (
                  <tr key={l.annotator}>
                    <th scope="row">{l.annotator}</th>
                    <td><span class={`choice ch-${v.reasoning}`}>{CHOICE_TEXT[v.reasoning]}</span></td>
                    <td><span class={`choice ch-${v.answer}`}>{CHOICE_TEXT[v.answer]}</span></td>
                    <td class="small">{v.rationale}</td>
                    <td class="actions"><button type="button" class="btn small-btn" data-testid="use-label" onClick={() => take(l)}>Use</button></td>
                  </tr>
                );
              })}
              {draft && isPairwiseValue(draft) && (
                <tr class="final-row">
                  <th scope="row">Final</th>
                  {(["reasoning", "answer"] as const).map((part) => (
                    <td key={part}>
                      <ScoreSelect label={`Final ${part}`} value={draft[part]} options={CHOICES.map((c) => [c, CHOICE_TEXT[c]])}
                        onChange={(v) => setDraft({ ...draft, [part]: v as PairwiseValue["reasoning"] })} />
                    </td>
                  ))}
                  <td colSpan={2} />
                </tr>
              )}
            </tbody>
          </table>
        </div>
      )}

      <details class="traces" open={d.task_type === "step_labels"}>
        <summary>Trace text{d.traces.length > 1 ? "s (A and B)" : ""}</summary>
        <div class={`trace-grid n${d.traces.length}`}>
          {d.traces.map((t, i) => (
            <TraceText key={t.id} trace={t} title={d.traces.length > 1 ? `Trace ${i === 0 ? "A" : "B"}` : "Trace"}
              active={d.task_type === "step_labels" ? active : null} onUnit={d.task_type === "step_labels" ? setActive : undefined} />
          ))}
        </div>
      </details>

      <div class="final-form">
        <label class="fld">
          <span class="fld-label">Note <span class="muted">(why this is the final label)</span></span>
          <textarea class="textarea" rows={2} maxLength={5000} value={note} data-testid="adjudication-note"
            onInput={(e) => setNote((e.currentTarget as HTMLTextAreaElement).value)} />
        </label>
        {!draft && <p class="small muted">Pick an annotator's label with “Use”, then edit it if needed.</p>}
        {draft && from && from !== "saved" && <p class="small muted">Starting from {from}'s label.</p>}
        {error && <p class="error-text" role="alert" data-testid="adjudication-error">{error}</p>}
        <div class="form-actions">
          <button type="button" class="btn primary" disabled={busy || !draft} data-testid="save-adjudication" onClick={save}>Save final label</button>
          {d.adjudication && <button type="button" class="btn" disabled={busy} data-testid="clear-adjudication" onClick={clear}>Clear final label</button>}
          <span class="spacer" />
          {d.is_gold
            ? <button type="button" class="btn" disabled={busy} data-testid="unmark-gold" onClick={ungold}>Unmark gold</button>
            : <button type="button" class="btn" disabled={busy || !draft} data-testid="mark-gold" onClick={gold}
              title="Serve this item to every annotator, unannounced, and score them against this label">Mark gold with this label</button>}
        </div>
      </div>
    </div>
  );
}

// ---- the section ------------------------------------------------------------------------------

export function Adjudication({ api, campaignId, onChanged }: { api: CampaignsApi; campaignId: string; onChanged: () => void }) {
  const list = useLoad<Disagreement[]>(() => api.disagreements(campaignId), [campaignId]);
  const [open, setOpen] = useState<number | null>(null);
  const [filter, setFilter] = useState<"open" | "all">("open");
  const rows = (list.data ?? []).filter((r) => filter === "all" || !r.adjudicated);
  const pending = (list.data ?? []).filter((r) => !r.adjudicated).length;
  useEffect(() => {
    if (open === null && rows.length) setOpen(rows[0].item_id);
  }, [list.data]);
  const onKey = (e: KeyboardEvent) => {
    if (e.key !== "ArrowDown" && e.key !== "ArrowUp") return;
    const i = rows.findIndex((r) => r.item_id === open);
    const j = Math.max(0, Math.min(rows.length - 1, i + (e.key === "ArrowDown" ? 1 : -1)));
    if (rows[j]) {
      e.preventDefault();
      setOpen(rows[j].item_id);
      (e.currentTarget as HTMLElement).querySelector<HTMLElement>(`[data-item="${rows[j].item_id}"]`)?.focus();
    }
  };
  return (
    <section class="card wide adjudication" id="adjudication" aria-labelledby="adj-h" data-testid="adjudication">
      <header class="card-head">
        <div>
          <h3 id="adj-h" class="card-title">Disagreements</h3>
          <div class="card-sub small muted">
            Items whose labels disagree (rubric: by more than a point). The final label is what exports use.
          </div>
        </div>
        <div class="seg" role="group" aria-label="Show">
          <button type="button" class={`chip-btn${filter === "open" ? " on" : ""}`} aria-pressed={filter === "open"} onClick={() => setFilter("open")}>
            To settle ({pending})
          </button>
          <button type="button" class={`chip-btn${filter === "all" ? " on" : ""}`} aria-pressed={filter === "all"} onClick={() => setFilter("all")}>
            All ({list.data?.length ?? 0})
          </button>
        </div>
      </header>
      {list.error && <p class="error-text" role="alert">{list.error}</p>}
      {list.loading && <p class="muted">Loading…</p>}
      {!list.loading && !list.data?.length && !list.error && (
        <p class="muted empty-row" data-testid="no-disagreements">
          No disagreements yet: labels agree, or items have fewer than two labels.
        </p>
      )}
      {(list.data?.length ?? 0) > 0 && (
        <div class="adj-layout">
          {rows.length === 0 && (
            <p class="muted small adj-done" data-testid="no-disagreements">Every disagreement has a final label.</p>
          )}
          <ul class="adj-list" role="listbox" aria-label="Items that disagree" onKeyDown={onKey} hidden={rows.length === 0}>
            {rows.map((r) => (
              <li key={r.item_id} role="option" aria-selected={open === r.item_id} tabIndex={open === r.item_id ? 0 : -1}
                data-item={r.item_id} data-testid="disagreement-row" class={`adj-row${open === r.item_id ? " on" : ""}`}
                onClick={() => setOpen(r.item_id)} onKeyDown={(e) => (e.key === "Enter" || e.key === " ") && (e.preventDefault(), setOpen(r.item_id))}>
                <span class="adj-row-head">
                  <strong>Item {r.item_id}</strong>
                  <span class={`task-chip t-${r.task_type}`}>{TASK_LABELS[r.task_type]}</span>
                  {r.adjudicated && <span class="badge st-active" data-testid="adjudicated">settled</span>}
                </span>
                <span class="adj-sums small muted">
                  {r.labels.map((l) => <span key={l.annotator}><b>{l.annotator}</b>: {l.summary}</span>)}
                </span>
              </li>
            ))}
          </ul>
          <div class="adj-detail">
            {open !== null && (
              <ItemPanel key={open} api={api} itemId={open} onChanged={(d) => {
                list.set((list.data ?? []).map((r) => (r.item_id === d.id ? { ...r, adjudicated: !!d.adjudication, adjudication: d.adjudication?.value ?? null } : r)));
                onChanged();
              }} />
            )}
          </div>
        </div>
      )}
    </section>
  );
}
