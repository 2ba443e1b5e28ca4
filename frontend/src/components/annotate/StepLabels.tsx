// Step labels: the trace's units (leaf steps, then the answer), each rated −1/0/+1
// with tags and a note; merge and split fix the segmentation in place.
import { Fragment } from "preact";
import { useEffect, useLayoutEffect, useMemo, useRef, useState } from "preact/hooks";
import { KIND_LABEL } from "../../lib/steps";
import { memo } from "../../lib/memo";
import { KindIcon } from "../icons";
import { LazyMarkdown } from "./LazyMarkdown";
import type { LUnit, Rating, StepAction, StepMark, StepState, Tag, TraceView } from "./model";
import {
  FINISH_LABEL, FINISH_REASONS, RATING_LABEL, TAGS, TAG_LABEL, cpToUtf16, finishReason, firstError, lockedFrom,
  ratedCount, solutionBlocked, splitPoints, unitText, utf16ToCp,
} from "./model";

/** Steps longer than this start folded. */
export const LONG_UNIT = 1400;

const RATINGS: Array<{ r: Rating; sym: string; key: string }> = [
  { r: -1, sym: "−1", key: "1" },
  { r: 0, sym: "0", key: "2" },
  { r: 1, sym: "+1", key: "3" },
];

export interface StepUi {
  tagsOpen: boolean;
  noteOpen: number | null;
  splitting: number | null;
  /** Unit start offsets the annotator unfolded (or folded, for short ones). */
  toggled: Set<number>;
}

interface RowProps {
  i: number;
  unit: LUnit;
  mark: StepMark;
  text: string;
  locked: boolean;
  current: boolean;
  firstErr: boolean;
  folded: boolean;
  long: boolean;
  tagsOpen: boolean;
  noteOpen: boolean;
  canMerge: boolean;
  dispatch: (a: StepAction) => void;
  ui: (a: UiAction) => void;
}

export type UiAction =
  | { type: "tags"; i: number }
  | { type: "note"; i: number }
  | { type: "split"; i: number }
  | { type: "fold"; start: number };

/** A title worth showing: the segmenter's titles often just repeat the step's first words. */
export function showTitle(title: string, text: string): boolean {
  const t = title.replace(/…$/, "").trim();
  return t !== "" && !text.trimStart().startsWith(t.slice(0, 24));
}

function UnitRowImpl(p: RowProps) {
  const { i, unit, mark } = p;
  const kind = unit.answer ? "answer" : unit.kind;
  const label = unit.answer ? "Final answer" : KIND_LABEL[kind] ?? kind;
  return (
    <li
      class={`wb-unit${p.current ? " current" : ""}${p.locked ? " locked" : ""}${p.firstErr ? " first-error" : ""}${mark.rating !== null && !p.locked ? ` rated r${mark.rating}` : ""}`}
      data-testid="unit" data-unit-index={i} data-rating={mark.rating === null ? "" : String(mark.rating)}
      data-locked={p.locked ? "true" : undefined} aria-current={p.current ? "step" : undefined}
      onClick={(e) => {
        if (!(e.target as HTMLElement).closest("button, textarea, a, input")) p.dispatch({ type: "cursor", i });
      }}
    >
      <div class="wb-unit-head">
        <span class="wb-unit-n" aria-hidden="true">{i + 1}</span>
        <span class={`wb-kind k-${kind}`}>
          <KindIcon kind={kind} size={13} />
          {label}
        </span>
        {showTitle(unit.title, p.text) && <span class="wb-unit-title" title={unit.title}>{unit.title}</span>}
        <span class="spacer" />
        <div class="wb-rate" role="group" aria-label={`Rating of step ${i + 1}`}>
          {RATINGS.map(({ r, sym, key }) => (
            <button key={r} type="button" class={`wb-rate-btn r${r}`} aria-pressed={mark.rating === r}
              disabled={p.locked} data-testid={`rate-${r}`} title={`${RATING_LABEL[String(r)]} (${key})`}
              aria-label={`${RATING_LABEL[String(r)]} (${sym})`}
              onClick={() => p.dispatch({ type: "rate", i, rating: mark.rating === r ? null : r })}>
              {sym}
            </button>
          ))}
        </div>
        <button type="button" class={`wb-mini${mark.tags.length ? " on" : ""}`} aria-expanded={p.tagsOpen}
          disabled={p.locked} onClick={() => p.ui({ type: "tags", i })} title="Tags (t)">
          Tags{mark.tags.length ? ` · ${mark.tags.length}` : ""}
        </button>
        <button type="button" class={`wb-mini${mark.note ? " on" : ""}`} aria-expanded={p.noteOpen}
          onClick={() => p.ui({ type: "note", i })} title="Note (c)">Note</button>
        {!unit.answer && (
          <details class="wb-more">
            <summary class="wb-mini" title="Fix the segmentation">Edit</summary>
            <div class="wb-more-menu">
              <button type="button" class="wb-mini" disabled={!p.canMerge}
                onClick={(e) => {
                  (e.currentTarget as HTMLElement).closest("details")?.removeAttribute("open");
                  p.dispatch({ type: "merge", i });
                }}>Merge with next (m)</button>
              <button type="button" class="wb-mini"
                onClick={(e) => {
                  (e.currentTarget as HTMLElement).closest("details")?.removeAttribute("open");
                  p.ui({ type: "split", i });
                }}>Split… (s)</button>
            </div>
          </details>
        )}
      </div>
      {p.tagsOpen && (
        <div class="wb-tags" role="group" aria-label={`Tags of step ${i + 1}`} data-testid="tags-menu">
          {TAGS.map((t, n) => (
            <button key={t} type="button" class="wb-tag" aria-pressed={mark.tags.includes(t)}
              onClick={() => p.dispatch({ type: "toggleTag", i, tag: t })}>
              <kbd>{n + 1}</kbd> {TAG_LABEL[t]}
            </button>
          ))}
        </div>
      )}
      {!p.tagsOpen && mark.tags.length > 0 && (
        <ul class="wb-chips" aria-label="Tags">
          {mark.tags.map((t: Tag) => <li key={t} class={`wb-chip t-${t}`}>{TAG_LABEL[t]}</li>)}
        </ul>
      )}
      <div class={`wb-unit-body${p.folded ? " folded" : ""}`}>
        <LazyMarkdown text={p.text} class="wb-md" eager={unit.answer} />
      </div>
      {p.long && (
        <button type="button" class="ghost small wb-fold" aria-expanded={!p.folded}
          onClick={() => p.ui({ type: "fold", start: unit.start })}>
          {p.folded ? `Show all ${p.text.length.toLocaleString()} characters (o)` : "Fold (o)"}
        </button>
      )}
      {p.noteOpen && (
        <label class="wb-note">
          <span class="sr-only">Note on step {i + 1}</span>
          <textarea rows={2} maxLength={1000} placeholder="Why this rating? (optional)" value={mark.note}
            data-testid="unit-note" onInput={(e) => p.dispatch({ type: "note", i, note: (e.currentTarget as HTMLTextAreaElement).value })} />
        </label>
      )}
    </li>
  );
}

const UnitRow = memo(UnitRowImpl);

// ---- split ----------------------------------------------------------------------------

export interface SplitApi {
  move(by: number): void;
  confirm(): void;
}

/** Choose where to split a unit: a sentence boundary (←/→) or a click in the text. */
export function SplitPanel({ trace, unit, onSplit, onCancel, apiRef }: {
  trace: TraceView; unit: LUnit; onSplit: (at: number) => void; onCancel: () => void;
  apiRef: { current: SplitApi | null };
}) {
  const points = useMemo(() => splitPoints(trace.reasoning, unit), [trace.reasoning, unit]);
  const [at, setAt] = useState<number | null>(points.length ? points[Math.floor((points.length - 1) / 2)] : null);
  const textRef = useRef<HTMLDivElement>(null);
  const base = cpToUtf16(trace.reasoning, unit.start);
  const text = unitText(trace, unit);

  apiRef.current = {
    move(by: number) {
      if (!points.length) return;
      const idx = at === null ? -1 : points.findIndex((p) => p >= at);
      const cur = idx < 0 ? (by > 0 ? -1 : points.length) : points[idx] === at ? idx : by > 0 ? idx - 1 : idx;
      setAt(points[Math.max(0, Math.min(points.length - 1, cur + by))]);
    },
    confirm() {
      if (at !== null) onSplit(at);
    },
  };

  useEffect(() => {
    textRef.current?.querySelector(".wb-split-mark")?.scrollIntoView({ block: "nearest" });
  }, [at]);

  const onClickText = () => {
    const sel = window.getSelection();
    const box = textRef.current;
    if (!sel || !box || !sel.anchorNode || !box.contains(sel.anchorNode)) return;
    const r = document.createRange();
    r.setStart(box, 0);
    r.setEnd(sel.anchorNode, sel.anchorOffset);
    const offset = r.toString().length;
    const cp = utf16ToCp(trace.reasoning, base + offset);
    if (cp > unit.start && cp < unit.end) setAt(cp);
  };

  const cut = at === null ? -1 : cpToUtf16(trace.reasoning, at) - base;
  return (
    <div class="wb-split" role="dialog" aria-label="Split the step" data-testid="split-panel">
      <p class="small muted wb-split-help">
        Split at a sentence boundary with <kbd>←</kbd> <kbd>→</kbd>, or click in the text to split at that point.
        <kbd>Enter</kbd> splits, <kbd>Esc</kbd> cancels.
      </p>
      <div class="wb-split-text" ref={textRef} onMouseUp={onClickText}>
        {cut < 0 ? text : (
          <>
            <span class="wb-split-a">{text.slice(0, cut)}</span>
            <span class="wb-split-mark" aria-label="split here" />
            <span class="wb-split-b">{text.slice(cut)}</span>
          </>
        )}
      </div>
      <div class="wb-split-actions">
        <button type="button" class="btn small-btn" onClick={() => apiRef.current?.move(-1)} disabled={!points.length}>← Earlier</button>
        <button type="button" class="btn small-btn" onClick={() => apiRef.current?.move(1)} disabled={!points.length}>Later →</button>
        <span class="spacer" />
        <button type="button" class="btn small-btn" onClick={onCancel}>Cancel</button>
        <button type="button" class="btn small-btn primary" disabled={at === null} data-testid="split-confirm"
          onClick={() => at !== null && onSplit(at)}>Split here</button>
      </div>
    </div>
  );
}

// ---- the list ------------------------------------------------------------------------

export function StepList({ trace, s, dispatch, ui, uiState, splitApi }: {
  trace: TraceView; s: StepState; dispatch: (a: StepAction) => void; ui: (a: UiAction) => void;
  uiState: StepUi; splitApi: { current: SplitApi | null };
}) {
  const locked = lockedFrom(s);
  const fe = firstError(s);
  // Texts are sliced once per segmentation, not on every rating.
  const texts = useMemo(() => s.units.map((u) => unitText(trace, u)), [trace, s.units]);
  const listRef = useRef<HTMLOListElement>(null);
  const first = useRef(true);

  useLayoutEffect(() => {
    const el = listRef.current?.querySelector<HTMLElement>(`[data-unit-index="${s.cursor}"]`);
    if (!el) return;
    if (first.current) {
      first.current = false;
      if (s.cursor === 0) return;
    }
    el.scrollIntoView({ block: "nearest" });
  }, [s.cursor, s.units]);

  return (
    <ol class="wb-units" ref={listRef} data-testid="units" aria-label="Steps of the reasoning">
      {s.units.map((u, i) => {
        const long = texts[i].length > LONG_UNIT;
        const folded = long !== uiState.toggled.has(u.start) && !u.answer;
        return (
          <Fragment key={`${u.start}-${u.end}-${u.answer}`}>
            <UnitRow i={i} unit={u} mark={s.marks[i]} text={texts[i]}
              locked={i >= locked} current={i === s.cursor} firstErr={i === fe} folded={folded} long={long && !u.answer}
              tagsOpen={uiState.tagsOpen && i === s.cursor} noteOpen={uiState.noteOpen === i || s.marks[i].note !== ""}
              canMerge={!!s.units[i + 1] && !s.units[i + 1].answer} dispatch={dispatch} ui={ui} />
            {uiState.splitting === i && (
              <li key={`split-${u.start}`} class="wb-split-row">
                <SplitPanel trace={trace} unit={u} apiRef={splitApi}
                  onSplit={(at) => {
                    dispatch({ type: "split", i, at });
                    ui({ type: "split", i: -1 });
                  }}
                  onCancel={() => ui({ type: "split", i: -1 })} />
              </li>
            )}
          </Fragment>
        );
      })}
    </ol>
  );
}

// ---- the side panel -----------------------------------------------------------------------

export function StepControls({ s, dispatch }: { s: StepState; dispatch: (a: StepAction) => void }) {
  const reason = finishReason(s);
  const { rated, total } = ratedCount(s);
  const fe = firstError(s);
  const noSolution = solutionBlocked(s);
  return (
    <div class="wb-controls">
      <label class="wb-check">
        <input type="checkbox" checked={s.stop} data-testid="stop-at-first-error"
          onChange={(e) => dispatch({ type: "stop", on: (e.currentTarget as HTMLInputElement).checked })} />
        <span>
          Stop at the first error
          <span class="block small muted">After a −1 the later steps are greyed out and sent unrated.</span>
        </span>
      </label>
      <fieldset class="wb-finish">
        <legend>Finish reason <span class="muted small">(f)</span></legend>
        {FINISH_REASONS.map((r) => {
          const off = r === "solution" && noSolution !== null && reason !== "solution";
          return (
            <label key={r} class={`wb-radio${reason === r ? " on" : ""}${off ? " off" : ""}`} title={off ? noSolution : undefined}>
              <input type="radio" name="finish" value={r} checked={reason === r} data-testid={`finish-${r}`} disabled={off}
                aria-describedby={off ? "wb-no-solution" : undefined}
                onChange={() => dispatch({ type: "finish", reason: r })} />
              <span>{FINISH_LABEL[r]}</span>
            </label>
          );
        })}
        {noSolution && (reason === "solution" || lockedFrom(s) < s.units.length) && (
          <p id="wb-no-solution" class={`small ${reason === "solution" ? "warn" : "muted"} wb-finish-hint`} data-testid="solution-hint">
            {noSolution}
          </p>
        )}
        {s.finish && (
          <button type="button" class="ghost small" onClick={() => dispatch({ type: "finish", reason: null })}>
            Derive it from the ratings
          </button>
        )}
      </fieldset>
      <p class="small muted wb-status-line" data-testid="step-summary">
        {rated} of {total} rated{fe >= 0 ? ` · first error at step ${fe + 1}` : ""}{s.edited ? " · segmentation edited" : ""}
      </p>
    </div>
  );
}
