// /dashboard/campaigns/: every campaign with its progress, and the new-campaign form.
import { useState } from "preact/hooks";
import { formatCount, formatRelative } from "../../lib/format";
import { Markdown } from "../Markdown";
import { notify } from "../pages/Shell";
import type { CampaignsApi, TaskType } from "./api";
import { TASK_LABELS, TASK_TYPES } from "./api";
import { ProgressBar, StatusBadge, TaskChips, errText, useLoad } from "./common";
import type { CampaignDraft } from "./shape";
import { EMPTY_DRAFT, campaignFromDraft } from "./shape";

export const TASK_HELP: Record<TaskType, string> = {
  step_labels: "Rate each reasoning step −1 / 0 / +1, stop at the first error.",
  rubric: "Correctness, soundness, efficiency and clarity, 1–5 each.",
  pairwise: "Two traces of one prompt side by side, blind: A, B, tie or both bad.",
};

export const GUIDELINES_TEMPLATE = `# Guidelines

## Step labels
- **+1** the step is correct and moves the solution forward.
- **0** correct but redundant, or a reasonable exploration that goes nowhere.
- **−1** wrong: an arithmetic or logic error, a misread problem, a made-up fact.
  Stop at the first −1.

## Examples
…
`;

export function GuidelinesEditor({ value, onInput, id, invalid }: {
  value: string; onInput: (v: string) => void; id: string; invalid?: boolean;
}) {
  const [tab, setTab] = useState<"write" | "preview">("write");
  return (
    <div class="md-editor">
      <div class="md-tabs" role="tablist" aria-label="Guidelines editor">
        {(["write", "preview"] as const).map((t) => (
          <button key={t} type="button" role="tab" id={`${id}-tab-${t}`} aria-selected={tab === t}
            aria-controls={`${id}-panel`} class={`md-tab${tab === t ? " on" : ""}`} data-testid={`guidelines-${t}`}
            onClick={() => setTab(t)}>
            {t === "write" ? "Write" : "Preview"}
          </button>
        ))}
        <span class="md-hint small muted">Markdown; math between $ signs</span>
      </div>
      <div id={`${id}-panel`} role="tabpanel" aria-labelledby={`${id}-tab-${tab}`}>
        {tab === "write" ? (
          <textarea id={id} class="textarea mono" rows={12} value={value} aria-invalid={invalid || undefined}
            data-testid="guidelines-input" placeholder="What annotators should look for, with examples."
            onInput={(e) => onInput((e.currentTarget as HTMLTextAreaElement).value)} />
        ) : (
          <div class="md-preview" data-testid="guidelines-preview">
            {value.trim() ? <Markdown text={value} streaming={false} /> : <p class="muted">Nothing to preview yet.</p>}
          </div>
        )}
      </div>
    </div>
  );
}

function NewCampaignForm({ api, onCreated, onCancel }: {
  api: CampaignsApi; onCreated: (id: string) => void; onCancel: () => void;
}) {
  const [d, setD] = useState<CampaignDraft>({ ...EMPTY_DRAFT, guidelines: GUIDELINES_TEMPLATE });
  const [error, setError] = useState<{ text: string; field: keyof CampaignDraft | null } | null>(null);
  const [busy, setBusy] = useState(false);
  const set = <K extends keyof CampaignDraft>(k: K, v: CampaignDraft[K]) => setD({ ...d, [k]: v });
  const toggle = (t: TaskType) =>
    set("task_types", d.task_types.includes(t) ? d.task_types.filter((x) => x !== t) : TASK_TYPES.filter((x) => x === t || d.task_types.includes(x)));

  const submit = async (e: Event) => {
    e.preventDefault();
    const parsed = campaignFromDraft(d);
    if ("error" in parsed) {
      setError({ text: parsed.error, field: parsed.field });
      document.getElementById(`nc-${parsed.field}`)?.focus();
      return;
    }
    setBusy(true);
    setError(null);
    try {
      const c = await api.create(parsed.body);
      notify("success", "Campaign created", c.name);
      onCreated(c.id);
    } catch (err) {
      setError({ text: errText(err), field: null });
    } finally {
      setBusy(false);
    }
  };
  const bad = (f: keyof CampaignDraft) => error?.field === f || undefined;

  return (
    <form class="card new-campaign" data-testid="new-campaign-form" aria-labelledby="nc-h" onSubmit={submit} noValidate>
      <header class="card-head">
        <div>
          <h2 id="nc-h" class="card-title">New campaign</h2>
          <div class="card-sub small muted">Sources (conversations or a batch of prompts) are added on the campaign's page.</div>
        </div>
      </header>
      <div class="form-grid">
        <label class="fld span-2">
          <span class="fld-label">Name</span>
          <input id="nc-name" class="input" name="name" maxLength={200} value={d.name} aria-invalid={bad("name")}
            data-testid="campaign-name" autoComplete="off"
            onInput={(e) => set("name", (e.currentTarget as HTMLInputElement).value)} />
        </label>
        <label class="fld span-2">
          <span class="fld-label">Description <span class="muted">(optional)</span></span>
          <input class="input" name="description" maxLength={5000} value={d.description}
            onInput={(e) => set("description", (e.currentTarget as HTMLInputElement).value)} />
        </label>
        <fieldset id="nc-task_types" class="fld span-2 task-pick" tabIndex={-1} aria-invalid={bad("task_types")}>
          <legend class="fld-label">Task types</legend>
          {TASK_TYPES.map((t) => (
            <label key={t} class={`task-option${d.task_types.includes(t) ? " on" : ""}`}>
              <input type="checkbox" name="task_types" value={t} checked={d.task_types.includes(t)}
                data-testid={`task-${t}`} onChange={() => toggle(t)} />
              <span>
                <strong>{TASK_LABELS[t]}</strong>
                <span class="small muted block">{TASK_HELP[t]}</span>
              </span>
            </label>
          ))}
        </fieldset>
        <label class="fld">
          <span class="fld-label">Annotators per item</span>
          <input id="nc-overlap" class="input num" type="number" min={1} max={20} step={1} name="overlap" value={d.overlap}
            aria-invalid={bad("overlap")} data-testid="campaign-overlap"
            onInput={(e) => set("overlap", (e.currentTarget as HTMLInputElement).value)} />
        </label>
        <label class="fld">
          <span class="fld-label">Gold items mixed in (%)</span>
          <input id="nc-gold_rate" class="input num" type="number" min={0} max={50} step={1} name="gold_rate" value={d.gold_rate}
            aria-invalid={bad("gold_rate")} data-testid="campaign-gold-rate"
            onInput={(e) => set("gold_rate", (e.currentTarget as HTMLInputElement).value)} />
        </label>
        <label class="fld">
          <span class="fld-label">Lease (minutes)</span>
          <input id="nc-lease_minutes" class="input num" type="number" min={1} max={1440} step={1} name="lease_minutes"
            value={d.lease_minutes} aria-invalid={bad("lease_minutes")}
            onInput={(e) => set("lease_minutes", (e.currentTarget as HTMLInputElement).value)} />
        </label>
        <div class="fld span-2">
          <label class="fld-label" for="nc-guidelines">Guidelines (version 1)</label>
          <GuidelinesEditor id="nc-guidelines" value={d.guidelines} invalid={bad("guidelines")}
            onInput={(v) => set("guidelines", v)} />
        </div>
      </div>
      {error && <p class="error-text" role="alert" data-testid="form-error">{error.text}</p>}
      <div class="form-actions">
        <button type="submit" class="btn primary" disabled={busy} data-testid="create-campaign">
          {busy ? "Creating…" : "Create campaign"}
        </button>
        <button type="button" class="btn" onClick={onCancel}>Cancel</button>
      </div>
    </form>
  );
}

export function CampaignList({ api }: { api: CampaignsApi }) {
  const list = useLoad(() => api.list(), []);
  const [creating, setCreating] = useState(() => new URLSearchParams(window.location.search).has("new"));
  const rows = list.data ?? [];
  return (
    <div class="campaigns">
      <div class="page-head">
        <div>
          <h2 class="page-title">Annotation campaigns</h2>
          <p class="muted small">Traces to rate, who rates them, and how well they agree.</p>
        </div>
        {!creating && (
          <button type="button" class="btn primary" data-testid="new-campaign" onClick={() => setCreating(true)}>
            New campaign
          </button>
        )}
      </div>
      {creating && (
        <NewCampaignForm api={api} onCancel={() => setCreating(false)}
          onCreated={(id) => window.location.assign(`/dashboard/campaigns/${id}/`)} />
      )}
      <section class="card" aria-labelledby="cl-h">
        <h2 id="cl-h" class="sr-only">Campaigns</h2>
        {list.error && <p class="error-text" role="alert">{list.error}</p>}
        <div class="table-wrap">
          <table class="data-table campaigns-table" data-testid="campaigns-table">
            <thead>
              <tr>
                <th scope="col">Campaign</th><th scope="col">Status</th><th scope="col">Tasks</th>
                <th scope="col" class="progress-col">Progress</th><th scope="col" class="num">Items</th>
                <th scope="col" class="num">Labels</th><th scope="col">Created</th>
              </tr>
            </thead>
            <tbody>
              {list.loading && <tr><td colSpan={7} class="muted">Loading…</td></tr>}
              {!list.loading && !list.error && rows.length === 0 && (
                <tr><td colSpan={7} class="empty-row">
                  No campaigns yet. <button type="button" class="linkish" onClick={() => setCreating(true)}>Create the first one</button>.
                </td></tr>
              )}
              {rows.map((c) => (
                <tr key={c.id} data-testid="campaign-row" data-campaign-id={c.id}>
                  <th scope="row"><a href={`/dashboard/campaigns/${c.id}/`} class="campaign-link">{c.name}</a></th>
                  <td><StatusBadge status={c.status} /></td>
                  <td><TaskChips types={c.task_types} /></td>
                  <td class="progress-col">
                    <span class="progress-cell">
                      <ProgressBar value={c.progress} label={`${c.name}: ${Math.round(c.progress * 100)}% labelled`} />
                      <span class="num small">{Math.round(c.progress * 100)}%</span>
                    </span>
                  </td>
                  <td class="num">{formatCount(c.items)}</td>
                  <td class="num">{formatCount(c.labels)}</td>
                  <td class="small muted" title={new Date(c.created_at).toLocaleString()}>{formatRelative(c.created_at)}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      </section>
    </div>
  );
}
