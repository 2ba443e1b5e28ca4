// Small pieces shared by the campaign list and the campaign page.
export { errText, useLoad } from "../../lib/load";
export type { Loaded } from "../../lib/load";
import type { CampaignStatus, TaskType } from "./api";
import { TASK_LABELS } from "./api";

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
