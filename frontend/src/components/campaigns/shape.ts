// Pure shaping for the campaign pages: agreement rows for the charts, threshold
// bands, the per-unit label strip, export URLs and form validation. No DOM here.
import type {
  Agreement, AnnotatorStats, CampaignDetail, LabelValue, NewCampaign, PairwiseValue, RubricValue,
  Snapshot, StepLabelsValue, TaskType, UnitSpan,
} from "./api";
import { RUBRIC_DIMENSIONS, TASK_LABELS } from "./api";

// ---- agreement ----------------------------------------------------------------------

/** Krippendorff (2004): α ≥ 0.8 reliable; 0.667 ≤ α < 0.8 only tentative conclusions. */
export const ALPHA_TENTATIVE = 0.667;
export const ALPHA_RELIABLE = 0.8;

export type Band = "reliable" | "tentative" | "low" | "none";

export function alphaBand(alpha: number | null | undefined): Band {
  if (alpha === null || alpha === undefined || !Number.isFinite(alpha)) return "none";
  if (alpha >= ALPHA_RELIABLE) return "reliable";
  if (alpha >= ALPHA_TENTATIVE) return "tentative";
  return "low";
}

export const BAND_TEXT: Record<Band, string> = {
  reliable: "reliable",
  tentative: "tentative",
  low: "below 0.667",
  none: "not computable yet",
};

export interface AgreementRow {
  /** Stable key, e.g. "rubric.correctness". */
  key: string;
  task: TaskType;
  label: string;
  level: "ordinal" | "nominal";
  alpha: number | null;
  raw: number | null;
  /** Step labels only. */
  firstExact?: number | null;
  firstWithin1?: number | null;
  items: number;
}

const cap = (s: string) => s.charAt(0).toUpperCase() + s.slice(1);

/** One row per task type (and rubric dimension, pairwise part) the campaign asks for. */
export function agreementRows(agreement: Agreement | null | undefined, taskTypes: TaskType[]): AgreementRow[] {
  if (!agreement) return [];
  const rows: AgreementRow[] = [];
  if (taskTypes.includes("step_labels")) {
    const s = agreement.step_labels;
    rows.push({
      key: "step_labels", task: "step_labels", label: TASK_LABELS.step_labels, level: "ordinal",
      alpha: s?.alpha ?? null, raw: s?.raw ?? null, firstExact: s?.first_error_exact ?? null,
      firstWithin1: s?.first_error_within_1 ?? null, items: s?.items ?? 0,
    });
  }
  if (taskTypes.includes("rubric")) {
    for (const d of RUBRIC_DIMENSIONS) {
      const r = agreement.rubric?.[d];
      rows.push({
        key: `rubric.${d}`, task: "rubric", label: `Rubric · ${d}`, level: "ordinal",
        alpha: r?.alpha ?? null, raw: r?.raw ?? null, items: r?.items ?? 0,
      });
    }
  }
  if (taskTypes.includes("pairwise")) {
    for (const part of ["reasoning", "answer"] as const) {
      const p = agreement.pairwise?.[part];
      rows.push({
        key: `pairwise.${part}`, task: "pairwise", label: `Pairwise · ${part}`, level: "nominal",
        alpha: p?.alpha ?? null, raw: p?.raw ?? null, items: p?.items ?? 0,
      });
    }
  }
  return rows.map((r) => ({ ...r, label: cap(r.label) }));
}

/** The x domain of an α chart: always 0..1, stretched left when some α is negative. */
export function alphaDomain(values: (number | null)[]): [number, number] {
  const lo = Math.min(0, ...values.filter((v): v is number => v !== null && Number.isFinite(v)));
  return [lo < 0 ? Math.max(-1, Math.floor(lo * 4) / 4) : 0, 1];
}

export function fmtRatio(v: number | null | undefined, digits = 2): string {
  return v === null || v === undefined || !Number.isFinite(v) ? "–" : v.toFixed(digits);
}

export function fmtPct(v: number | null | undefined): string {
  return v === null || v === undefined || !Number.isFinite(v) ? "–" : `${Math.round(v * 100)}%`;
}

// ---- progress ----------------------------------------------------------------------

export interface ProgressPart {
  task: TaskType;
  label: string;
  labels: number;
  needed: number;
  fraction: number;
}

export function progressParts(c: Pick<CampaignDetail, "items_by_type" | "task_types">): ProgressPart[] {
  return c.task_types.map((t) => {
    const n = c.items_by_type?.[t];
    const labels = n?.labels ?? 0;
    const needed = n?.needed ?? 0;
    return { task: t, label: TASK_LABELS[t], labels, needed, fraction: needed ? Math.min(1, labels / needed) : 0 };
  });
}

// ---- annotators ----------------------------------------------------------------------

export interface BarRow {
  label: string;
  value: number;
  text: string;
}

export function annotatorBars(
  stats: AnnotatorStats[], pick: (a: AnnotatorStats) => number | null, fmt: (v: number) => string,
): BarRow[] {
  return stats
    .map((a) => ({ a, v: pick(a) }))
    .filter((x): x is { a: AnnotatorStats; v: number } => x.v !== null && Number.isFinite(x.v))
    .map(({ a, v }) => ({ label: a.username, value: v, text: fmt(v) }));
}

// ---- label strip -----------------------------------------------------------------------

export type CellKind = "good" | "okay" | "bad" | "unrated" | "missing";

export interface StripCell {
  /** Index of the unit of the trace (the common axis). */
  index: number;
  kind: CellKind;
  rating: -1 | 0 | 1 | null;
  /** The first unit this label rated −1. */
  firstError: boolean;
  answer: boolean;
  tags: string[];
}

function cellKind(r: -1 | 0 | 1 | null | undefined): CellKind {
  if (r === 1) return "good";
  if (r === 0) return "okay";
  if (r === -1) return "bad";
  return "unrated";
}

/** Index of the unit of `units` that holds character `at` (answer units match the answer). */
function unitAt(units: UnitSpan[], at: UnitSpan): number {
  if (at.answer) return units.findIndex((u) => u.answer);
  return units.findIndex((u) => !u.answer && u.start <= at.start && at.start < u.end);
}

/**
 * One cell per unit of the trace (`base`), so labels made on the same segmentation
 * line up cell for cell. A label whose annotator merged or split steps is mapped
 * onto the base units by where each base unit starts.
 */
export function stripCells(base: UnitSpan[], value: StepLabelsValue): StripCell[] {
  const same =
    value.units.length === base.length &&
    value.units.every((u, i) => u.answer === base[i].answer && (u.answer || (u.start === base[i].start && u.end === base[i].end)));
  const first = value.steps.findIndex((s) => s.rating === -1);
  let marked = false;
  return base.map((b, i) => {
    const j = same ? i : unitAt(value.units, b);
    const step = j >= 0 ? value.steps[j] : undefined;
    // Mark the first base unit that falls in the label's first error, once.
    const firstError = !marked && first >= 0 && j === first;
    if (firstError) marked = true;
    return {
      index: i,
      kind: step ? cellKind(step.rating) : "missing",
      rating: step?.rating ?? null,
      firstError,
      answer: b.answer,
      tags: step?.tags ?? [],
    };
  });
}

export function firstErrorIndex(value: StepLabelsValue): number | null {
  const i = value.steps.findIndex((s) => s.rating === -1);
  return i < 0 ? null : i;
}

/** Cycle a step rating the way the workbench keys do: unrated → +1 → 0 → −1 → unrated. */
export function nextRating(r: -1 | 0 | 1 | null): -1 | 0 | 1 | null {
  if (r === null) return 1;
  if (r === 1) return 0;
  if (r === 0) return -1;
  return null;
}

/** Columns of a rubric comparison where the annotators differ by more than one point. */
export function rubricSpread(values: RubricValue[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const d of RUBRIC_DIMENSIONS) {
    const xs = values.map((v) => v[d]).filter((x) => typeof x === "number");
    out[d] = xs.length ? Math.max(...xs) - Math.min(...xs) : 0;
  }
  return out;
}

export function isStepValue(v: LabelValue): v is StepLabelsValue {
  return typeof v === "object" && v !== null && Array.isArray((v as StepLabelsValue).steps);
}

export function isPairwiseValue(v: LabelValue): v is PairwiseValue {
  return typeof v === "object" && v !== null && "reasoning" in v && "answer" in v;
}

export const CHOICE_TEXT: Record<string, string> = { a: "A", b: "B", tie: "Tie", both_bad: "Both bad" };

/** A copy fit to send back as an adjudication or gold value (no UI-only fields). */
export function cleanValue(task: TaskType, v: LabelValue): LabelValue {
  if (task === "step_labels" && isStepValue(v)) {
    return {
      units: v.units.map((u) => ({ start: u.start, end: u.end, answer: u.answer })),
      segmentation_edited: v.segmentation_edited ?? false,
      steps: v.steps.map((s) => ({ rating: s.rating, tags: [...(s.tags ?? [])], note: s.note ?? "" })),
      finish_reason: v.finish_reason,
      rationale: v.rationale ?? "",
    };
  }
  return JSON.parse(JSON.stringify(v)) as LabelValue;
}

// ---- the new-campaign form --------------------------------------------------------------

export interface CampaignDraft {
  name: string;
  description: string;
  task_types: TaskType[];
  overlap: string;
  gold_rate: string;
  lease_minutes: string;
  guidelines: string;
}

export const EMPTY_DRAFT: CampaignDraft = {
  name: "",
  description: "",
  task_types: ["step_labels"],
  overlap: "2",
  gold_rate: "10",
  lease_minutes: "30",
  guidelines: "",
};

/** Validate the form (the server checks again); return the body or the first error with its field. */
export function campaignFromDraft(d: CampaignDraft): { body: NewCampaign } | { error: string; field: keyof CampaignDraft } {
  const name = d.name.trim();
  if (!name) return { error: "Give the campaign a name.", field: "name" };
  if (name.length > 200) return { error: "The name is limited to 200 characters.", field: "name" };
  if (d.task_types.length === 0) return { error: "Pick at least one task type.", field: "task_types" };
  const overlap = Number(d.overlap);
  if (!Number.isInteger(overlap) || overlap < 1 || overlap > 20)
    return { error: "Annotators per item: a whole number from 1 to 20.", field: "overlap" };
  const gold = Number(d.gold_rate);
  if (d.gold_rate.trim() === "" || !Number.isFinite(gold) || gold < 0 || gold > 50)
    return { error: "Gold rate: a percentage from 0 to 50.", field: "gold_rate" };
  const lease = Number(d.lease_minutes);
  if (!Number.isInteger(lease) || lease < 1 || lease > 1440)
    return { error: "Lease: whole minutes from 1 to 1440.", field: "lease_minutes" };
  if (!d.guidelines.trim()) return { error: "Write the guidelines annotators will read.", field: "guidelines" };
  return {
    body: {
      name,
      description: d.description.trim(),
      task_types: [...d.task_types],
      overlap,
      gold_rate: Math.round(gold * 100) / 10_000,
      lease_seconds: lease * 60,
      guidelines: d.guidelines,
    },
  };
}

// ---- exports ---------------------------------------------------------------------------

export type ExportKind = "dpo" | "kto" | "prm" | "sft";

export interface ExportOption {
  name: string;
  label: string;
  choices: string[];
  def: string;
}

/** The options of each kind (export_api.OPTIONS_DOC), first choice = the server's default. */
export const EXPORT_OPTIONS: Record<ExportKind, ExportOption[]> = {
  dpo: [
    { name: "by", label: "Preference on", choices: ["answer", "reasoning"], def: "answer" },
    { name: "reasoning", label: "Reasoning", choices: ["include", "exclude"], def: "include" },
    { name: "form", label: "Form", choices: ["conversational", "standard"], def: "conversational" },
  ],
  kto: [
    { name: "task", label: "From", choices: ["all", "step_labels", "rubric"], def: "all" },
    { name: "reasoning", label: "Reasoning", choices: ["include", "exclude"], def: "include" },
    { name: "form", label: "Form", choices: ["conversational", "standard"], def: "conversational" },
    { name: "min_score", label: "Rubric ≥", choices: ["4", "3", "5"], def: "4" },
  ],
  prm: [{ name: "neutral", label: "A 0 rating is", choices: ["negative", "positive", "drop"], def: "negative" }],
  sft: [
    { name: "accept", label: "Accept", choices: ["labels_or_auto", "labels", "auto"], def: "labels_or_auto" },
    { name: "min_score", label: "Rubric ≥", choices: ["4", "3", "5"], def: "4" },
  ],
};

export const EXPORT_TEXT: Record<ExportKind, string> = {
  dpo: "prompt, chosen, rejected",
  kto: "prompt, completion, label",
  prm: "prompt, completions (steps), labels",
  sft: "prompt, reasoning, answer",
};

/** The download URL; options at their default are left out so URLs stay short. */
export function exportUrl(base: string, kind: ExportKind, campaign: string, options: Record<string, string>, includeGold = false): string {
  const q = new URLSearchParams({ campaign });
  for (const o of EXPORT_OPTIONS[kind]) {
    const v = options[o.name];
    if (v !== undefined && v !== o.def && o.choices.includes(v)) q.set(o.name, v);
  }
  if (includeGold) q.set("include_gold", "true");
  return `${base}/exports/${kind}.jsonl?${q.toString()}`;
}

export function exportOptions(kind: ExportKind, options: Record<string, string>, includeGold = false): Record<string, string> {
  const out: Record<string, string> = {};
  for (const o of EXPORT_OPTIONS[kind]) {
    const v = options[o.name];
    if (v !== undefined && v !== o.def && o.choices.includes(v)) out[o.name] = v;
  }
  if (includeGold) out.include_gold = "true";
  return out;
}

/** True while a snapshot of the list is still being written: the list is polled until none is. */
export function snapshotsBusy(list: readonly Pick<Snapshot, "status">[] | null): boolean {
  return (list ?? []).some((s) => s.status === "pending" || s.status === "writing");
}

/** The snapshots that were being written in `before` and have since ended (ready or failed). */
export function snapshotsSettled<T extends Pick<Snapshot, "id" | "status">>(before: readonly T[], after: readonly T[]): T[] {
  const busy = new Set(before.filter((s) => s.status === "pending" || s.status === "writing").map((s) => s.id));
  return after.filter((s) => busy.has(s.id) && (s.status === "ready" || s.status === "failed"));
}

export function formatBytes(n: number): string {
  if (!Number.isFinite(n) || n < 0) return "–";
  if (n < 1024) return `${n} B`;
  if (n < 1024 ** 2) return `${(n / 1024).toFixed(1)} KB`;
  if (n < 1024 ** 3) return `${(n / 1024 ** 2).toFixed(1)} MB`;
  return `${(n / 1024 ** 3).toFixed(2)} GB`;
}

// ---- durations on chart axes ------------------------------------------------------------

/** Round an axis maximum (ms) up to a whole number of seconds or minutes that halves well. */
export function niceDuration(ms: number): number {
  const steps = [10, 20, 30, 60, 120, 180, 300, 600, 900, 1200, 1800, 3600, 7200].map((s) => s * 1000);
  return steps.find((s) => s >= ms) ?? Math.ceil(ms / 3_600_000) * 3_600_000;
}

/** "0", "45 s", "2 min", "1.5 min", "1 h": short axis labels. */
export function shortDuration(ms: number): string {
  if (!(ms > 0)) return "0";
  if (ms < 60_000) return `${Math.round(ms / 1000)} s`;
  if (ms < 3_600_000) return `${Math.round((ms / 60_000) * 10) / 10} min`;
  return `${Math.round((ms / 3_600_000) * 10) / 10} h`;
}
