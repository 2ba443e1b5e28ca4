// Small pieces shared by the campaign list and the campaign page.
import { useEffect, useState } from "preact/hooks";
import { ApiError } from "../../lib/api";
import type { CampaignStatus, TaskType } from "./api";
import { TASK_LABELS } from "./api";

export function errText(e: unknown): string {
  return e instanceof ApiError ? e.message : "Something went wrong.";
}

export interface Loaded<T> {
  data: T | null;
  error: string | null;
  loading: boolean;
}

/** Load once per `deps`, keep the last data while reloading (no flashing on refresh). */
export function useLoad<T>(fn: () => Promise<T>, deps: unknown[]): Loaded<T> & { reload: () => void; set: (d: T) => void } {
  const [st, setSt] = useState<Loaded<T>>({ data: null, error: null, loading: true });
  const [n, setN] = useState(0);
  useEffect(() => {
    let live = true;
    setSt((s) => ({ ...s, loading: s.data === null, error: null }));
    fn().then(
      (data) => live && setSt({ data, error: null, loading: false }),
      (e) => live && setSt((s) => ({ ...s, error: errText(e), loading: false })),
    );
    return () => {
      live = false;
    };
  }, [...deps, n]);
  return { ...st, reload: () => setN((x) => x + 1), set: (data: T) => setSt({ data, error: null, loading: false }) };
}

export function ProgressBar({ value, label, testid, large }: { value: number; label: string; testid?: string; large?: boolean }) {
  const pct = Math.round(Math.max(0, Math.min(1, value)) * 100);
  return (
    <span class={`progress${large ? " large" : ""}`} role="progressbar" aria-label={label} aria-valuemin={0}
      aria-valuemax={100} aria-valuenow={pct} data-testid={testid}>
      <span class="progress-fill" style={{ width: `${pct}%` }} />
    </span>
  );
}

export function StatusBadge({ status }: { status: CampaignStatus | string }) {
  return <span class={`badge st-${status}`} data-testid="campaign-status">{status}</span>;
}

export function TaskChips({ types }: { types: TaskType[] }) {
  return (
    <span class="task-chips">
      {types.map((t) => <span key={t} class={`task-chip t-${t}`}>{TASK_LABELS[t] ?? t}</span>)}
    </span>
  );
}
