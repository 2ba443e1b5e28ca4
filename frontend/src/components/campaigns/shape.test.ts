import { describe, expect, it } from "vitest";
import type { Agreement, StepLabelsValue, UnitSpan } from "./api";
import {
  agreementRows, alphaBand, alphaDomain, campaignFromDraft, EMPTY_DRAFT, exportOptions, exportUrl, firstErrorIndex,
  nextRating, niceDuration, progressParts, rubricSpread, shortDuration, snapshotsBusy, snapshotsSettled, stripCells,
} from "./shape";

const AGREEMENT: Agreement = {
  step_labels: { alpha: 0.41, raw: 0.9, first_error_exact: 0.5, first_error_within_1: 1, units: 12, items: 3 },
  rubric: {
    correctness: { alpha: 0.81, raw: 0.7, items: 2 },
    soundness: { alpha: null, raw: null, items: 0 },
    efficiency: { alpha: -0.2, raw: 0.3, items: 2 },
    clarity: { alpha: 0.7, raw: 0.6, items: 2 },
  },
  pairwise: { reasoning: { alpha: 1, raw: 1, items: 1 }, answer: { alpha: null, raw: 0.5, items: 1 } },
  per_annotator: [],
};

const units = (n: number): UnitSpan[] => [
  ...Array.from({ length: n }, (_, i) => ({ start: i * 10, end: i * 10 + 10, answer: false })),
  { start: 0, end: 0, answer: true },
];

function steps(base: UnitSpan[], ratings: (-1 | 0 | 1 | null)[], finish: StepLabelsValue["finish_reason"] = "found_error"): StepLabelsValue {
  return { units: base, steps: ratings.map((rating) => ({ rating })), finish_reason: finish };
}

describe("agreement rows", () => {
  it("has a row per task type the campaign asks for, rubric per dimension, pairwise per part", () => {
    const rows = agreementRows(AGREEMENT, ["step_labels", "rubric", "pairwise"]);
    expect(rows.map((r) => r.key)).toEqual([
      "step_labels", "rubric.correctness", "rubric.soundness", "rubric.efficiency", "rubric.clarity",
      "pairwise.reasoning", "pairwise.answer",
    ]);
    expect(rows[0]).toMatchObject({ alpha: 0.41, raw: 0.9, firstExact: 0.5, firstWithin1: 1, level: "ordinal" });
    expect(rows[5].level).toBe("nominal");
    expect(rows[2].alpha).toBeNull();
  });

  it("leaves out task types the campaign does not have, and copes with no data", () => {
    expect(agreementRows(AGREEMENT, ["pairwise"]).map((r) => r.task)).toEqual(["pairwise", "pairwise"]);
    expect(agreementRows(null, ["rubric"])).toEqual([]);
    const rows = agreementRows({ step_labels: undefined, rubric: {}, pairwise: {} } as unknown as Agreement, ["step_labels", "rubric"]);
    expect(rows.every((r) => r.alpha === null && r.raw === null)).toBe(true);
  });

  it("bands alpha at Krippendorff's 0.667 and 0.8", () => {
    expect([0.8, 0.95, 0.667, 0.79, 0.66, -0.3, null, Number.NaN].map(alphaBand)).toEqual([
      "reliable", "reliable", "tentative", "tentative", "low", "low", "none", "none",
    ]);
  });

  it("stretches the alpha axis below zero only when an alpha is negative", () => {
    expect(alphaDomain([0.2, null, 0.9])).toEqual([0, 1]);
    expect(alphaDomain([-0.2, 0.5])).toEqual([-0.25, 1]);
    expect(alphaDomain([-3])).toEqual([-1, 1]);
  });
});

describe("label strip", () => {
  const base = units(5);

  it("gives one cell per unit, marks the first error and leaves later steps unrated", () => {
    const cells = stripCells(base, steps(base, [1, 0, -1, null, null, null]));
    expect(cells.map((c) => c.kind)).toEqual(["good", "okay", "bad", "unrated", "unrated", "unrated"]);
    expect(cells.map((c) => c.firstError)).toEqual([false, false, true, false, false, false]);
    expect(cells[5].answer).toBe(true);
  });

  it("marks only the first of several -1 ratings", () => {
    const cells = stripCells(base, steps(base, [1, -1, 1, -1, 1, 1]));
    expect(cells.filter((c) => c.firstError).map((c) => c.index)).toEqual([1]);
  });

  it("maps an edited segmentation onto the trace's units by where each starts", () => {
    // The annotator merged units 1 and 2 (10..30) and rated the merged step -1.
    const mine: UnitSpan[] = [
      { start: 0, end: 10, answer: false }, { start: 10, end: 30, answer: false },
      { start: 30, end: 50, answer: false }, { start: 0, end: 0, answer: true },
    ];
    const cells = stripCells(base, { ...steps(mine, [1, -1, null, null]), segmentation_edited: true });
    expect(cells.map((c) => c.kind)).toEqual(["good", "bad", "bad", "unrated", "unrated", "unrated"]);
    expect(cells.map((c) => c.firstError)).toEqual([false, true, false, false, false, false]);
  });

  it("shows units a label does not cover as missing", () => {
    const mine: UnitSpan[] = [{ start: 0, end: 20, answer: false }];
    const cells = stripCells(base, { ...steps(mine, [1], "solution"), segmentation_edited: true });
    expect(cells.map((c) => c.kind)).toEqual(["good", "good", "missing", "missing", "missing", "missing"]);
  });

  it("finds the first error and cycles ratings like the workbench", () => {
    expect(firstErrorIndex(steps(base, [1, 1, 0, -1, null, null]))).toBe(3);
    expect(firstErrorIndex(steps(base, [1, 1, 1, 1, 1, 1], "solution"))).toBeNull();
    expect([null, 1, 0, -1].map((r) => nextRating(r as -1 | 0 | 1 | null))).toEqual([1, 0, -1, null]);
  });

  it("measures the rubric spread per dimension", () => {
    const spread = rubricSpread([
      { correctness: 5, soundness: 4, efficiency: 1, clarity: 3 },
      { correctness: 4, soundness: 4, efficiency: 4, clarity: 3 },
    ]);
    expect(spread).toEqual({ correctness: 1, soundness: 0, efficiency: 3, clarity: 0 });
  });
});

describe("progress", () => {
  it("is per task type, capped at 1, zero when nothing is needed", () => {
    const parts = progressParts({
      task_types: ["step_labels", "rubric", "pairwise"],
      items_by_type: { step_labels: { items: 4, gold: 1, labels: 6, needed: 8 }, rubric: { items: 1, gold: 0, labels: 3, needed: 2 } },
    });
    expect(parts.map((p) => p.fraction)).toEqual([0.75, 1, 0]);
  });
});

describe("the new-campaign form", () => {
  const ok = { ...EMPTY_DRAFT, name: "  Sums ", guidelines: "# Rate" };

  it("turns the form into the API body", () => {
    const r = campaignFromDraft({ ...ok, task_types: ["rubric", "pairwise"], overlap: "3", gold_rate: "12.5", lease_minutes: "45" });
    expect(r).toEqual({
      body: {
        name: "Sums", description: "", task_types: ["rubric", "pairwise"], overlap: 3, gold_rate: 0.125,
        lease_seconds: 2700, guidelines: "# Rate",
      },
    });
  });

  it.each([
    [{ name: " " }, "name"],
    [{ task_types: [] }, "task_types"],
    [{ overlap: "0" }, "overlap"],
    [{ overlap: "2.5" }, "overlap"],
    [{ overlap: "" }, "overlap"],
    [{ gold_rate: "60" }, "gold_rate"],
    [{ gold_rate: "" }, "gold_rate"],
    [{ lease_minutes: "0" }, "lease_minutes"],
    [{ guidelines: "  \n" }, "guidelines"],
  ])("refuses %j", (change, field) => {
    const r = campaignFromDraft({ ...ok, ...(change as object) });
    expect("error" in r && r.field).toBe(field);
  });
});

describe("exports", () => {
  it("builds the download URL, leaving defaults out", () => {
    expect(exportUrl("/api", "dpo", "c1", { by: "answer", reasoning: "exclude" })).toBe(
      "/api/exports/dpo.jsonl?campaign=c1&reasoning=exclude",
    );
    expect(exportUrl("/api", "prm", "c1", { neutral: "drop" }, true)).toBe(
      "/api/exports/prm.jsonl?campaign=c1&neutral=drop&include_gold=true",
    );
  });

  it("never passes an option value that is not one of the choices", () => {
    expect(exportOptions("sft", { accept: "everything&campaign=other", min_score: "5" })).toEqual({ min_score: "5" });
  });
});

describe("durations on axes", () => {
  it("rounds up to a step and labels it shortly", () => {
    expect(niceDuration(147_000)).toBe(180_000);
    expect(niceDuration(4_000)).toBe(10_000);
    expect([0, 45_000, 90_000, 120_000, 5_400_000].map(shortDuration)).toEqual(["0", "45 s", "1.5 min", "2 min", "1.5 h"]);
  });
});

describe("snapshot polling", () => {
  type Row = { id: string; status: "pending" | "writing" | "ready" | "failed" };
  const row = (id: string, status: Row["status"]): Row => ({ id, status });

  it("is busy while a snapshot is pending or writing, and not before the list loads", () => {
    expect(snapshotsBusy(null)).toBe(false);
    expect(snapshotsBusy([])).toBe(false);
    expect(snapshotsBusy([row("a", "ready"), row("b", "failed")])).toBe(false);
    expect(snapshotsBusy([row("a", "ready"), row("b", "pending")])).toBe(true);
    expect(snapshotsBusy([row("a", "writing")])).toBe(true);
  });

  it("reports only the snapshots it saw being written that have ended", () => {
    const before = [row("a", "pending"), row("b", "writing"), row("c", "ready"), row("d", "pending")];
    const after = [row("new", "ready"), row("a", "ready"), row("b", "failed"), row("c", "ready"), row("d", "writing")];
    expect(snapshotsSettled(before, after).map((s) => s.id)).toEqual(["a", "b"]);
    expect(snapshotsSettled([], after)).toEqual([]);
  });
});
