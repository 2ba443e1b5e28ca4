// Charts for the settings page and the dashboard: a card with a "show as table"
// fallback, SVG bar charts written here, and uPlot (bundled) for time series.
import "uplot/dist/uPlot.min.css";
import type { ComponentChildren } from "preact";
import { useEffect, useRef, useState } from "preact/hooks";
import uPlot from "uplot";
import type { Series } from "../../lib/usage";

export const PALETTE_SIZE = 8;

// ---- card + table fallback ---------------------------------------------------------

export interface TableData {
  columns: string[];
  rows: (string | number)[][];
}

export function DataTable({ data, caption }: { data: TableData; caption: string }) {
  return (
    <div class="table-wrap">
      <table class="data-table">
        <caption class="sr-only">{caption}</caption>
        <thead>
          <tr>{data.columns.map((c) => <th key={c} scope="col">{c}</th>)}</tr>
        </thead>
        <tbody>
          {data.rows.length === 0 && (
            <tr><td colSpan={data.columns.length} class="muted">No data in this range.</td></tr>
          )}
          {data.rows.map((r, i) => (
            <tr key={i}>
              {r.map((v, j) => (j === 0 ? <th key={j} scope="row">{v}</th> : <td key={j} class="num">{v}</td>))}
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

export function ChartCard(props: {
  name: string;
  title: string;
  subtitle?: ComponentChildren;
  table: TableData;
  /** Text alternative for the picture (screen readers). */
  summary: string;
  empty?: boolean;
  loading?: boolean;
  error?: string | null;
  wide?: boolean;
  testid?: string;
  children: ComponentChildren;
}) {
  const [asTable, setAsTable] = useState(false);
  const id = `chart-${props.name}`;
  let body: ComponentChildren;
  if (props.error) body = <p class="chart-msg error-text" role="alert">{props.error}</p>;
  else if (props.loading) body = <p class="chart-msg muted">Loading…</p>;
  else if (asTable) body = <DataTable data={props.table} caption={props.title} />;
  else if (props.empty) body = <p class="chart-msg muted">No data in this range.</p>;
  else body = (
    <figure class="chart-figure" role="img" aria-labelledby={`${id}-title`} aria-describedby={`${id}-sum`}>
      {props.children}
      <figcaption id={`${id}-sum`} class="sr-only">{props.summary}</figcaption>
    </figure>
  );
  return (
    <section class={`card chart-card${props.wide ? " wide" : ""}`} data-testid={props.testid ?? "dashboard-chart"}
      data-chart={props.name} aria-labelledby={`${id}-title`}>
      <header class="card-head">
        <div>
          <h3 id={`${id}-title`} class="card-title">{props.title}</h3>
          {props.subtitle && <div class="card-sub muted small">{props.subtitle}</div>}
        </div>
        <button type="button" class="ghost small table-toggle" aria-pressed={asTable} data-testid="chart-table-toggle"
          onClick={() => setAsTable(!asTable)}>
          {asTable ? "Show as chart" : "Show as table"}
        </button>
      </header>
      {body}
    </section>
  );
}

export function Legend({ names }: { names: string[] }) {
  if (names.length < 2) return null;
  return (
    <ul class="legend" aria-hidden="true">
      {names.map((n, i) => (
        <li key={n}><span class={`swatch c${i % PALETTE_SIZE}`} />{n}</li>
      ))}
    </ul>
  );
}

// ---- width of a container ----------------------------------------------------------

export function useWidth<T extends HTMLElement>(fallback = 560): [preact.RefObject<T>, number] {
  const ref = useRef<T>(null);
  const [w, setW] = useState(fallback);
  useEffect(() => {
    const el = ref.current;
    if (!el) return;
    const measure = () => {
      const cw = el.clientWidth;
      if (cw > 0) setW(cw);
    };
    measure();
    if (typeof ResizeObserver === "undefined") return;
    const ro = new ResizeObserver(measure);
    ro.observe(el);
    return () => ro.disconnect();
  }, []);
  return [ref, w];
}

// ---- vertical stacked bars (SVG) -----------------------------------------------------

export function niceMax(v: number): number {
  if (!(v > 0)) return 1;
  const p = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 2, 2.5, 5, 10]) if (v <= m * p) return m * p;
  return 10 * p;
}

export function StackedBars(props: {
  labels: string[];
  series: Series[];
  format: (v: number) => string;
  /** Short x labels (e.g. "May 3"); defaults to the labels. */
  tickLabel?: (l: string) => string;
  height?: number;
  /** Palette offset, so one-series charts can pick a colour. */
  color?: number;
}) {
  const [ref, width] = useWidth<HTMLDivElement>();
  const h = props.height ?? 200;
  const padL = 52;
  const padB = 22;
  const padT = 8;
  const n = props.labels.length;
  const totals = props.labels.map((_, i) => props.series.reduce((s, x) => s + (x.values[i] ?? 0), 0));
  const max = niceMax(Math.max(0, ...totals));
  const plotW = Math.max(10, width - padL - 4);
  const plotH = h - padB - padT;
  const slot = n ? plotW / n : plotW;
  const barW = Math.max(1, Math.min(48, slot * 0.72));
  const y = (v: number) => padT + plotH - (v / max) * plotH;
  const ticks = [0, 0.2, 0.4, 0.6, 0.8, 1].map((f) => f * max);
  const every = Math.max(1, Math.ceil(n / Math.max(1, Math.floor(plotW / 64))));
  const tick = props.tickLabel ?? ((l: string) => l);
  return (
    <div ref={ref} class="svg-chart">
      <svg width={width} height={h} viewBox={`0 0 ${width} ${h}`} aria-hidden="true" focusable="false">
        {ticks.map((t) => (
          <g key={t}>
            <line class="grid" x1={padL} x2={width - 4} y1={y(t)} y2={y(t)} />
            <text class="axis" x={padL - 6} y={y(t) + 4} text-anchor="end">{props.format(t)}</text>
          </g>
        ))}
        {props.labels.map((l, i) => {
          let acc = 0;
          const x = padL + i * slot + (slot - barW) / 2;
          return (
            <g key={l}>
              <title>{`${l}: ${props.series.map((s) => `${s.name} ${props.format(s.values[i] ?? 0)}`).join(", ")}`}</title>
              {props.series.map((s, k) => {
                const v = s.values[i] ?? 0;
                if (!v) return null;
                const y0 = y(acc);
                acc += v;
                const y1 = y(acc);
                return <rect key={s.name} class={`bar c${(k + (props.color ?? 0)) % PALETTE_SIZE}`} x={x} y={y1}
                  width={barW} height={Math.max(0.5, y0 - y1)} />;
              })}
              {i % every === 0 && (
                <text class="axis" x={x + barW / 2} y={h - 6} text-anchor="middle">{tick(l)}</text>
              )}
            </g>
          );
        })}
      </svg>
    </div>
  );
}

// ---- horizontal stacked bars (HTML) --------------------------------------------------------

export function HBars(props: {
  rows: { label: string; values: number[]; note?: string }[];
  parts: string[];
  format: (v: number) => string;
}) {
  const max = Math.max(1, ...props.rows.map((r) => r.values.reduce((a, b) => a + b, 0)));
  return (
    <div class="hbars">
      {props.rows.map((r) => {
        const total = r.values.reduce((a, b) => a + b, 0);
        return (
          <div class="hbar-row" key={r.label}>
            <span class="hbar-label" title={r.label}>{r.label}</span>
            <span class="hbar-track" title={props.parts.map((p, i) => `${p}: ${props.format(r.values[i] ?? 0)}`).join(", ")}>
              {r.values.map((v, i) => (
                <span key={i} class={`hbar-seg c${i % PALETTE_SIZE}`} style={{ width: `${(v / max) * 100}%` }} />
              ))}
            </span>
            <span class="hbar-value">{props.format(total)}{r.note ? <span class="muted"> · {r.note}</span> : null}</span>
          </div>
        );
      })}
    </div>
  );
}

// ---- time series (uPlot) -----------------------------------------------------------------

function canvasOk(): boolean {
  if (typeof navigator !== "undefined" && /jsdom/i.test(navigator.userAgent)) return false;
  return typeof HTMLCanvasElement !== "undefined";
}

function cssVar(name: string, fallback: string): string {
  const v = getComputedStyle(document.documentElement).getPropertyValue(name).trim();
  return v || fallback;
}

/** Re-render on theme switches (the toggle's event and the OS preference). */
export function useThemeVersion(): number {
  const [v, setV] = useState(0);
  useEffect(() => {
    const bump = () => setV((x) => x + 1);
    window.addEventListener("arbor:theme", bump);
    const mq = window.matchMedia?.("(prefers-color-scheme: dark)");
    mq?.addEventListener?.("change", bump);
    return () => {
      window.removeEventListener("arbor:theme", bump);
      mq?.removeEventListener?.("change", bump);
    };
  }, []);
  return v;
}

export function TimeChart(props: {
  /** Unix seconds. */
  x: number[];
  series: Series[];
  format: (v: number) => string;
  height?: number;
  /** Date-only x axis (days) or date-time (endpoint history). */
  days?: boolean;
  stepped?: boolean;
}) {
  const [ref, width] = useWidth<HTMLDivElement>();
  const theme = useThemeVersion();
  const plot = useRef<uPlot | null>(null);
  const h = props.height ?? 220;

  useEffect(() => {
    const el = ref.current;
    if (!el || !canvasOk()) return;
    const text = cssVar("--muted", "#68706b");
    const grid = cssVar("--border", "#e0e0da");
    const fmt = props.format;
    const axis = {
      stroke: text, grid: { stroke: grid, width: 1 }, ticks: { stroke: grid, width: 1 },
      font: "12px system-ui, sans-serif",
    };
    const opts: uPlot.Options = {
      width: Math.max(200, width), height: h,
      legend: { show: true, live: true },
      cursor: { drag: { x: false, y: false } },
      scales: { x: { time: true }, y: { range: (_u, _min, max) => [0, max > 0 ? max * 1.08 : 1] } },
      axes: [
        { ...axis, values: props.days ? (_u, splits) => splits.map((s) => shortDay(s)) : undefined },
        { ...axis, size: 56, values: (_u, splits) => splits.map((s) => fmt(s)) },
      ],
      series: [
        { value: (_u, v) => (v == null ? "–" : props.days ? shortDay(v) : new Date(v * 1000).toLocaleString()) },
        ...props.series.map((s, i) => {
          const c = cssVar(`--c${i % PALETTE_SIZE}`, "#1f7a5a");
          return {
            label: s.name, stroke: c, width: 2, fill: props.series.length === 1 ? `${c}22` : undefined,
            points: { show: props.x.length < 40 }, spanGaps: false,
            paths: props.stepped ? uPlot.paths.stepped?.({ align: 1 }) : undefined,
            value: (_u: uPlot, v: number | null) => (v == null ? "–" : fmt(v)),
          };
        }),
      ],
    };
    const data = [props.x, ...props.series.map((s) => s.values)] as uPlot.AlignedData;
    plot.current?.destroy();
    plot.current = new uPlot(opts, data, el);
    return () => {
      plot.current?.destroy();
      plot.current = null;
    };
    // width is handled by setSize below
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [props.x, props.series, theme, h]);

  useEffect(() => {
    plot.current?.setSize({ width: Math.max(200, width), height: h });
  }, [width, h]);

  return <div ref={ref} class="uplot-host" />;
}

export function shortDay(v: number | string): string {
  const d = typeof v === "number" ? new Date(v * 1000) : new Date(`${v.slice(0, 10)}T00:00:00Z`);
  if (Number.isNaN(d.getTime())) return String(v);
  return d.toLocaleDateString(undefined, { month: "short", day: "numeric", timeZone: "UTC" });
}
