// /dashboard/ (staff): usage and cost charts, latency distributions, quota
// refusals, endpoint health with drain/enable toggles, and a quota editor.
import { useEffect, useMemo, useState } from "preact/hooks";
import { ApiError } from "../../lib/api";
import { formatMs, formatRelative } from "../../lib/format";
import {
  LIMIT_KEYS, LIMIT_LABELS, compact, dayRange, dayToTs, histogramBins, lastDays, money, percent, pivotByDay,
  refusalSeries, totalTokens,
} from "../../lib/usage";
import type { AdminStats, Distribution, Endpoint, Limits, UsageApi, UsageRow, UserQuota } from "../../lib/usage";
import { ChartCard, HBars, Legend, StackedBars, TimeChart, shortDay } from "../charts/Chart";
import { errText, useLoad } from "../../lib/load";
import type { Loaded } from "../../lib/load";
import { notify } from "./Shell";

// ---- date range ---------------------------------------------------------------------

export interface Range {
  since: string;
  until: string;
}

const PRESETS = [7, 30, 90];

export function rangeFromUrl(search: string, now: Date = new Date()): Range {
  const p = new URLSearchParams(search);
  const def = lastDays(30, now);
  const ok = (s: string | null) => (s && /^\d{4}-\d{2}-\d{2}$/.test(s) ? s : null);
  const since = ok(p.get("since")) ?? def.since;
  const until = ok(p.get("until")) ?? def.until;
  return since <= until ? { since, until } : { since: until, until: since };
}

function DateRange({ value, onChange }: { value: Range; onChange: (r: Range) => void }) {
  const [since, setSince] = useState(value.since);
  const [until, setUntil] = useState(value.until);
  useEffect(() => {
    setSince(value.since);
    setUntil(value.until);
  }, [value.since, value.until]);
  const invalid = !since || !until || since > until;
  return (
    <form class="range" data-testid="date-range" aria-label="Date range" onSubmit={(e) => {
      e.preventDefault();
      if (!invalid) onChange({ since, until });
    }}>
      <div class="presets" role="group" aria-label="Presets">
        {PRESETS.map((d) => {
          const r = lastDays(d);
          const on = r.since === value.since && r.until === value.until;
          return <button key={d} type="button" class={`chip-btn${on ? " on" : ""}`} aria-pressed={on}
            onClick={() => onChange(r)}>{d} days</button>;
        })}
      </div>
      <label class="range-field">From <input type="date" name="since" data-testid="range-since" value={since} max={until}
        onInput={(e) => setSince((e.currentTarget as HTMLInputElement).value)} /></label>
      <label class="range-field">To <input type="date" name="until" data-testid="range-until" value={until} min={since}
        onInput={(e) => setUntil((e.currentTarget as HTMLInputElement).value)} /></label>
      <button type="submit" class="btn" data-testid="range-apply" disabled={invalid}>Apply</button>
    </form>
  );
}

// ---- stat tiles ------------------------------------------------------------------------

function Tile({ label, value, note }: { label: string; value: string; note?: string }) {
  return (
    <div class="tile" data-testid="stat-tile">
      <span class="tile-label">{label}</span>
      <span class="tile-value">{value}</span>
      {note && <span class="tile-note small muted">{note}</span>}
    </div>
  );
}

function DistChart({ name, title, dist, loading, error }: {
  name: string; title: string; dist: Distribution | undefined; loading: boolean; error: string | null;
}) {
  const bins = dist ? histogramBins(dist.histogram, (v) => formatMs(v)) : [];
  const pct = dist ? `p50 ${formatMs(dist.p50)} · p90 ${formatMs(dist.p90)} · p99 ${formatMs(dist.p99)}` : "";
  return (
    <ChartCard name={name} title={title} subtitle={pct} loading={loading} error={error}
      empty={bins.every((b) => b.count === 0)}
      summary={`${title}: ${pct}. ${bins.map((b) => `${b.label}: ${b.count}`).join(", ")}.`}
      table={{ columns: ["Bucket", "Responses"], rows: bins.map((b) => [b.label, b.count]) }}>
      <StackedBars labels={bins.map((b) => b.label)} series={[{ name: "responses", values: bins.map((b) => b.count) }]}
        format={compact} color={name === "ttft" ? 1 : 2} height={180} />
    </ChartCard>
  );
}

// ---- endpoints -----------------------------------------------------------------------

function Switch({ on, label, onToggle, disabled, testid }: {
  on: boolean; label: string; onToggle: () => void; disabled?: boolean; testid: string;
}) {
  return (
    <button type="button" role="switch" aria-checked={on} aria-label={label} class={`switch${on ? " on" : ""}`}
      data-testid={testid} disabled={disabled} onClick={onToggle}>
      <span class="knob" aria-hidden="true" />
    </button>
  );
}

function EndpointsTable({ api, eps, onChanged }: {
  api: UsageApi; eps: Loaded<Endpoint[]>; onChanged: (e: Endpoint) => void;
}) {
  const [pending, setPending] = useState<string | null>(null);
  const patch = async (e: Endpoint, body: { enabled?: boolean; draining?: boolean }) => {
    const what = "enabled" in body ? (body.enabled ? "enabled" : "disabled") : body.draining ? "draining" : "taking new work";
    setPending(String(e.id));
    try {
      const res = await api.patchEndpoint(e.id, body);
      onChanged(res && typeof res === "object" && "id" in res ? { ...e, ...res } : { ...e, ...body });
      notify("success", `Endpoint ${what}`, e.base_url);
    } catch (err) {
      notify("error", "Could not change the endpoint", errText(err));
    } finally {
      setPending(null);
    }
  };
  const list = eps.data ?? [];
  return (
    <section class="card wide" aria-labelledby="eps-h">
      <header class="card-head">
        <div>
          <h3 id="eps-h" class="card-title">Endpoints</h3>
          <div class="card-sub small muted">Draining finishes running answers but takes no new ones. Refreshes every 15 s.</div>
        </div>
      </header>
      {eps.error && <p class="error-text" role="alert">{eps.error}</p>}
      <div class="table-wrap">
        <table class="data-table endpoints" data-testid="endpoints-table">
          <caption class="sr-only">Model endpoints</caption>
          <thead>
            <tr>
              <th scope="col">Endpoint</th><th scope="col">Health</th><th scope="col">Load</th>
              <th scope="col" class="num">Weight</th><th scope="col">Enabled</th><th scope="col">Draining</th>
            </tr>
          </thead>
          <tbody>
            {eps.loading && <tr><td colSpan={6} class="muted">Loading…</td></tr>}
            {!eps.loading && list.length === 0 && !eps.error && <tr><td colSpan={6} class="muted">No endpoints.</td></tr>}
            {list.map((e) => {
              const busy = pending === String(e.id);
              const cap = e.max_concurrency ?? null;
              const f = cap ? Math.min(1, e.running / cap) : 0;
              return (
                <tr key={e.id} data-testid="endpoint-row" data-endpoint-id={String(e.id)} data-health={e.health}
                  class={e.enabled ? "" : "disabled"}>
                  <th scope="row">
                    <span class="ep-model">{e.model}</span>
                    <span class="ep-url small muted">{e.base_url}</span>
                  </th>
                  <td>
                    <span class={`health h-${e.health}`} data-testid="endpoint-health">
                      <span class="dot" aria-hidden="true" />{e.health}
                    </span>
                    <span class="small muted block" title={e.last_check_at ?? ""}>
                      {e.last_check_at ? `checked ${formatRelative(e.last_check_at)}` : "never checked"}
                    </span>
                    {e.last_error && <span class="small error-text block" title={e.last_error}>{e.last_error.slice(0, 80)}</span>}
                  </td>
                  <td>
                    <span class="load">
                      <span class="meter-track small-track" aria-hidden="true"><span class="meter-fill" style={{ width: `${f * 100}%` }} /></span>
                      <span class="small">{e.running}{cap ? ` / ${cap}` : ""} running · {e.queued} queued</span>
                    </span>
                  </td>
                  <td class="num">{e.weight}</td>
                  <td>
                    <Switch on={e.enabled} testid="endpoint-enabled" disabled={busy}
                      label={`${e.enabled ? "Disable" : "Enable"} ${e.base_url}`} onToggle={() => void patch(e, { enabled: !e.enabled })} />
                  </td>
                  <td>
                    <Switch on={e.draining} testid="endpoint-draining" disabled={busy}
                      label={`${e.draining ? "Stop draining" : "Drain"} ${e.base_url}`} onToggle={() => void patch(e, { draining: !e.draining })} />
                  </td>
                </tr>
              );
            })}
          </tbody>
        </table>
      </div>
    </section>
  );
}

/** Endpoint history on one time axis: load (running + queued) per endpoint, gaps where unhealthy stays visible in the table. */
export function endpointSeries(eps: Endpoint[]): { x: number[]; series: { name: string; values: (number | null)[] }[]; rows: (string | number)[][] } {
  const times = new Set<number>();
  for (const e of eps) for (const h of e.history ?? []) times.add(Math.round(Date.parse(h.at) / 1000));
  const x = [...times].filter((t) => Number.isFinite(t)).sort((a, b) => a - b);
  const idx = new Map(x.map((t, i) => [t, i]));
  const series = eps.map((e) => {
    const values: (number | null)[] = x.map(() => null);
    for (const h of e.history ?? []) {
      const i = idx.get(Math.round(Date.parse(h.at) / 1000));
      if (i !== undefined) values[i] = h.healthy === false ? 0 : (h.running || 0) + (h.queued || 0);
    }
    return { name: `${e.model} · ${e.base_url.replace(/^https?:\/\//, "")}`, values };
  });
  const rows: (string | number)[][] = [];
  for (const e of eps) for (const h of e.history ?? []) {
    rows.push([new Date(h.at).toLocaleString(), e.base_url, h.healthy === null ? "unknown" : h.healthy ? "healthy" : "unhealthy",
      h.running, h.queued, h.throughput === null || h.throughput === undefined ? "–" : h.throughput.toFixed(1)]);
  }
  return { x, series, rows };
}

function HealthStrips({ eps }: { eps: Endpoint[] }) {
  return (
    <ul class="health-strips" aria-hidden="true">
      {eps.map((e) => {
        const hs = e.history ?? [];
        return (
          <li key={e.id}>
            <span class="strip-label small" title={e.base_url}>{e.base_url.replace(/^https?:\/\//, "")}</span>
            <span class="strip">
              {hs.map((h, i) => (
                <span key={i} class={`cell ${h.healthy === null ? "unknown" : h.healthy ? "ok" : "bad"}`}
                  title={`${new Date(h.at).toLocaleString()}: ${h.healthy === null ? "unknown" : h.healthy ? "healthy" : "unhealthy"}`} />
              ))}
              {hs.length === 0 && <span class="small muted">no checks yet</span>}
            </span>
          </li>
        );
      })}
    </ul>
  );
}

// ---- quota editor ------------------------------------------------------------------------

type Draft = Record<keyof Limits, string>;

export function draftFrom(q: UserQuota): Draft {
  const d = {} as Draft;
  for (const k of LIMIT_KEYS) d[k] = q[k] === null || q[k] === undefined ? "" : String(q[k]);
  return d;
}

/** Blank = null (the group default); otherwise a whole number ≥ 0. Returns the body or the first error. */
export function limitsFromDraft(d: Draft): { limits: Limits } | { error: string } {
  const out = {} as Limits;
  for (const k of LIMIT_KEYS) {
    const s = d[k].trim().replace(/[,_\s]/g, "");
    if (s === "") {
      out[k] = null;
      continue;
    }
    if (!/^\d+$/.test(s)) return { error: `${LIMIT_LABELS[k]}: a whole number, or blank for the group default.` };
    out[k] = Number(s);
  }
  return { limits: out };
}

const USED_FOR: Partial<Record<keyof Limits, keyof UserQuota["used"]>> = {
  tokens_per_day: "tokens_today",
  tokens_per_month: "tokens_this_month",
  requests_per_minute: "requests_this_minute",
  concurrent_streams: "streams_now",
};

function QuotaEditor({ api, initialUser }: { api: UsageApi; initialUser: string }) {
  const [username, setUsername] = useState(initialUser);
  const [quota, setQuota] = useState<UserQuota | null>(null);
  const [draft, setDraft] = useState<Draft | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);

  const load = async (e?: Event) => {
    e?.preventDefault();
    const u = username.trim();
    if (!u) return;
    setBusy(true);
    setError(null);
    try {
      const q = await api.quota(u);
      setQuota(q);
      setDraft(draftFrom(q));
    } catch (err) {
      setQuota(null);
      setDraft(null);
      setError(err instanceof ApiError && err.code === "not_found" ? `No user “${u}”.` : errText(err));
    } finally {
      setBusy(false);
    }
  };

  const save = async (e: Event, override?: Limits) => {
    e.preventDefault();
    if (!quota || !draft) return;
    const parsed = override ? { limits: override } : limitsFromDraft(draft);
    if ("error" in parsed) {
      setError(parsed.error);
      return;
    }
    setBusy(true);
    setError(null);
    try {
      const q = await api.putQuota(quota.username, parsed.limits);
      setQuota(q);
      setDraft(draftFrom(q));
      notify("success", "Quota saved", `Limits for ${q.username} updated.`);
    } catch (err) {
      setError(errText(err));
    } finally {
      setBusy(false);
    }
  };

  return (
    <section class="card wide" data-testid="quota-editor" aria-labelledby="quota-h">
      <header class="card-head">
        <div>
          <h3 id="quota-h" class="card-title">User quota</h3>
          <div class="card-sub small muted">Leave a field blank to use the group default.</div>
        </div>
      </header>
      <form class="quota-find" onSubmit={load}>
        <label for="quota-user" class="sr-only">Username</label>
        <input id="quota-user" class="input" data-testid="quota-username" placeholder="Username" autoComplete="off"
          value={username} onInput={(e) => setUsername((e.currentTarget as HTMLInputElement).value)} />
        <button type="submit" class="btn" data-testid="quota-load" disabled={busy || !username.trim()}>Load</button>
      </form>
      {error && <p class="error-text" role="alert">{error}</p>}
      {quota && draft && (
        <form class="quota-form" onSubmit={(e) => void save(e)} aria-label={`Limits for ${quota.username}`}>
          <table class="data-table quota-table">
            <caption class="sr-only">Limits for {quota.username}</caption>
            <thead>
              <tr><th scope="col">Limit</th><th scope="col">Override</th><th scope="col" class="num">Effective</th><th scope="col" class="num">Used now</th></tr>
            </thead>
            <tbody>
              {LIMIT_KEYS.map((k) => {
                const eff = quota.effective?.[k];
                const usedKey = USED_FOR[k];
                return (
                  <tr key={k}>
                    <th scope="row"><label for={`q-${k}`}>{LIMIT_LABELS[k]}</label></th>
                    <td>
                      <input id={`q-${k}`} name={k} class="input num-input" inputMode="numeric" data-testid={`quota-${k}`}
                        placeholder={eff === null || eff === undefined ? "default: no limit" : `default: ${eff.toLocaleString("en-US")}`}
                        value={draft[k]} onInput={(e) => setDraft({ ...draft, [k]: (e.currentTarget as HTMLInputElement).value })} />
                    </td>
                    <td class="num">{eff === null || eff === undefined ? "no limit" : eff.toLocaleString("en-US")}</td>
                    <td class="num">{usedKey && quota.used ? (quota.used[usedKey] ?? 0).toLocaleString("en-US") : "–"}</td>
                  </tr>
                );
              })}
            </tbody>
          </table>
          <div class="form-actions">
            <button type="submit" class="btn primary" data-testid="quota-save" disabled={busy}>Save</button>
            <button type="button" class="btn" data-testid="quota-reset" disabled={busy}
              onClick={(e) => void save(e, { tokens_per_day: null, tokens_per_month: null, requests_per_minute: null, concurrent_streams: null, max_tokens: null })}>
              Use group defaults
            </button>
          </div>
        </form>
      )}
    </section>
  );
}

// ---- page ----------------------------------------------------------------------------------

const TOKEN_PARTS = ["prompt", "reasoning", "answer"];

function rowsTable(rows: UsageRow[], first: string) {
  return {
    columns: [first, "Prompt", "Reasoning", "Answer", "Requests", "Cost"],
    rows: rows.map((r) => [r.key, r.prompt_tokens.toLocaleString("en-US"), r.reasoning_tokens.toLocaleString("en-US"),
      r.answer_tokens.toLocaleString("en-US"), r.requests.toLocaleString("en-US"), money(r.cost)]),
  };
}

export function Dashboard({ api, initialRange }: { api: UsageApi; initialRange: Range }) {
  const [range, setRange] = useState<Range>(initialRange);
  const setAndPush = (r: Range) => {
    setRange(r);
    const u = new URL(window.location.href);
    u.searchParams.set("since", r.since);
    u.searchParams.set("until", r.until);
    history.replaceState({}, "", u.toString());
  };
  const { since, until } = range;
  const byDay = useLoad(() => api.usage("day", since, until), [since, until]);
  const byModel = useLoad(() => api.usage("model", since, until), [since, until]);
  const byUser = useLoad(() => api.usage("user", since, until), [since, until]);
  const stats = useLoad<AdminStats>(() => api.stats(since, until), [since, until]);
  const eps = useLoad(() => api.endpoints(), []);
  const [epsData, setEpsData] = useState<Endpoint[] | null>(null);
  useEffect(() => setEpsData(eps.data), [eps.data]);
  useEffect(() => {
    const h = window.setInterval(() => eps.reload(), 15_000);
    return () => window.clearInterval(h);
  }, []);

  const days = useMemo(() => dayRange(since, until), [since, until]);
  const x = useMemo(() => days.map(dayToTs), [days]);
  const bdm = stats.data?.by_day_model ?? [];
  const tokensByModel = useMemo(() => pivotByDay(bdm, days, (r) => r.day, (r) => r.model, (r) => r.tokens), [bdm, days]);
  const costByModel = useMemo(
    () => pivotByDay(bdm, days, (r) => r.day, (r) => r.model, (r) => r.cost, 8, tokensByModel.map((s) => s.name)),
    [bdm, days, tokensByModel],
  );
  const refusals = useMemo(() => refusalSeries(stats.data?.refusals ?? [], days), [stats.data, days]);
  const dayRows = byDay.data ?? [];
  const dayMap = new Map(dayRows.map((r) => [r.key.slice(0, 10), r]));
  const shareSeries = useMemo(() => [{
    name: "reasoning share",
    values: days.map((d) => {
      const r = dayMap.get(d);
      const out = r ? r.reasoning_tokens + r.answer_tokens : 0;
      return out > 0 ? (r!.reasoning_tokens / out) : null;
    }),
  }], [byDay.data, days]);
  const totals = dayRows.reduce((a, r) => ({
    tokens: a.tokens + totalTokens(r), cost: a.cost + (r.cost || 0), requests: a.requests + (r.requests || 0),
  }), { tokens: 0, cost: 0, requests: 0 });
  const users = [...(byUser.data ?? [])].sort((a, b) => totalTokens(b) - totalTokens(a));
  const models = [...(byModel.data ?? [])].sort((a, b) => totalTokens(b) - totalTokens(a));
  const refusalTotal = (stats.data?.refusals ?? []).reduce((s, r) => s + r.count, 0);
  const epList = epsData ?? [];
  const epHist = useMemo(() => endpointSeries(epList), [epsData]);
  const modelTable = (series: { name: string; values: (number | null)[] }[], fmt: (v: number) => string) => ({
    columns: ["Day", ...series.map((s) => s.name)],
    rows: days.map((d, i) => [d, ...series.map((s) => fmt(s.values[i] ?? 0))]).filter((r) => r.slice(1).some((v) => v !== fmt(0))),
  });

  return (
    <div class="dashboard">
      <div class="dash-toolbar">
        <DateRange value={range} onChange={setAndPush} />
      </div>
      <div class="tiles">
        <Tile label="Tokens" value={compact(totals.tokens)} note={`${since} → ${until}`} />
        <Tile label="Cost" value={money(totals.cost)} />
        <Tile label="Requests" value={totals.requests.toLocaleString("en-US")} />
        <Tile label="Reasoning share of output" value={percent(stats.data?.reasoning_share ?? null)} />
        <Tile label="Time to first token (p50)" value={formatMs(stats.data?.ttft_ms?.p50)} />
        <Tile label="Quota refusals" value={refusalTotal.toLocaleString("en-US")} />
      </div>

      <div class="grid">
        <ChartCard name="tokens-by-model" title="Tokens per day by model" wide loading={stats.loading} error={stats.error}
          empty={bdm.length === 0}
          summary={`Tokens per day from ${since} to ${until}, by model: ${tokensByModel.map((s) => `${s.name} ${compact(s.values.reduce<number>((a, b) => a + (b ?? 0), 0))}`).join(", ")}.`}
          table={modelTable(tokensByModel, (v) => v.toLocaleString("en-US"))}>
          <Legend names={tokensByModel.map((s) => s.name)} />
          <StackedBars labels={days} series={tokensByModel} format={compact} tickLabel={shortDay} />
        </ChartCard>

        <ChartCard name="cost-by-model" title="Cost per day by model" wide loading={stats.loading} error={stats.error}
          empty={bdm.length === 0}
          summary={`Cost per day by model: ${costByModel.map((s) => `${s.name} ${money(s.values.reduce<number>((a, b) => a + (b ?? 0), 0))}`).join(", ")}.`}
          table={modelTable(costByModel, money)}>
          <TimeChart x={x} series={costByModel} format={money} days />
        </ChartCard>

        <ChartCard name="tokens-by-user" title="Tokens by user" loading={byUser.loading} error={byUser.error}
          subtitle="prompt · reasoning · answer, with cost" empty={users.length === 0}
          summary={`Tokens by user: ${users.slice(0, 10).map((u) => `${u.key} ${compact(totalTokens(u))} (${money(u.cost)})`).join(", ")}.`}
          table={rowsTable(users, "User")}>
          <Legend names={TOKEN_PARTS} />
          <HBars parts={TOKEN_PARTS} format={compact}
            rows={users.slice(0, 15).map((u) => ({ label: u.key, values: [u.prompt_tokens, u.reasoning_tokens, u.answer_tokens], note: money(u.cost) }))} />
        </ChartCard>

        <ChartCard name="tokens-by-model-total" title="Tokens by model" loading={byModel.loading} error={byModel.error}
          subtitle="prompt · reasoning · answer, with cost" empty={models.length === 0}
          summary={`Tokens by model: ${models.map((m) => `${m.key} ${compact(totalTokens(m))} (${money(m.cost)})`).join(", ")}.`}
          table={rowsTable(models, "Model")}>
          <Legend names={TOKEN_PARTS} />
          <HBars parts={TOKEN_PARTS} format={compact}
            rows={models.map((m) => ({ label: m.key, values: [m.prompt_tokens, m.reasoning_tokens, m.answer_tokens], note: money(m.cost) }))} />
        </ChartCard>

        <ChartCard name="reasoning-share" title="Reasoning share of output" loading={byDay.loading} error={byDay.error}
          subtitle={`Over the range: ${percent(stats.data?.reasoning_share ?? null)} of output tokens were reasoning`}
          empty={dayRows.length === 0}
          summary={`Share of output tokens spent on reasoning per day; ${percent(stats.data?.reasoning_share ?? null)} over the range.`}
          table={{
            columns: ["Day", "Reasoning", "Answer", "Share"],
            rows: days.filter((d) => dayMap.has(d)).map((d) => {
              const r = dayMap.get(d)!;
              const out = r.reasoning_tokens + r.answer_tokens;
              return [d, r.reasoning_tokens.toLocaleString("en-US"), r.answer_tokens.toLocaleString("en-US"), out ? percent(r.reasoning_tokens / out, 1) : "–"];
            }),
          }}>
          <TimeChart x={x} series={shareSeries} format={(v) => percent(v)} days height={200} />
        </ChartCard>

        <ChartCard name="refusals" title="Quota refusals" loading={stats.loading} error={stats.error}
          subtitle={`${refusalTotal.toLocaleString("en-US")} refused requests, by limit`} empty={refusalTotal === 0}
          summary={`Refused requests per day by limit: ${refusals.map((s) => `${s.name} ${s.values.reduce<number>((a, b) => a + (b ?? 0), 0)}`).join(", ")}.`}
          table={{
            columns: ["Day", "Limit", "Refusals"],
            rows: (stats.data?.refusals ?? []).map((r) => [r.day, r.limit, r.count]),
          }}>
          <Legend names={refusals.map((s) => s.name)} />
          <StackedBars labels={days} series={refusals} format={compact} tickLabel={shortDay} height={180} />
        </ChartCard>

        <DistChart name="ttft" title="Time to first token" dist={stats.data?.ttft_ms} loading={stats.loading} error={stats.error} />
        <DistChart name="thinking" title="Thinking time" dist={stats.data?.thinking_ms} loading={stats.loading} error={stats.error} />

        <ChartCard name="endpoint-health" title="Endpoint health and load over time" wide loading={eps.loading && !epsData}
          error={eps.error} empty={epHist.x.length === 0}
          subtitle="Load = running + queued answers; 0 while unhealthy. Strips: green healthy, red unhealthy, grey unknown."
          summary={epList.map((e) => {
            const hs = e.history ?? [];
            const bad = hs.filter((h) => h.healthy === false).length;
            return `${e.base_url}: ${e.health} now, ${bad} of ${hs.length} checks unhealthy`;
          }).join("; ") || "No endpoint history."}
          table={{ columns: ["Time", "Endpoint", "Health", "Running", "Queued", "Throughput (tok/s)"], rows: epHist.rows }}>
          <HealthStrips eps={epList} />
          <TimeChart x={epHist.x} series={epHist.series} format={compact} height={200} stepped />
        </ChartCard>
      </div>

      <EndpointsTable api={api} eps={{ ...eps, data: epsData }}
        onChanged={(e) => setEpsData((cur) => (cur ?? []).map((x) => (String(x.id) === String(e.id) ? e : x)))} />

      <QuotaEditor api={api} initialUser={new URLSearchParams(window.location.search).get("user") ?? ""} />
    </div>
  );
}
