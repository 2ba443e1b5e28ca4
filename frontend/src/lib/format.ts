// Human-readable durations and counts for the thinking timer and footers.

/** Thinking timer: "0 s", "42 s", "1 min 5 s", "1 h 2 min". */
export function formatElapsed(ms: number): string {
  if (!Number.isFinite(ms) || ms < 0) ms = 0;
  const total = Math.floor(ms / 1000);
  if (total < 60) return `${total} s`;
  const h = Math.floor(total / 3600);
  const m = Math.floor((total % 3600) / 60);
  const s = total % 60;
  if (h > 0) return m > 0 ? `${h} h ${m} min` : `${h} h`;
  return s > 0 ? `${m} min ${s} s` : `${m} min`;
}

/** Label of the reasoning header. */
export function thinkingLabel(ms: number | null, live: boolean): string {
  if (live) return `Thinking for ${formatElapsed(ms ?? 0)}`;
  if (ms === null) return "Thought";
  if (ms < 1000) return "Thought for less than a second";
  return `Thought for ${formatElapsed(ms)}`;
}

/** Precise short durations for the footer: "85 ms", "1.24 s", "2 min 3 s". */
export function formatMs(ms: number | null | undefined): string {
  if (ms === null || ms === undefined || !Number.isFinite(ms)) return "–";
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 10_000) return `${(ms / 1000).toFixed(2)} s`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)} s`;
  return formatElapsed(ms);
}

let countFormat: Intl.NumberFormat | null = null;

export function formatCount(n: number | null | undefined): string {
  if (n === null || n === undefined || !Number.isFinite(n)) return "–";
  // One formatter for all calls (toLocaleString builds a new one each time).
  countFormat ??= new Intl.NumberFormat("en-US");
  return countFormat.format(n);
}

/** "just now", "5 min ago", "3 h ago", "yesterday", else a date. */
export function formatRelative(iso: string, now: number = Date.now()): string {
  const t = Date.parse(iso);
  if (Number.isNaN(t)) return "";
  const d = Math.max(0, now - t) / 1000;
  if (d < 45) return "just now";
  if (d < 3600) return `${Math.round(d / 60)} min ago`;
  if (d < 86_400) return `${Math.round(d / 3600)} h ago`;
  if (d < 172_800) return "yesterday";
  return new Date(t).toLocaleDateString(undefined, { month: "short", day: "numeric" });
}

/** "Try again in 42 s" / "in 3 min" for retry_after_s. */
export function formatRetryAfter(s: number | null | undefined): string {
  if (s === null || s === undefined || !Number.isFinite(s) || s <= 0) return "";
  return `Try again in ${formatElapsed(Math.ceil(s) * 1000)}.`;
}
