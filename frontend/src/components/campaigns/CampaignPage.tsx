// /dashboard/campaigns/<id>/: progress (always in view), agreement and annotator
// charts, adjudication, guideline versions, sources and exports of one campaign.
import { useEffect, useRef, useState } from "preact/hooks";
import { formatCount, formatRelative } from "../../lib/format";
import { Markdown } from "../Markdown";
import { notify } from "../pages/Shell";
import { Adjudication } from "./Adjudication";
import { AgreementCharts, AnnotatorCharts, AnnotatorTable } from "./AgreementSection";
import type { CampaignDetail, CampaignStatus, CampaignsApi, Snapshot } from "./api";
import { GuidelinesEditor, TASK_HELP } from "./CampaignList";
import { ProgressBar, StatusBadge, TaskChips, errText, useLoad } from "./common";
import type { ExportKind } from "./shape";
import {
  EXPORT_OPTIONS, EXPORT_TEXT, exportOptions, exportUrl, formatBytes, progressParts, snapshotsBusy, snapshotsSettled,
} from "./shape";
import { Sources } from "./Sources";

const STATUS_ACTIONS: { status: CampaignStatus; label: string; help: string }[] = [
  { status: "active", label: "Open", help: "Annotators get tasks from it" },
  { status: "draft", label: "Pause", help: "No new tasks; leased ones can finish" },
  { status: "closed", label: "Close", help: "Done: no new tasks" },
];

const SECTIONS = [
  ["overview", "Overview"], ["agreement", "Agreement"], ["annotators", "Annotators"], ["adjudication", "Disagreements"],
  ["sources", "Sources"], ["exports", "Exports"], ["guidelines", "Guidelines"],
] as const;

function plural(n: number | undefined, word: string): string {
  return `${formatCount(n ?? 0)} ${word}${n === 1 ? "" : "s"}`;
}

function Tile({ label, value, note }: { label: string; value: string; note?: string }) {
  return (
    <div class="tile" data-testid="stat-tile">
      <span class="tile-label">{label}</span>
      <span class="tile-value">{value}</span>
      {note && <span class="tile-note small muted">{note}</span>}
    </div>
  );
}

function Head({ c, api, onChange }: { c: CampaignDetail; api: CampaignsApi; onChange: (c: CampaignDetail) => void }) {
  const [busy, setBusy] = useState(false);
  const labelsDone = Object.values(c.items_by_type).reduce((s, x) => s + (x?.labels ?? 0), 0);
  const needed = Object.values(c.items_by_type).reduce((s, x) => s + (x?.needed ?? 0), 0);
  const setStatus = async (status: CampaignStatus) => {
    setBusy(true);
    try {
      onChange(await api.setStatus(c.id, status));
      notify("success", `Campaign ${status === "active" ? "opened" : status === "draft" ? "paused" : "closed"}`, c.name);
    } catch (e) {
      notify("error", "Could not change the status", errText(e));
    } finally {
      setBusy(false);
    }
  };
  return (
    <div class="camp-head" data-testid="campaign-head">
      <div class="camp-head-row">
        <div class="camp-title-wrap">
          <a href="/dashboard/campaigns/" class="back small">← Campaigns</a>
          <h2 class="camp-title" data-testid="campaign-title">{c.name}</h2>
          <StatusBadge status={c.status} />
        </div>
        <div class="seg" role="group" aria-label="Campaign status">
          {STATUS_ACTIONS.map((a) => (
            <button key={a.status} type="button" class={`chip-btn${c.status === a.status ? " on" : ""}`} aria-pressed={c.status === a.status}
              title={a.help} disabled={busy || c.status === a.status} data-testid={`status-${a.status}`} onClick={() => void setStatus(a.status)}>
              {a.label}
            </button>
          ))}
        </div>
      </div>
      <div class="camp-progress">
        <ProgressBar value={c.progress} large label={`Labelled: ${Math.round(c.progress * 100)}%`} testid="campaign-progress" />
        <span class="small"><strong>{Math.round(c.progress * 100)}%</strong> <span class="muted">· {formatCount(labelsDone)} of {formatCount(needed)} labels</span></span>
      </div>
      <nav class="camp-nav" aria-label="Sections">
        {SECTIONS.map(([id, label]) => <a key={id} href={`#${id}`}>{label}</a>)}
      </nav>
    </div>
  );
}

function Overview({ c }: { c: CampaignDetail }) {
  const parts = progressParts(c);
  return (
    <section id="overview" class="section" aria-labelledby="ov-h">
      <h2 id="ov-h" class="sr-only">Overview</h2>
      {c.description && <p class="camp-desc">{c.description}</p>}
      <div class="tiles">
        <Tile label="Items" value={formatCount(c.items)} note={`${c.overlap} annotators each`} />
        <Tile label="Labels" value={formatCount(c.labels)} />
        <Tile label="Traces" value={formatCount(c.counts.traces)} note={plural(c.counts.prompts, "prompt")} />
        <Tile label="Annotators" value={formatCount(c.counts.annotators)} note={`${plural(c.counts.leased, "task")} leased now`} />
        <Tile label="Gold items" value={formatCount(c.counts.gold_items)} note={`${Math.round(c.gold_rate * 100)}% of tasks served`} />
        <Tile label="Settled" value={formatCount(c.counts.adjudicated)} note={plural(c.counts.skipped, "skip")} />
      </div>
      <div class="card">
        <h3 class="card-title">Progress by task</h3>
        <ul class="type-progress">
          {parts.map((p) => (
            <li key={p.task} data-testid="type-progress">
              <span class="tp-label" title={TASK_HELP[p.task]}>{p.label}</span>
              <ProgressBar value={p.fraction} label={`${p.label}: ${Math.round(p.fraction * 100)}%`} />
              <span class="tp-num small">{formatCount(p.labels)} / {formatCount(p.needed)}</span>
            </li>
          ))}
        </ul>
        <p class="small muted meta-line">
          <TaskChips types={c.task_types} /> · lease {Math.round(c.lease_seconds / 60)} min · created by {c.created_by}, {formatRelative(c.created_at)}
        </p>
      </div>
    </section>
  );
}

function Guidelines({ c, api, onPublished }: { c: CampaignDetail; api: CampaignsApi; onPublished: () => void }) {
  const current = c.guidelines[0];
  const [shown, setShown] = useState<number>(current?.version ?? 0);
  const [editing, setEditing] = useState(false);
  const [text, setText] = useState(current?.text ?? "");
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const g = c.guidelines.find((x) => x.version === shown) ?? current;
  const publish = async (e: Event) => {
    e.preventDefault();
    if (!text.trim()) {
      setError("Guidelines cannot be empty.");
      return;
    }
    setBusy(true);
    setError(null);
    try {
      const v = await api.publishGuidelines(c.id, text);
      notify("success", `Guidelines v${v.version} published`, "Labels made from now on record this version.");
      setEditing(false);
      setShown(v.version);
      onPublished();
    } catch (err) {
      setError(errText(err));
    } finally {
      setBusy(false);
    }
  };
  return (
    <section id="guidelines" class="card wide" aria-labelledby="gl-h" data-testid="guidelines">
      <header class="card-head">
        <div>
          <h3 id="gl-h" class="card-title">Guidelines</h3>
          <div class="card-sub small muted">Every label records the version it was made under.</div>
        </div>
        {!editing && (
          <button type="button" class="btn" data-testid="new-guidelines" onClick={() => { setText(current?.text ?? ""); setEditing(true); }}>
            Publish a new version
          </button>
        )}
      </header>
      {editing ? (
        <form onSubmit={publish} aria-label="New guideline version">
          <GuidelinesEditor id="gl-new" value={text} onInput={setText} />
          {error && <p class="error-text" role="alert">{error}</p>}
          <div class="form-actions">
            <button type="submit" class="btn primary" disabled={busy} data-testid="publish-guidelines">
              Publish as v{(current?.version ?? 0) + 1}
            </button>
            <button type="button" class="btn" onClick={() => setEditing(false)}>Cancel</button>
          </div>
        </form>
      ) : (
        <div class="gl-layout">
          <ul class="gl-versions" aria-label="Versions">
            {c.guidelines.map((v) => (
              <li key={v.version}>
                <button type="button" class={`gl-v${v.version === g?.version ? " on" : ""}`} aria-pressed={v.version === g?.version}
                  data-testid="guideline-version" onClick={() => setShown(v.version)}>
                  <strong>v{v.version}</strong>{v.version === current?.version && <span class="badge st-active">current</span>}
                  <span class="small muted block">{v.created_by}, {formatRelative(v.created_at)}</span>
                </button>
              </li>
            ))}
          </ul>
          <div class="gl-text">{g ? <Markdown text={g.text} streaming={false} /> : <p class="muted">No guidelines.</p>}</div>
        </div>
      )}
    </section>
  );
}

function Exports({ c, api }: { c: CampaignDetail; api: CampaignsApi }) {
  const [opts, setOpts] = useState<Record<ExportKind, Record<string, string>>>({ dpo: {}, kto: {}, prm: {}, sft: {} });
  const [gold, setGold] = useState(false);
  const snaps = useLoad<Snapshot[] | null>(() => api.snapshots(c.id).catch(() => null), [c.id]);
  const [busy, setBusy] = useState<string | null>(null);
  const writing = snapshotsBusy(snaps.data);
  // A worker writes the file after the POST: poll while any snapshot is unwritten.
  useEffect(() => {
    if (!writing) return;
    const h = window.setInterval(() => snaps.reload(), 2_000);
    return () => window.clearInterval(h);
  }, [writing, c.id]);
  // Say when a snapshot this page watched being written ends, either way.
  const seen = useRef<Snapshot[]>([]);
  useEffect(() => {
    if (!snaps.data) return;
    for (const s of snapshotsSettled(seen.current, snaps.data)) {
      if (s.status === "ready") {
        notify("success", `${s.kind.toUpperCase()} snapshot v${s.version} is ready`, `${formatCount(s.records)} records`);
      } else {
        notify("error", `${s.kind.toUpperCase()} snapshot v${s.version} failed`, s.error);
      }
    }
    seen.current = snaps.data;
  }, [snaps.data]);
  const freeze = async (kind: ExportKind) => {
    setBusy(kind);
    try {
      const s = await api.freeze(kind, c.id, exportOptions(kind, opts[kind], gold));
      notify("info", `${kind.toUpperCase()} snapshot v${s.version} is being written`, "It can be downloaded once it is ready.");
      snaps.reload();
    } catch (e) {
      notify("error", "Could not freeze the export", errText(e));
    } finally {
      setBusy(null);
    }
  };
  return (
    <section id="exports" class="card wide" aria-labelledby="ex-h" data-testid="exports">
      <header class="card-head">
        <div>
          <h3 id="ex-h" class="card-title">Exports</h3>
          <div class="card-sub small muted">JSON Lines, streamed. Final (adjudicated) labels win over the annotators'.</div>
        </div>
        <label class="check small">
          <input type="checkbox" checked={gold} data-testid="export-include-gold" onChange={(e) => setGold((e.currentTarget as HTMLInputElement).checked)} />
          Include gold items
        </label>
      </header>
      <div class="export-grid">
        {(Object.keys(EXPORT_OPTIONS) as ExportKind[]).map((kind) => (
          <div key={kind} class="export-card" data-testid={`export-${kind}`}>
            <div class="export-name"><strong>{kind.toUpperCase()}</strong> <span class="small muted">{EXPORT_TEXT[kind]}</span></div>
            <div class="export-opts">
              {EXPORT_OPTIONS[kind].map((o) => (
                <label key={o.name} class="export-opt small">
                  <span class="muted">{o.label}</span>
                  <select class="select" name={`${kind}-${o.name}`} value={opts[kind][o.name] ?? o.def}
                    onChange={(e) => setOpts({ ...opts, [kind]: { ...opts[kind], [o.name]: (e.currentTarget as HTMLSelectElement).value } })}>
                    {o.choices.map((ch) => <option key={ch} value={ch}>{ch.replace(/_/g, " ")}</option>)}
                  </select>
                </label>
              ))}
            </div>
            <div class="export-actions">
              <a class="btn primary small-btn" href={exportUrl("/api", kind, c.id, opts[kind], gold)} download data-testid={`download-${kind}`}>
                Download
              </a>
              {snaps.data !== null && (
                <button type="button" class="btn small-btn" disabled={busy !== null} onClick={() => void freeze(kind)} data-testid={`freeze-${kind}`}>
                  {busy === kind ? "Freezing…" : "Freeze snapshot"}
                </button>
              )}
            </div>
          </div>
        ))}
      </div>
      {snaps.data && (
        <div class="table-wrap snapshots">
          <table class="data-table" data-testid="snapshots-table">
            <caption class="cap">Frozen snapshots</caption>
            <thead><tr><th scope="col">Kind</th><th scope="col" class="num">Version</th><th scope="col">Status</th><th scope="col" class="num">Records</th><th scope="col" class="num">Size</th><th scope="col">SHA-256</th><th scope="col">Frozen</th><th /></tr></thead>
            <tbody>
              {snaps.data.length === 0 && <tr><td colSpan={8} class="muted">None yet: freeze one to get a file that never changes, with its checksum.</td></tr>}
              {snaps.data.map((s) => {
                const ready = s.status === "ready";
                return (
                  <tr key={s.id} data-testid="snapshot-row" data-status={s.status}>
                    <th scope="row">{s.kind.toUpperCase()}</th>
                    <td class="num">v{s.version}</td>
                    <td>
                      <span class={`badge snap-${s.status}`} title={s.error || undefined} data-testid="snapshot-status">
                        {s.status === "pending" ? "queued" : s.status}
                      </span>
                      {s.status === "failed" && <span class="small muted block snap-error">{s.error}</span>}
                    </td>
                    <td class="num">{ready ? formatCount(s.records) : "–"}</td>
                    <td class="num">{ready ? formatBytes(s.size_bytes) : "–"}</td>
                    <td>{ready ? <code title={s.sha256}>{s.sha256.slice(0, 12)}…</code> : <span class="muted">–</span>}</td>
                    <td class="small muted">{s.created_by}, {formatRelative(s.created_at)}</td>
                    <td class="actions">
                      {ready
                        ? <a href={s.download_url} download class="btn small-btn" data-testid="snapshot-download">Download</a>
                        : <button type="button" class="btn small-btn" disabled data-testid="snapshot-download">Download</button>}
                    </td>
                  </tr>
                );
              })}
            </tbody>
          </table>
        </div>
      )}
    </section>
  );
}

export function CampaignPage({ api, id }: { api: CampaignsApi; id: string }) {
  const detail = useLoad(() => api.get(id), [id]);
  // Labels keep arriving while annotators work: refresh the numbers quietly.
  useEffect(() => {
    const h = window.setInterval(() => {
      if (document.visibilityState === "visible") detail.reload();
    }, 20_000);
    return () => window.clearInterval(h);
  }, [id]);
  const c = detail.data;
  useEffect(() => {
    if (c) document.title = `${c.name} · Campaigns · Arbor`;
  }, [c?.name]);
  if (!c) {
    return detail.error ? <p class="error-text" role="alert">{detail.error}</p> : <p class="muted">Loading…</p>;
  }
  return (
    <div class="campaign" data-testid="campaign-page">
      <Head c={c} api={api} onChange={detail.set} />
      <Overview c={c} />
      <section id="agreement" class="section" aria-labelledby="ag-h">
        <div class="section-head"><h2 id="ag-h">Agreement</h2><p class="muted small">Gold items are left out; they score annotators instead.</p></div>
        <div class="grid"><AgreementCharts c={c} /></div>
      </section>
      <section id="annotators" class="section" aria-labelledby="an-h">
        <div class="section-head"><h2 id="an-h">Annotators</h2></div>
        <div class="grid three"><AnnotatorCharts c={c} /></div>
        <AnnotatorTable c={c} />
      </section>
      <div class="section"><Adjudication api={api} campaignId={c.id} onChanged={detail.reload} /></div>
      <div class="section"><Sources c={c} api={api} onChanged={detail.reload} /></div>
      <div class="section"><Exports c={c} api={api} /></div>
      <div class="section"><Guidelines c={c} api={api} onPublished={detail.reload} /></div>
    </div>
  );
}
