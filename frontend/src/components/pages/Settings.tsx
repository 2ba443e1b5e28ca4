// /settings/: the user's API keys and their own usage against their limits.
import { useEffect, useState } from "preact/hooks";
import { ApiError } from "../../lib/api";
import { formatRelative } from "../../lib/format";
import {
  compact, dayRange, fraction, lastDays, level, money, resetLabel, reasoningShare, percent,
} from "../../lib/usage";
import type { ApiKeyItem, Limits, MySettings, MyUsage, NewApiKey, UsageApi, Used } from "../../lib/usage";
import { ChartCard, Legend, StackedBars, shortDay } from "../charts/Chart";
import { IconCheck, IconCopy } from "../icons";
import { notify } from "./Shell";

function errText(e: unknown): string {
  return e instanceof ApiError ? e.message : "Something went wrong.";
}

// ---- usage ---------------------------------------------------------------------------

interface LimitRow {
  key: keyof Limits;
  label: string;
  used: number;
  limit: number | null;
  reset?: string;
  unit: string;
}

export function limitRows(u: MyUsage): LimitRow[] {
  const used: Used = u.used;
  return [
    { key: "tokens_per_day", label: "Tokens today", used: used.tokens_today, limit: u.limits.tokens_per_day, reset: u.resets?.day, unit: "tokens" },
    { key: "tokens_per_month", label: "Tokens this month", used: used.tokens_this_month, limit: u.limits.tokens_per_month, reset: u.resets?.month, unit: "tokens" },
    { key: "requests_per_minute", label: "Requests this minute", used: used.requests_this_minute, limit: u.limits.requests_per_minute, unit: "requests" },
    { key: "concurrent_streams", label: "Answers generating now", used: used.streams_now, limit: u.limits.concurrent_streams, unit: "answers" },
  ];
}

export function LimitBar({ row }: { row: LimitRow }) {
  const f = fraction(row.used, row.limit);
  const lv = level(f);
  return (
    <div class={`limit lv-${lv}`} data-testid="usage-limit" data-limit={row.key}>
      <div class="limit-head">
        <span class="limit-label">{row.label}</span>
        <span class="limit-value">
          <strong>{row.used.toLocaleString("en-US")}</strong>
          {row.limit === null ? <span class="muted"> {row.unit} · no limit</span>
            : <span class="muted"> / {row.limit.toLocaleString("en-US")} {row.unit}</span>}
        </span>
      </div>
      <div class="meter-track" role="meter" aria-label={row.label} aria-valuemin={0}
        aria-valuemax={row.limit ?? undefined} aria-valuenow={row.used}
        aria-valuetext={row.limit === null ? `${row.used} ${row.unit}, no limit` : `${row.used} of ${row.limit} ${row.unit}`}>
        <span class="meter-fill" style={{ width: `${(f ?? 0) * 100}%` }} />
      </div>
      <div class="limit-foot small muted">
        {row.limit !== null && <span>{compact(Math.max(0, row.limit - row.used))} left</span>}
        {row.reset && <span>Resets {resetLabel(row.reset)}</span>}
      </div>
    </div>
  );
}

function MyUsageSection({ api }: { api: UsageApi }) {
  const [data, setData] = useState<MyUsage | null>(null);
  const [error, setError] = useState<string | null>(null);
  const load = () => {
    api.myUsage().then((d) => {
      setData(d);
      setError(null);
    }, (e) => setError(errText(e)));
  };
  useEffect(() => {
    load();
    const h = window.setInterval(load, 30_000);
    return () => window.clearInterval(h);
  }, []);

  const { since, until } = lastDays(30);
  const days = dayRange(since, until);
  const hist = new Map((data?.history ?? []).map((h) => [h.day.slice(0, 10), h]));
  const parts = ["prompt", "reasoning", "answer"] as const;
  const series = parts.map((p) => ({
    name: p, values: days.map((d) => (hist.get(d)?.[`${p}_tokens` as const] ?? 0)),
  }));
  const history = data?.history ?? [];
  const totalCost = history.reduce((s, h) => s + (h.cost || 0), 0);
  const share = reasoningShare(history);

  return (
    <section class="section" aria-labelledby="usage-h">
      <div class="section-head">
        <h2 id="usage-h">Your usage</h2>
        <p class="muted small">Tokens count prompt, reasoning and answer. Limits come from your group unless an admin set yours.</p>
      </div>
      {error && <p class="error-text" role="alert">Could not load your usage: {error}</p>}
      {!data && !error && <p class="muted">Loading…</p>}
      {data && (
        <>
          <div class="limits-grid" data-testid="my-usage">
            {limitRows(data).map((r) => <LimitBar key={r.key} row={r} />)}
            <div class="limit" data-testid="usage-limit" data-limit="max_tokens">
              <div class="limit-head">
                <span class="limit-label">Longest answer</span>
                <span class="limit-value"><strong>{data.limits.max_tokens === null ? "no limit" : data.limits.max_tokens.toLocaleString("en-US")}</strong>
                  {data.limits.max_tokens !== null && <span class="muted"> tokens</span>}</span>
              </div>
              <p class="small muted limit-note">
                Reasoning counts toward it.{data.used.reserved_tokens > 0
                  ? ` ${data.used.reserved_tokens.toLocaleString("en-US")} tokens are reserved by answers in progress.` : ""}
              </p>
            </div>
          </div>
          <ChartCard name="my-usage-30d" testid="usage-chart" title="Last 30 days" wide
            subtitle={<>{compact(history.reduce((s, h) => s + h.prompt_tokens + h.reasoning_tokens + h.answer_tokens, 0))} tokens
              · {history.reduce((s, h) => s + h.requests, 0).toLocaleString("en-US")} requests · {money(totalCost)}
              {share !== null && <> · reasoning {percent(share)} of output</>}</>}
            summary={`Tokens per day over the last 30 days, split into prompt, reasoning and answer. Total cost ${money(totalCost)}.`}
            empty={history.length === 0}
            table={{
              columns: ["Day", "Prompt", "Reasoning", "Answer", "Requests", "Cost"],
              rows: days.filter((d) => hist.has(d)).map((d) => {
                const h = hist.get(d)!;
                return [d, h.prompt_tokens.toLocaleString("en-US"), h.reasoning_tokens.toLocaleString("en-US"),
                  h.answer_tokens.toLocaleString("en-US"), h.requests, money(h.cost)];
              }),
            }}>
            <Legend names={[...parts]} />
            <StackedBars labels={days} series={series} format={compact} tickLabel={shortDay} />
          </ChartCard>
        </>
      )}
    </section>
  );
}

// ---- API keys ---------------------------------------------------------------------------

export function SecretPanel({ created, onDone }: { created: NewApiKey; onDone: () => void }) {
  const [copied, setCopied] = useState(false);
  const copy = async () => {
    try {
      await navigator.clipboard.writeText(created.key);
      setCopied(true);
      window.setTimeout(() => setCopied(false), 2000);
    } catch {
      // Clipboard blocked: select the text so Ctrl+C works.
      const el = document.querySelector<HTMLElement>("[data-testid=key-secret]");
      if (el) {
        const r = document.createRange();
        r.selectNodeContents(el);
        const sel = window.getSelection();
        sel?.removeAllRanges();
        sel?.addRange(r);
      }
      notify("info", "Copy it by hand", "Your browser blocked the clipboard; the key is selected.");
    }
  };
  return (
    <div class="secret-panel" role="region" aria-label="Your new API key" data-testid="key-secret-panel">
      <p class="secret-title"><strong>Key “{created.name || created.prefix}” created.</strong></p>
      <p class="secret-warn" role="note">
        Copy it now: <strong>you won't see it again.</strong> Arbor stores only a hash of it.
      </p>
      <div class="secret-row">
        <code class="secret" data-testid="key-secret" tabIndex={0}>{created.key}</code>
        <button type="button" class="btn" data-testid="key-copy" onClick={copy} aria-live="polite">
          {copied ? <><IconCheck size={16} /> Copied</> : <><IconCopy size={16} /> Copy</>}
        </button>
      </div>
      <p class="small muted">Use it as <code>Authorization: Bearer &lt;key&gt;</code> with <code>/v1/chat/completions</code>.</p>
      <button type="button" class="btn" onClick={onDone}>I've saved it</button>
    </div>
  );
}

function KeysSection({ api }: { api: UsageApi }) {
  const [keys, setKeys] = useState<ApiKeyItem[] | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [name, setName] = useState("");
  const [busy, setBusy] = useState(false);
  const [created, setCreated] = useState<NewApiKey | null>(null);
  const [confirming, setConfirming] = useState<string | number | null>(null);

  const load = () =>
    api.keys().then((k) => {
      setKeys(k);
      setError(null);
    }, (e) => setError(errText(e)));
  useEffect(() => {
    void load();
  }, []);

  const create = async (e: Event) => {
    e.preventDefault();
    const n = name.trim();
    if (!n || busy) return;
    setBusy(true);
    try {
      const k = await api.createKey(n);
      setCreated(k);
      setName("");
      await load();
    } catch (err) {
      notify("error", "Could not create the key", errText(err));
    } finally {
      setBusy(false);
    }
  };

  const revoke = async (k: ApiKeyItem) => {
    setBusy(true);
    try {
      await api.revokeKey(k.id);
      setConfirming(null);
      notify("success", "Key revoked", `“${k.name || k.prefix}” no longer works.`);
      await load();
    } catch (err) {
      notify("error", "Could not revoke the key", errText(err));
    } finally {
      setBusy(false);
    }
  };

  const list = keys ?? [];
  return (
    <section class="section" aria-labelledby="keys-h">
      <div class="section-head">
        <h2 id="keys-h">API keys</h2>
        <p class="muted small">
          Keys let scripts use the OpenAI-compatible gateway as you. Calls count against your quota and appear in your
          conversations.
        </p>
      </div>
      <form class="key-form" onSubmit={create}>
        <label for="key-name" class="sr-only">Key name</label>
        <input id="key-name" name="name" class="input" data-testid="key-name" placeholder="Name, e.g. “laptop script”"
          maxLength={100} value={name} onInput={(e) => setName((e.currentTarget as HTMLInputElement).value)} required />
        <button type="submit" class="btn primary" data-testid="key-create" disabled={busy || !name.trim()}>Create key</button>
      </form>
      {created && <SecretPanel created={created} onDone={() => setCreated(null)} />}
      {error && <p class="error-text" role="alert">Could not load your keys: {error}</p>}
      <div class="table-wrap">
        <table class="data-table keys" data-testid="keys-list">
          <caption class="sr-only">Your API keys</caption>
          <thead>
            <tr><th scope="col">Name</th><th scope="col">Key</th><th scope="col">Created</th><th scope="col">Last used</th><th scope="col"><span class="sr-only">Actions</span></th></tr>
          </thead>
          <tbody>
            {keys === null && !error && <tr><td colSpan={5} class="muted">Loading…</td></tr>}
            {keys !== null && list.length === 0 && <tr><td colSpan={5} class="muted">No keys yet.</td></tr>}
            {list.map((k) => (
              <tr key={k.id} data-testid="key-row" data-key-id={String(k.id)} class={k.revoked ? "revoked" : ""}>
                <th scope="row">{k.name || <span class="muted">unnamed</span>}</th>
                <td><code>{k.prefix}…</code></td>
                <td title={k.created_at}>{formatRelative(k.created_at)}</td>
                <td title={k.last_used_at ?? ""}>{k.last_used_at ? formatRelative(k.last_used_at) : <span class="muted">never</span>}</td>
                <td class="actions">
                  {k.revoked ? <span class="badge badge-cancelled">Revoked</span>
                    : confirming === k.id ? (
                      <span class="confirm" role="group" aria-label={`Revoke ${k.name}?`}>
                        <span class="small">Revoke? Scripts using it stop working.</span>
                        <button type="button" class="btn danger small-btn" data-testid="key-revoke-confirm" disabled={busy}
                          onClick={() => void revoke(k)}>Revoke</button>
                        <button type="button" class="btn small-btn" onClick={() => setConfirming(null)}>Cancel</button>
                      </span>
                    ) : (
                      <button type="button" class="btn small-btn" data-testid="key-revoke" aria-label={`Revoke key ${k.name || k.prefix}`}
                        onClick={() => setConfirming(k.id)}>Revoke</button>
                    )}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
    </section>
  );
}

// ---- sharing for annotation ------------------------------------------------------------

export function SharingSection({ api }: { api: UsageApi }) {
  const [prefs, setPrefs] = useState<MySettings | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  useEffect(() => {
    // Through a promise, so an API without this call shows an error instead of throwing.
    Promise.resolve().then(() => api.mySettings()).then(setPrefs, (e) => setError(errText(e)));
  }, []);

  const toggle = async (share: boolean) => {
    setBusy(true);
    try {
      setPrefs(await api.patchMySettings({ share_for_annotation: share }));
      notify("success", share ? "Sharing turned on" : "Sharing turned off",
        share ? "Answers you get from now on may be picked for annotation." : "No more of your answers will be picked.");
    } catch (err) {
      notify("error", "Could not change the setting", errText(err));
    } finally {
      setBusy(false);
    }
  };

  return (
    <section class="section" aria-labelledby="sharing-h">
      <div class="section-head">
        <h2 id="sharing-h">Help improve the model</h2>
        <p class="muted small">
          Annotators rate reasoning traces to make training data. With this on, the first answer of a conversation
          may be picked, with your question, for that. Your name and account are never shown to annotators.
        </p>
      </div>
      {error && <p class="error-text" role="alert">Could not load this setting: {error}</p>}
      {prefs && (
        <label class="share-toggle" data-testid="share-for-annotation">
          <input type="checkbox" checked={prefs.share_for_annotation} disabled={busy}
            onChange={(e) => void toggle((e.currentTarget as HTMLInputElement).checked)} />
          Share my chat answers for annotation
        </label>
      )}
    </section>
  );
}

export function Settings({ api }: { api: UsageApi }) {
  return (
    <div class="settings">
      <MyUsageSection api={api} />
      <KeysSection api={api} />
      <SharingSection api={api} />
    </div>
  );
}
