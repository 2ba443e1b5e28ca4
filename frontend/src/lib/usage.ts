// Usage, quota, API-key and admin-dashboard contracts (issue 5), plus the
// pure helpers the settings page, the dashboard and the chat's meter share.
import { Api } from "./api";

// ---- contract shapes ---------------------------------------------------------

export interface Limits {
  tokens_per_day: number | null;
  tokens_per_month: number | null;
  requests_per_minute: number | null;
  concurrent_streams: number | null;
  max_tokens: number | null;
}

export const LIMIT_KEYS: readonly (keyof Limits)[] = [
  "tokens_per_day", "tokens_per_month", "requests_per_minute", "concurrent_streams", "max_tokens",
];

export const LIMIT_LABELS: Record<keyof Limits, string> = {
  tokens_per_day: "Tokens per day",
  tokens_per_month: "Tokens per month",
  requests_per_minute: "Requests per minute",
  concurrent_streams: "Concurrent answers",
  max_tokens: "Max tokens per answer",
};

export interface Used {
  tokens_today: number;
  tokens_this_month: number;
  requests_this_minute: number;
  streams_now: number;
  reserved_tokens: number;
}

export interface HistoryDay {
  day: string;
  prompt_tokens: number;
  reasoning_tokens: number;
  answer_tokens: number;
  requests: number;
  cost: number;
}

export interface MyUsage {
  limits: Limits;
  used: Used;
  resets: { day: string; month: string };
  history: HistoryDay[];
}

export interface ApiKeyItem {
  id: string | number;
  name: string;
  prefix: string;
  created_at: string;
  last_used_at: string | null;
  revoked: boolean;
}

export interface NewApiKey {
  id: string | number;
  name: string;
  prefix: string;
  created_at: string;
  key: string;
}

/** The caller's own settings (`/api/me/settings`). */
export interface MySettings {
  share_for_annotation: boolean;
}

export interface UsageRow {
  key: string;
  prompt_tokens: number;
  reasoning_tokens: number;
  answer_tokens: number;
  cost: number;
  requests: number;
}

export interface Distribution {
  p50: number | null;
  p90: number | null;
  p99: number | null;
  histogram: { le: number | string | null; count: number }[];
}

export interface AdminStats {
  ttft_ms: Distribution;
  thinking_ms: Distribution;
  reasoning_share: number | null;
  refusals: { day: string; limit: string; count: number }[];
  by_day_model: { day: string; model: string; tokens: number; cost: number }[];
}

export interface EndpointHistoryPoint {
  at: string;
  healthy: boolean | null;
  running: number;
  queued: number;
  throughput: number | null;
}

export interface Endpoint {
  id: string | number;
  model: string;
  base_url: string;
  weight: number;
  max_concurrency: number | null;
  enabled: boolean;
  draining: boolean;
  health: "unknown" | "healthy" | "unhealthy" | string;
  last_check_at: string | null;
  last_error: string | null;
  running: number;
  queued: number;
  history: EndpointHistoryPoint[];
}

export interface UserQuota extends Limits {
  username: string;
  effective: Limits;
  used: Used;
}

export type GroupBy = "day" | "model" | "user";

// ---- client --------------------------------------------------------------------

const q = (params: Record<string, string | undefined>): string => {
  const parts = Object.entries(params)
    .filter(([, v]) => v !== undefined && v !== "")
    .map(([k, v]) => `${encodeURIComponent(k)}=${encodeURIComponent(v as string)}`);
  return parts.length ? `?${parts.join("&")}` : "";
};

export class UsageApi {
  constructor(private api: Api) {}

  myUsage(): Promise<MyUsage> {
    return this.api.request("GET", "/me/usage");
  }
  keys(): Promise<ApiKeyItem[]> {
    return this.api.request("GET", "/me/keys");
  }
  createKey(name: string): Promise<NewApiKey> {
    return this.api.request("POST", "/me/keys", { name });
  }
  revokeKey(id: string | number): Promise<null> {
    return this.api.request("DELETE", `/me/keys/${encodeURIComponent(String(id))}`);
  }
  mySettings(): Promise<MySettings> {
    return this.api.request("GET", "/me/settings");
  }
  patchMySettings(body: Partial<MySettings>): Promise<MySettings> {
    return this.api.request("PATCH", "/me/settings", body);
  }
  usage(groupBy: GroupBy, since?: string, until?: string): Promise<UsageRow[]> {
    return this.api.request("GET", `/admin/usage${q({ group_by: groupBy, since, until })}`);
  }
  stats(since?: string, until?: string): Promise<AdminStats> {
    return this.api.request("GET", `/admin/stats${q({ since, until })}`);
  }
  endpoints(): Promise<Endpoint[]> {
    return this.api.request("GET", "/admin/endpoints");
  }
  patchEndpoint(id: string | number, body: { enabled?: boolean; draining?: boolean }): Promise<Endpoint> {
    return this.api.request("PATCH", `/admin/endpoints/${encodeURIComponent(String(id))}`, body);
  }
  quota(username: string): Promise<UserQuota> {
    return this.api.request("GET", `/admin/quotas/${encodeURIComponent(username)}`);
  }
  putQuota(username: string, limits: Limits): Promise<UserQuota> {
    return this.api.request("PUT", `/admin/quotas/${encodeURIComponent(username)}`, limits);
  }
}

// ---- formatting ----------------------------------------------------------------

/** Compact counts: 950, 12.3k, 200k, 1.25M. */
export function compact(n: number | null | undefined): string {
  if (n === null || n === undefined || !Number.isFinite(n)) return "–";
  const a = Math.abs(n);
  const fmt = (v: number, unit: string) => {
    const s = v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v.toFixed(2);
    return `${s.replace(/\.0+$/, "").replace(/(\.\d*?)0+$/, "$1")}${unit}`;
  };
  if (a >= 1e9) return fmt(n / 1e9, "B");
  if (a >= 1e6) return fmt(n / 1e6, "M");
  if (a >= 1e3) return fmt(n / 1e3, "k");
  return String(Math.round(n));
}

export function money(n: number | null | undefined): string {
  if (n === null || n === undefined || !Number.isFinite(n)) return "–";
  if (n !== 0 && Math.abs(n) < 0.01) return `$${n.toFixed(4)}`;
  return `$${n.toFixed(2)}`;
}

export function percent(x: number | null | undefined, digits = 0): string {
  if (x === null || x === undefined || !Number.isFinite(x)) return "–";
  return `${(x * 100).toFixed(digits)}%`;
}

/** Share of a limit used, 0..1 (null limit = unlimited = null). */
export function fraction(used: number, limit: number | null): number | null {
  if (limit === null || limit === undefined) return null;
  if (limit <= 0) return 1;
  return Math.max(0, Math.min(1, used / limit));
}

export type Level = "ok" | "warn" | "full";
export function level(f: number | null): Level {
  if (f === null) return "ok";
  if (f >= 1) return "full";
  if (f >= 0.8) return "warn";
  return "ok";
}

/** "12.3k / 200k tokens today" (or "12.3k tokens today" when unlimited). */
export function meterText(used: number, limit: number | null, what = "tokens today"): string {
  return limit === null ? `${compact(used)} ${what}` : `${compact(used)} / ${compact(limit)} ${what}`;
}

/** "in 3 h 12 min (14:00)" style reset labels; `now` injectable for tests. */
export function resetLabel(iso: string | null | undefined, now: number = Date.now()): string {
  if (!iso) return "";
  const t = Date.parse(iso);
  if (Number.isNaN(t)) return "";
  const s = Math.max(0, Math.round((t - now) / 1000));
  let rel: string;
  if (s < 60) rel = "in less than a minute";
  else if (s < 3600) rel = `in ${Math.round(s / 60)} min`;
  else if (s < 86_400) {
    const h = Math.floor(s / 3600);
    const m = Math.round((s % 3600) / 60);
    rel = m ? `in ${h} h ${m} min` : `in ${h} h`;
  } else rel = `in ${Math.round(s / 86_400)} days`;
  return `${rel} (${localDateTime(iso)})`;
}

export function localDateTime(iso: string): string {
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return iso;
  return d.toLocaleString(undefined, { month: "short", day: "numeric", hour: "2-digit", minute: "2-digit" });
}

// ---- dates -----------------------------------------------------------------------

export function isoDay(d: Date): string {
  const y = d.getFullYear();
  const m = String(d.getMonth() + 1).padStart(2, "0");
  const day = String(d.getDate()).padStart(2, "0");
  return `${y}-${m}-${day}`;
}

/** The last `days` days, today included. */
export function lastDays(days: number, now: Date = new Date()): { since: string; until: string } {
  const start = new Date(now.getFullYear(), now.getMonth(), now.getDate() - (days - 1));
  return { since: isoDay(start), until: isoDay(now) };
}

/** Every day from since to until inclusive (YYYY-MM-DD), at most 400. */
export function dayRange(since: string, until: string): string[] {
  const out: string[] = [];
  const [y, m, d] = since.split("-").map(Number);
  const end = until;
  const cur = new Date(Date.UTC(y, (m || 1) - 1, d || 1));
  while (out.length < 400) {
    const s = cur.toISOString().slice(0, 10);
    if (s > end) break;
    out.push(s);
    cur.setUTCDate(cur.getUTCDate() + 1);
  }
  return out;
}

/** Seconds since the epoch at UTC midnight of a YYYY-MM-DD day (uPlot's x unit). */
export function dayToTs(day: string): number {
  return Date.parse(`${day}T00:00:00Z`) / 1000;
}

// ---- data shaping --------------------------------------------------------------------

export function outputTokens(r: { reasoning_tokens: number; answer_tokens: number }): number {
  return (r.reasoning_tokens || 0) + (r.answer_tokens || 0);
}

export function totalTokens(r: { prompt_tokens: number; reasoning_tokens: number; answer_tokens: number }): number {
  return (r.prompt_tokens || 0) + outputTokens(r);
}

/** Reasoning tokens as a share of output tokens over rows (null when no output). */
export function reasoningShare(rows: { reasoning_tokens: number; answer_tokens: number }[]): number | null {
  let r = 0;
  let out = 0;
  for (const x of rows) {
    r += x.reasoning_tokens || 0;
    out += outputTokens(x);
  }
  return out > 0 ? r / out : null;
}

export interface Series {
  name: string;
  values: (number | null)[];
}

/**
 * Pivot (day, group, value) rows into aligned series over `days` (missing = 0),
 * groups ordered by their total, largest first; beyond `maxGroups` they merge into "other".
 */
export function pivotByDay<T>(
  rows: T[], days: string[], dayOf: (r: T) => string, groupOf: (r: T) => string, valueOf: (r: T) => number,
  maxGroups = 8,
  /** Put these groups first, in this order (keeps colours stable across charts). */
  order: string[] = [],
): Series[] {
  const idx = new Map(days.map((d, i) => [d, i]));
  const totals = new Map<string, number>();
  for (const r of rows) totals.set(groupOf(r), (totals.get(groupOf(r)) ?? 0) + (valueOf(r) || 0));
  const rank = (g: string) => (order.includes(g) ? order.indexOf(g) : order.length);
  const ordered = [...totals.entries()]
    .sort((a, b) => rank(a[0]) - rank(b[0]) || b[1] - a[1] || a[0].localeCompare(b[0]))
    .map(([g]) => g);
  const keep = new Set(ordered.length > maxGroups ? ordered.slice(0, maxGroups - 1) : ordered);
  const names = ordered.filter((g) => keep.has(g));
  if (ordered.length > names.length) names.push("other");
  const series = new Map(names.map((n) => [n, days.map(() => 0 as number | null)]));
  for (const r of rows) {
    const i = idx.get(dayOf(r).slice(0, 10));
    if (i === undefined) continue;
    const g = keep.has(groupOf(r)) ? groupOf(r) : "other";
    const arr = series.get(g);
    if (arr) arr[i] = (arr[i] ?? 0) + (valueOf(r) || 0);
  }
  return names.map((name) => ({ name, values: series.get(name) ?? [] }));
}

export interface Bin {
  label: string;
  count: number;
}

/** Histogram buckets ({le, count}, cumulative or not) as labelled bins "≤ 250 ms". */
export function histogramBins(h: Distribution["histogram"], fmt: (v: number) => string): Bin[] {
  const rows = [...(h ?? [])];
  const num = (le: number | string | null) =>
    le === null || le === "+Inf" || le === "inf" || le === "Infinity" ? Infinity : Number(le);
  rows.sort((a, b) => num(a.le) - num(b.le));
  // Prometheus-style cumulative counts never decrease; turn them into per-bucket counts.
  const cumulative = rows.length > 1 && rows.every((r, i) => i === 0 || r.count >= rows[i - 1].count);
  let prevLe: number | null = null;
  return rows.map((r, i) => {
    const le = num(r.le);
    const count = cumulative && i > 0 ? r.count - rows[i - 1].count : r.count;
    const label = le === Infinity ? `> ${prevLe === null ? "0" : fmt(prevLe)}` : `≤ ${fmt(le)}`;
    prevLe = le;
    return { label, count };
  });
}

/** Refusals per day by limit. */
export function refusalSeries(refusals: AdminStats["refusals"], days: string[]): Series[] {
  return pivotByDay(refusals, days, (r) => r.day, (r) => r.limit, (r) => r.count);
}

// ---- quota errors in the chat ---------------------------------------------------------

const LIMIT_PATTERNS: [RegExp, string][] = [
  [/\b(per day|a day|daily|today)\b/i, "Daily token limit reached"],
  [/\b(per month|a month|monthly|this month)\b/i, "Monthly token limit reached"],
  [/\b(per minute|a minute|minute)\b/i, "Request rate limit reached"],
  [/\b(at once|concurrent|being generated|streams?)\b/i, "Too many answers at once"],
  [/\b(max(imum)?[ _]tokens|per answer|per response)\b/i, "Answer length limit"],
];

/** Which limit a quota_exceeded / rate_limited message speaks of (a toast title), or null. */
export function limitTitle(message: string): string | null {
  for (const [re, title] of LIMIT_PATTERNS) if (re.test(message)) return title;
  return null;
}

const ISO_RE = /\b\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?/g;

/** Server messages carry reset times in ISO 8601; show them in the reader's local time. */
export function localizeTimes(message: string): string {
  return message.replace(ISO_RE, (m) => localDateTime(m));
}

/** True when the message already says when to retry (so the toast need not repeat it). */
export function mentionsRetry(message: string): boolean {
  return /\b(try again|retry)\b/i.test(message);
}
