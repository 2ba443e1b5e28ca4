// Where a campaign's traces come from: batch generation runs (their progress).
// Upload and conversation selection arrive with the batch services.
import { formatCount, formatRelative } from "../../lib/format";
import type { CampaignDetail, CampaignsApi } from "./api";
import { ProgressBar } from "./common";

export function Sources({ c }: { c: CampaignDetail; api: CampaignsApi; onChanged: () => void }) {
  return (
    <section id="sources" class="card wide" aria-labelledby="src-h" data-testid="sources">
      <header class="card-head">
        <div>
          <h3 id="src-h" class="card-title">Sources</h3>
          <div class="card-sub small muted">{formatCount(c.counts.traces)} traces from {formatCount(c.counts.prompts)} prompts.</div>
        </div>
      </header>
      {c.batches.length === 0 ? (
        <p class="muted small">No batch generation yet.</p>
      ) : (
        <ul class="batches">
          {c.batches.map((b) => (
            <li key={b.id} class="batch" data-testid="batch-row">
              <span class="batch-name">Batch {b.id} · {b.model} · {b.samples_per_prompt} per prompt</span>
              <ProgressBar value={b.total ? (b.done + b.failed) / b.total : 0} label={`Batch ${b.id}`} />
              <span class="small">{formatCount(b.done)} / {formatCount(b.total)}{b.failed ? `, ${b.failed} failed` : ""} · {b.status} · {formatRelative(b.created_at)}</span>
            </li>
          ))}
        </ul>
      )}
    </section>
  );
}
