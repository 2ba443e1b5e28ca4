// Horizontal bar charts in SVG for the campaign page: agreement with the usual
// α threshold bands, and per-annotator numbers. uPlot draws time series; these
// are categories, which read better as labelled bars.
import { useWidth } from "../charts/Chart";

export interface HBarRow {
  key: string;
  label: string;
  value: number | null;
  text: string;
  /** Colour class: c0..c7 or a band (b-reliable, b-tentative, b-low). */
  cls: string;
  /** Starts a new group: a little more space above. */
  group?: boolean;
}

export interface BandSpec {
  from: number;
  to: number;
  cls: string;
  label: string;
}

export function HBarChart(props: {
  rows: HBarRow[];
  domain: [number, number];
  bands?: BandSpec[];
  /** Vertical reference lines with a label above the plot. */
  lines?: { at: number; label: string; anchor?: "start" | "middle" | "end" }[];
  ticks?: number[];
  tickText?: (v: number) => string;
  labelWidth?: number;
  rowHeight?: number;
}) {
  const [ref, width] = useWidth<HTMLDivElement>();
  const [lo, hi] = props.domain;
  const labelW = Math.min(props.labelWidth ?? 170, Math.max(90, width * 0.36));
  // Room for the longest value text ("2 min 27 s") at ~7 px a character.
  const valueW = 14 + 7.5 * Math.max(3, ...props.rows.map((r) => (r.value === null ? 0 : r.text.length)));
  const rowH = props.rowHeight ?? 26;
  const top = props.lines?.length ? 20 : 6;
  const gaps = props.rows.filter((r, i) => r.group && i > 0).length * 8;
  const plotH = props.rows.length * rowH + gaps;
  const h = top + plotH + 22;
  const x0 = labelW + 8;
  const plotW = Math.max(40, width - x0 - valueW);
  const x = (v: number) => x0 + ((Math.max(lo, Math.min(hi, v)) - lo) / (hi - lo || 1)) * plotW;
  const ticks = props.ticks ?? [lo, lo + (hi - lo) / 2, hi];
  const fmt = props.tickText ?? ((v: number) => v.toFixed(1));
  let y = top;
  const placed = props.rows.map((r, i) => {
    if (r.group && i > 0) y += 8;
    const at = y;
    y += rowH;
    return { r, at };
  });
  return (
    <div ref={ref} class="svg-chart hbar-chart">
      <svg width={width} height={h} viewBox={`0 0 ${width} ${h}`} aria-hidden="true" focusable="false">
        {props.bands?.map((b) => (
          <rect key={b.cls} class={`band ${b.cls}`} x={x(b.from)} y={top} width={Math.max(0, x(b.to) - x(b.from))} height={plotH}>
            <title>{b.label}</title>
          </rect>
        ))}
        {ticks.map((t) => (
          <g key={`t${t}`}>
            <line class="grid" x1={x(t)} x2={x(t)} y1={top} y2={top + plotH} />
            <text class="axis" x={x(t)} y={h - 6} text-anchor="middle">{fmt(t)}</text>
          </g>
        ))}
        {lo < 0 && <line class="zero" x1={x(0)} x2={x(0)} y1={top} y2={top + plotH} />}
        {props.lines?.map((l) => (
          <g key={`l${l.at}`}>
            <line class="threshold" x1={x(l.at)} x2={x(l.at)} y1={top - 4} y2={top + plotH} />
            <text class="axis threshold-label" x={x(l.at) + (l.anchor === "end" ? -3 : l.anchor === "start" ? 3 : 0)} y={12}
              text-anchor={l.anchor ?? "middle"}>{l.label}</text>
          </g>
        ))}
        {placed.map(({ r, at }) => {
          const barH = Math.min(16, rowH - 8);
          const by = at + (rowH - barH) / 2;
          const v = r.value;
          const from = v === null ? 0 : Math.min(0, v);
          const to = v === null ? 0 : Math.max(0, v);
          const start = lo > 0 ? lo : from;
          return (
            <g key={r.key} class="hbar-g">
              <title>{`${r.label}: ${r.text}`}</title>
              <text class="row-label" x={labelW} y={at + rowH / 2 + 4} text-anchor="end">{r.label}</text>
              {v === null ? (
                <text class="axis na" x={x0 + 4} y={at + rowH / 2 + 4}>not enough labels</text>
              ) : (
                <>
                  <rect class={`bar ${r.cls}`} x={x(start)} y={by} rx={3} width={Math.max(1.5, x(to) - x(start))} height={barH} />
                  <text class="value" x={x0 + plotW + 6} y={at + rowH / 2 + 4}>{r.text}</text>
                </>
              )}
            </g>
          );
        })}
      </svg>
    </div>
  );
}
