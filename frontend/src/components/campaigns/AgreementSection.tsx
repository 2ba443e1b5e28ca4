// Agreement per task type / dimension and per-annotator numbers, as charts with
// a table fallback (ChartCard), plus the annotators' table.
import { formatCount, formatMs } from "../../lib/format";
import { ChartCard, niceMax } from "../charts/Chart";
import type { CampaignDetail } from "./api";
import type { HBarRow } from "./charts";
import { HBarChart } from "./charts";
import {
  niceDuration, shortDuration,
  ALPHA_RELIABLE, ALPHA_TENTATIVE, BAND_TEXT, agreementRows, alphaBand, alphaDomain, annotatorBars, fmtPct, fmtRatio,
} from "./shape";

const BANDS = [
  { from: ALPHA_TENTATIVE, to: ALPHA_RELIABLE, cls: "b-tentative", label: "0.667 ≤ α < 0.8: tentative conclusions only" },
  { from: ALPHA_RELIABLE, to: 1, cls: "b-reliable", label: "α ≥ 0.8: reliable" },
];

export function AgreementCharts({ c }: { c: CampaignDetail }) {
  const rows = agreementRows(c.agreement, c.task_types);
  const alphas = rows.map((r) => r.alpha);
  const domain = alphaDomain(alphas);
  const alphaRows: HBarRow[] = rows.map((r, i) => ({
    key: r.key, label: r.label, value: r.alpha, text: fmtRatio(r.alpha), cls: `b-${alphaBand(r.alpha)}`,
    group: i > 0 && rows[i - 1].task !== r.task,
  }));
  const rawRows: HBarRow[] = [];
  for (const [i, r] of rows.entries()) {
    const group = i > 0 && rows[i - 1].task !== r.task;
    rawRows.push({ key: r.key, label: r.label, value: r.raw, text: fmtPct(r.raw), cls: "c1", group });
    if (r.task === "step_labels") {
      rawRows.push({ key: "fe-exact", label: "First error · exact", value: r.firstExact ?? null, text: fmtPct(r.firstExact), cls: "c4" });
      rawRows.push({ key: "fe-1", label: "First error · ±1 step", value: r.firstWithin1 ?? null, text: fmtPct(r.firstWithin1), cls: "c5" });
    }
  }
  const noAlpha = alphas.every((a) => a === null);
  const noRaw = rawRows.every((r) => r.value === null);
  return (
    <>
      <ChartCard name="alpha" testid="campaign-chart" title="Krippendorff's α"
        subtitle={<>Ordinal for step ratings and rubric scores, nominal for pairwise choices. Bands: <span class="key b-tentative" /> tentative ≥ 0.667, <span class="key b-reliable" /> reliable ≥ 0.8.</>}
        empty={noAlpha}
        summary={`Krippendorff's alpha: ${rows.map((r) => `${r.label} ${fmtRatio(r.alpha)} (${BAND_TEXT[alphaBand(r.alpha)]})`).join("; ")}.`}
        table={{
          columns: ["Task", "Level", "α", "Reading", "Items with ≥ 2 labels"],
          rows: rows.map((r) => [r.label, r.level, fmtRatio(r.alpha, 3), BAND_TEXT[alphaBand(r.alpha)], r.items]),
        }}>
        <HBarChart rows={alphaRows} domain={domain} bands={BANDS}
          lines={[{ at: ALPHA_TENTATIVE, label: "0.667", anchor: "end" }, { at: ALPHA_RELIABLE, label: "0.8", anchor: "start" }]}
          ticks={domain[0] < 0 ? [domain[0], 0, 0.5, 1] : [0, 0.25, 0.5, 0.75, 1]} tickText={(v) => fmtRatio(v, v % 0.5 ? 2 : 1)} />
      </ChartCard>
      <ChartCard name="raw" testid="campaign-chart" title="Raw agreement"
        subtitle="Share of annotator pairs that agree; skewed labels (mostly +1) keep α low while this stays high. Pairwise between people is usually 60–80%."
        empty={noRaw}
        summary={`Raw agreement: ${rawRows.map((r) => `${r.label} ${r.text}`).join("; ")}.`}
        table={{ columns: ["Measure", "Agreement"], rows: rawRows.map((r) => [r.label, r.text]) }}>
        <HBarChart rows={rawRows} domain={[0, 1]} ticks={[0, 0.25, 0.5, 0.75, 1]} tickText={(v) => `${Math.round(v * 100)}%`} />
      </ChartCard>
    </>
  );
}

export function AnnotatorCharts({ c }: { c: CampaignDetail }) {
  const a = c.annotators;
  const throughput = annotatorBars(a, (x) => x.labels, formatCount);
  const times = annotatorBars(a, (x) => x.median_time_ms, (v) => formatMs(v));
  const gold = annotatorBars(a, (x) => x.gold_accuracy, fmtPct);
  const maxLabels = niceMax(Math.max(1, ...throughput.map((r) => r.value)));
  const maxTime = niceDuration(Math.max(1000, ...times.map((r) => r.value)));
  const bars = (rs: typeof throughput, cls: string): HBarRow[] => rs.map((r) => ({ key: r.label, label: r.label, value: r.value, text: r.text, cls }));
  // Halves only when they land on whole labels (a max of 1 would show "0 1 1").
  const niceTicks = (max: number) => (max >= 4 && max % 2 === 0 ? [0, max / 2, max] : [0, max]);
  return (
    <>
      <ChartCard name="throughput" testid="campaign-chart" title="Labels per annotator"
        subtitle={`Submitted labels, gold included; ${formatCount(a.reduce((s, x) => s + x.skipped, 0))} skipped in all.`}
        empty={throughput.length === 0}
        summary={`Labels per annotator: ${throughput.map((r) => `${r.label} ${r.text}`).join(", ")}.`}
        table={{ columns: ["Annotator", "Labels", "Skipped"], rows: a.map((x) => [x.username, x.labels, x.skipped]) }}>
        <HBarChart rows={bars(throughput, "c0")} domain={[0, maxLabels]} ticks={niceTicks(maxLabels)}
          tickText={(v) => formatCount(Math.round(v))} labelWidth={120} />
      </ChartCard>
      <ChartCard name="median-time" testid="campaign-chart" title="Median time per label"
        subtitle="Active time the workbench measured (paused while the tab is hidden)."
        empty={times.length === 0}
        summary={`Median time per label: ${times.map((r) => `${r.label} ${r.text}`).join(", ")}.`}
        table={{ columns: ["Annotator", "Median time"], rows: a.map((x) => [x.username, formatMs(x.median_time_ms)]) }}>
        <HBarChart rows={bars(times, "c2")} domain={[0, maxTime]} ticks={[0, maxTime / 2, maxTime]} tickText={shortDuration} labelWidth={120} />
      </ChartCard>
      <ChartCard name="gold" testid="campaign-chart" title="Gold accuracy"
        subtitle="Mean score on gold items (first error and step signs; rubric within a point; pairwise choices)."
        summary={`Gold accuracy: ${gold.map((r) => `${r.label} ${r.text}`).join(", ") || "no gold labels yet"}.`}
        table={{ columns: ["Annotator", "Gold labels", "Accuracy"], rows: a.map((x) => [x.username, x.gold_labels, fmtPct(x.gold_accuracy)]) }}>
        {gold.length === 0 ? <p class="chart-msg muted">No gold labels yet: mark items gold in Disagreements.</p> : <HBarChart rows={bars(gold, "c0").map((r) => ({ ...r, cls: (r.value ?? 0) >= 0.8 ? "b-reliable" : (r.value ?? 0) >= 0.6 ? "b-tentative" : "b-low" }))}
          domain={[0, 1]} ticks={[0, 0.5, 1]} tickText={(v) => `${Math.round(v * 100)}%`} labelWidth={120} />}
      </ChartCard>
    </>
  );
}

export function AnnotatorTable({ c }: { c: CampaignDetail }) {
  return (
    <section class="card wide" aria-labelledby="ann-h">
      <header class="card-head">
        <div>
          <h3 id="ann-h" class="card-title">Annotators</h3>
          <div class="card-sub small muted">Agreement: share of this annotator's pairs that agree with the others.</div>
        </div>
      </header>
      <div class="table-wrap">
        <table class="data-table" data-testid="annotators-table">
          <thead>
            <tr>
              <th scope="col">Annotator</th><th scope="col" class="num">Labels</th><th scope="col" class="num">Skipped</th>
              <th scope="col" class="num">Median time</th><th scope="col" class="num">Gold labels</th>
              <th scope="col" class="num">Gold accuracy</th><th scope="col" class="num">Agreement</th>
              <th scope="col" class="num">First-error agreement</th>
            </tr>
          </thead>
          <tbody>
            {c.annotators.length === 0 && <tr><td colSpan={8} class="muted">Nobody has labelled yet.</td></tr>}
            {c.annotators.map((a) => (
              <tr key={a.annotator_id} data-testid="annotator-row">
                <th scope="row">{a.username}</th>
                <td class="num">{formatCount(a.labels)}</td>
                <td class="num">{formatCount(a.skipped)}</td>
                <td class="num">{formatMs(a.median_time_ms)}</td>
                <td class="num">{formatCount(a.gold_labels)}</td>
                <td class="num">{fmtPct(a.gold_accuracy)}</td>
                <td class="num">{fmtPct(a.raw_agreement)}</td>
                <td class="num">{fmtPct(a.first_error_agreement)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
    </section>
  );
}
