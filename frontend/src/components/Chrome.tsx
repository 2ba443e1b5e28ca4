// Sidebar, top bar, connection state, theme toggle, toasts.
import { useEffect, useState } from "preact/hooks";
import { formatRelative } from "../lib/format";
import { applyTheme, getThemePref, nextTheme } from "../lib/theme";
import type { ThemePref } from "../lib/theme";
import { branchMap } from "../lib/tree";
import {
  conn, conversations, conversationsCount, conversationsLoading, dismissToast, getBoot, loadMoreConversations,
  navigate, retryConnection, showMessage, toasts, view,
} from "../store";
import { Account } from "./Account";
import { IconAuto, IconMoon, IconPlus, IconSun, IconX, Logo } from "./icons";

export function ThemeToggle() {
  const [pref, setPref] = useState<ThemePref>(getThemePref());
  const Icon = pref === "dark" ? IconMoon : pref === "light" ? IconSun : IconAuto;
  const label = pref === "system" ? "Theme: follows the system" : `Theme: ${pref}`;
  return (
    <button type="button" class="icon-btn" data-testid="theme-toggle" aria-label={`${label}. Switch theme`}
      title={label} onClick={() => {
        const n = nextTheme(pref);
        applyTheme(n);
        setPref(n);
      }}>
      <Icon />
    </button>
  );
}

export function ConnectionState() {
  const c = conn.value;
  const [now, setNow] = useState(Date.now());
  const [since, setSince] = useState(Date.now());
  useEffect(() => {
    setSince(Date.now());
  }, [c.state, c.retryInMs]);
  useEffect(() => {
    if (c.state !== "reconnecting") return;
    const h = window.setInterval(() => setNow(Date.now()), 500);
    return () => window.clearInterval(h);
  }, [c.state]);
  let text = "Connected";
  if (c.state === "connecting") text = "Connecting…";
  if (c.state === "closed") text = "Disconnected";
  if (c.state === "reconnecting") {
    const left = c.retryInMs ? Math.max(0, Math.ceil((since + c.retryInMs - now) / 1000)) : 0;
    text = left > 0 ? `Reconnecting in ${left} s` : "Reconnecting…";
  }
  const clickable = c.state === "reconnecting";
  return (
    <button type="button" class={`conn conn-${c.state}`} data-testid="connection-state" data-state={c.state}
      disabled={!clickable} onClick={() => retryConnection()}
      title={clickable ? "Reconnect now" : text} aria-label={`Connection: ${text}`}>
      <span class="dot" aria-hidden="true" />
      <span class="conn-text">{text}</span>
    </button>
  );
}

function linkClick(e: MouseEvent, path: string, after?: () => void) {
  if (e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
  e.preventDefault();
  navigate(path);
  after?.();
}

/** The active conversation's messages as a compact branch map. */
function MessageTreeMap({ onNavigate }: { onNavigate: () => void }) {
  const v = view.value;
  const rows = branchMap(v.tree, v.sel);
  if (rows.length < 2) return null;
  const forks = rows.some((r) => r.of > 1);
  return (
    <div class="message-tree" data-testid="message-tree" role="tree" aria-label="Messages of this conversation">
      <div class="mt-head">
        {forks ? "Branches" : "Messages"}
      </div>
      <ul>
        {rows.map((r) => (
          <li key={r.id} role="none">
            <button type="button" role="treeitem" aria-level={r.level + 1} aria-current={r.active ? "true" : undefined}
              class={`mt-node ${r.role}${r.active ? " active" : ""}`} style={{ "--lvl": r.level }}
              data-testid="message-tree-node" data-message-id={r.id}
              title={r.of > 1 ? `${r.role === "user" ? "Message" : "Answer"} ${r.n} of ${r.of}: ${r.label.slice(0, 200)}` : r.label.slice(0, 200)}
              onClick={() => {
                showMessage(r.id);
                onNavigate();
                requestAnimationFrame(() => {
                  const el = document.querySelector(`[data-message-id="${r.id}"], [data-response-id="${r.id}"]`);
                  el?.scrollIntoView({ block: "nearest" });
                });
              }}>
              <span class="mt-dot" aria-hidden="true" />
              {r.of > 1 && <span class="mt-n">{r.n}/{r.of}</span>}
              <span class="mt-label">{r.role === "user" ? r.label : `↳ ${r.label}`}</span>
            </button>
          </li>
        ))}
      </ul>
    </div>
  );
}

export function Sidebar({ onNavigate }: { onNavigate: () => void }) {
  const boot = getBoot();
  const items = conversations.value;
  const activeId = view.value.id;
  const more = items.length < conversationsCount.value;
  return (
    <aside class="sidebar" data-testid="sidebar" aria-label="Conversations">
      <div class="brand">
        <Logo />
        <span class="brand-name">Arbor</span>
      </div>
      <a href="/" class="new-chat" data-testid="new-chat" onClick={(e) => linkClick(e as MouseEvent, "/", onNavigate)}>
        <IconPlus size={16} /> New chat
      </a>
      <nav class="conv-list" aria-label="Conversation history">
        {items.length === 0 && !conversationsLoading.value && <p class="muted small pad">No conversations yet.</p>}
        <ul>
          {items.map((c) => (
            <li key={c.id}>
              <a href={`/c/${c.id}/`} class={`conv-link${c.id === activeId ? " active" : ""}`}
                data-testid="conversation-link" data-conversation-id={c.id}
                aria-current={c.id === activeId ? "page" : undefined}
                onClick={(e) => linkClick(e as MouseEvent, `/c/${c.id}/`, onNavigate)}>
                <span class="conv-title">{c.title || "Untitled"}</span>
                <span class="conv-time">{formatRelative(c.updated_at)}</span>
              </a>
              {c.id === activeId && <MessageTreeMap onNavigate={onNavigate} />}
            </li>
          ))}
        </ul>
        {more && (
          <button type="button" class="ghost small load-more" disabled={conversationsLoading.value}
            onClick={loadMoreConversations}>
            {conversationsLoading.value ? "Loading…" : "Show more"}
          </button>
        )}
      </nav>
      <Account username={boot.user.username} roles={boot.user.roles} logoutUrl={boot.logout_url} />
    </aside>
  );
}

export function Toasts() {
  return (
    <div class="toasts" aria-live="assertive" aria-relevant="additions">
      {toasts.value.map((t) => (
        <div key={t.id} class={`toast toast-${t.kind}`} data-testid="toast" role={t.kind === "error" ? "alert" : "status"}>
          <div class="toast-body">
            <strong class="toast-title">{t.title}</strong>
            <span class="toast-msg">{t.message}</span>
          </div>
          <button type="button" class="icon-btn small" aria-label="Dismiss" onClick={() => dismissToast(t.id)}>
            <IconX size={16} />
          </button>
        </div>
      ))}
    </div>
  );
}
