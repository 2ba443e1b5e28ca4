// Application state (Preact signals) and the glue between socket, API and view.
import { batch, computed, signal } from "@preact/signals";
import type { Signal } from "@preact/signals";
import { Api, ApiError } from "./lib/api";
import { wsUrl } from "./lib/boot";
import { formatRetryAfter } from "./lib/format";
import { limitTitle, localizeTimes, mentionsRetry } from "./lib/usage";
import {
  Sequencer, emptyResponse, fromSnapshot, fromSummary, isTerminal,
} from "./lib/reducer";
import type { ResponseState } from "./lib/reducer";
import { ChatSocket, RequestError } from "./lib/socket";
import type { ConnState } from "./lib/socket";
import { activeBranch, addMessage, buildTree, removeMessage, selectPathTo, stepSibling } from "./lib/tree";
import type { MessageTree } from "./lib/tree";
import type {
  Boot, ConversationItem, ErrorFrame, Message, ResponseCreatedFrame, ResponseEvent, ResponseSnapshot,
} from "./lib/types";

// ---- toasts ---------------------------------------------------------------

export interface Toast {
  id: number;
  kind: "error" | "info" | "success";
  title: string;
  message: string;
}

const ERROR_TITLES: Record<string, string> = {
  quota_exceeded: "Quota reached",
  rate_limited: "Too many requests",
  model_unavailable: "Model unavailable",
  too_large: "Message too long",
  forbidden: "Not allowed",
  not_found: "Not found",
  invalid_request: "Request rejected",
  internal: "Server error",
  disconnected: "Connection lost",
  network: "Network error",
};

export function errorTitle(code: string): string {
  return ERROR_TITLES[code] ?? "Something went wrong";
}

export const toasts = signal<Toast[]>([]);
let toastSeq = 0;

export function pushToast(t: Omit<Toast, "id">, ttlMs = t.kind === "error" ? 12_000 : 5_000): number {
  const id = ++toastSeq;
  toasts.value = [...toasts.value.slice(-3), { ...t, id }];
  if (ttlMs > 0) window.setTimeout(() => dismissToast(id), ttlMs);
  return id;
}

export function dismissToast(id: number): void {
  toasts.value = toasts.value.filter((t) => t.id !== id);
}

/** Bumped when the user's usage may have changed (a finished answer, a refusal): the meter reloads. */
export const usageTick = signal(0);

export function toastError(code: string, message: string, retryAfterS?: number | null): void {
  const retry = formatRetryAfter(retryAfterS);
  if (code === "quota_exceeded" || code === "rate_limited") {
    // The message names the limit and its reset time: title it by the limit, show times locally,
    // and add the retry hint only when the message does not already say it.
    const msg = localizeTimes(message);
    pushToast({
      kind: "error",
      title: limitTitle(msg) ?? errorTitle(code),
      message: retry && !mentionsRetry(msg) ? `${msg} ${retry}` : msg,
    });
    usageTick.value++;
    return;
  }
  pushToast({ kind: "error", title: errorTitle(code), message: retry ? `${message} ${retry}` : message });
}

// ---- state ----------------------------------------------------------------

export interface ViewState {
  /** null = a new, unsaved chat */
  id: string | null;
  title: string;
  model: string | null;
  tree: MessageTree;
  /** Branch choices (parent id -> child id); see lib/tree.ts. */
  sel: ReadonlyMap<string, string>;
  loading: boolean;
  error: string | null;
}

const emptyTree = (): MessageTree => buildTree([]);

export const conn = signal<{ state: ConnState; retryInMs?: number }>({ state: "connecting" });
export const view = signal<ViewState>({ id: null, title: "", model: null, tree: emptyTree(), sel: new Map(), loading: false, error: null });
export const conversations = signal<ConversationItem[]>([]);
export const conversationsCount = signal(0);
export const conversationsLoading = signal(false);
export const selectedModel = signal<string | null>(null);
export const sending = signal(false);
export const stopping = signal<string | null>(null);
/** Text to put back into the composer (after a rejected send). */
export const composerRestore = signal<{ text: string; n: number } | null>(null);
export const announce = signal("");

export const branch = computed(() => activeBranch(view.value.tree, view.value.sel));

// Response states: one signal each, so only the turn that changes re-renders.
const responseSignals = new Map<string, Signal<ResponseState>>();
const live = new Map<string, ResponseState>();
const sequencers = new Map<string, Sequencer>();
const dirty = new Set<string>();
let flushScheduled = false;

export function responseSignal(id: string): Signal<ResponseState> {
  let s = responseSignals.get(id);
  if (!s) {
    s = signal(live.get(id) ?? emptyResponse(id));
    responseSignals.set(id, s);
  }
  return s;
}

/** The unfinished response of the shown branch, if any (drives Stop). */
export const activeResponseId = computed<string | null>(() => {
  const b = branch.value;
  const last = b[b.length - 1];
  if (!last || last.role !== "assistant") return null;
  const st = responseSignal(last.id).value;
  return isTerminal(st) ? null : last.id;
});

let boot: Boot;
let api: Api;
let socket: ChatSocket;
let navToken = 0;

function setLive(state: ResponseState): void {
  live.set(state.id, state);
  dirty.add(state.id);
  scheduleFlush();
}

function scheduleFlush(): void {
  if (flushScheduled) return;
  flushScheduled = true;
  const run = () => {
    if (!flushScheduled) return;
    flushScheduled = false;
    flush();
  };
  // One DOM update per animation frame; the timeout covers hidden tabs.
  requestAnimationFrame(run);
  window.setTimeout(run, 250);
}

function flush(): void {
  batch(() => {
    for (const id of dirty) {
      const st = live.get(id);
      if (st) responseSignal(id).value = st;
    }
  });
  dirty.clear();
}

function loginRedirect(): void {
  const next = encodeURIComponent(window.location.pathname + window.location.search);
  window.location.assign(`/accounts/login/?next=${next}`);
}

// ---- events -----------------------------------------------------------------

function onEvent(ev: ResponseEvent): void {
  const id = ev.response_id;
  let seqr = sequencers.get(id);
  if (!seqr) sequencers.set(id, (seqr = new Sequencer()));
  const prev = live.get(id) ?? emptyResponse(id);
  if (!live.has(id)) live.set(id, prev);
  const next = seqr.push(prev, ev, Date.now());
  if (next === prev) return;
  socket.noteSeq(id, next.lastSeq);
  setLive(next);
  if (isTerminal(next) && !isTerminal(prev)) onTerminal(next);
  else if (prev.status === "queued" && next.status === "running") announce.value = "Thinking…";
  else if (prev.content === "" && next.content !== "") announce.value = "Answering…";
}

function onTerminal(st: ResponseState): void {
  socket.forget(st.id);
  sequencers.delete(st.id);
  if (stopping.value === st.id) stopping.value = null;
  if (st.status === "completed") announce.value = "Response complete.";
  if (st.status === "cancelled") announce.value = "Generation stopped.";
  if (st.status === "failed") {
    announce.value = "Generation failed.";
    const e = st.error ?? { code: "internal", message: "The generation failed." };
    pushToast({ kind: "error", title: e.code === "model_unavailable" ? errorTitle(e.code) : "The model failed", message: e.message });
  }
  scheduleSidebarRefresh();
  usageTick.value++;
}

let sidebarTimer = 0;
function scheduleSidebarRefresh(): void {
  window.clearTimeout(sidebarTimer);
  sidebarTimer = window.setTimeout(() => void loadConversations(1), 400);
}

/** Take a snapshot unless live events already got further. */
function adoptSnapshot(snap: ResponseSnapshot): void {
  const cur = live.get(snap.id);
  if (cur && cur.hydrated && cur.lastSeq >= snap.last_seq) return;
  let st = fromSnapshot(snap);
  // Events that arrived ahead of the snapshot are replayed by the sequencer.
  const seqr = sequencers.get(snap.id);
  if (cur && seqr) st = { ...st, startedAt: cur.startedAt ?? st.startedAt };
  setLive(st);
  if (!isTerminal(st)) socket.subscribe(snap.id, st.lastSeq);
}

// ---- navigation -------------------------------------------------------------

const CONV_PATH = /^\/c\/([0-9a-fA-F-]{8,})\/?$/;

export function conversationIdFromPath(path: string): string | null {
  const m = CONV_PATH.exec(path);
  return m ? m[1] : null;
}

export function navigate(path: string, push = true): void {
  if (push && path !== window.location.pathname) history.pushState({}, "", path);
  const id = conversationIdFromPath(path);
  if (id) void openConversation(id);
  else newChat();
}

export function newChat(): void {
  navToken++;
  view.value = { id: null, title: "", model: null, tree: emptyTree(), sel: new Map(), loading: false, error: null };
  document.title = "New chat · Arbor";
}

export async function openConversation(id: string): Promise<void> {
  const token = ++navToken;
  const same = view.value.id === id;
  const keepTree = same ? view.value.tree : emptyTree();
  const keepSel = same ? view.value.sel : new Map<string, string>();
  view.value = { ...view.value, id, tree: keepTree, sel: keepSel, loading: true, error: null };
  try {
    const conv = await api.conversation(id);
    if (token !== navToken) return;
    const tree = buildTree(conv.messages);
    view.value = { id: conv.id, title: conv.title, model: conv.model, tree, sel: keepSel, loading: false, error: null };
    document.title = `${conv.title || "Conversation"} · Arbor`;
    if (conv.model && boot.models.some((m) => m.slug === conv.model)) selectedModel.value = conv.model;
    hydrateResponses(activeBranch(tree, keepSel));
  } catch (e) {
    if (token !== navToken) return;
    const err = e as ApiError;
    view.value = {
      ...view.value, loading: false,
      error: err.code === "not_found" ? "This conversation does not exist or is not yours." : err.message,
    };
  }
}

function hydrateResponses(messages: Message[]): void {
  for (const m of messages) {
    if (m.role !== "assistant" || !m.response) continue;
    const r = m.response;
    const cur = live.get(r.id);
    if (cur && cur.hydrated) continue;
    if (!cur) setLive(fromSummary(r, m.content));
    void api.response(r.id).then(adoptSnapshot, (e: ApiError) => {
      if (!isTerminal(r.status)) toastError(e.code, `Could not resume the response: ${e.message}`);
    });
  }
}

export async function loadConversations(page = 1): Promise<void> {
  conversationsLoading.value = true;
  try {
    const res = await api.conversations(page);
    batch(() => {
      conversationsCount.value = res.count;
      if (page === 1) {
        // Keep already-loaded later pages, replacing the first page's items.
        const ids = new Set(res.items.map((c) => c.id));
        const rest = conversations.value.slice(20).filter((c) => !ids.has(c.id));
        conversations.value = [...res.items, ...rest];
      } else {
        const have = new Set(conversations.value.map((c) => c.id));
        conversations.value = [...conversations.value, ...res.items.filter((c) => !have.has(c.id))];
      }
      // A new conversation gets its title from the server: pick it up.
      const v = view.value;
      const item = v.id ? res.items.find((c) => c.id === v.id) : undefined;
      if (item && item.title && item.title !== v.title) {
        view.value = { ...v, title: item.title };
        document.title = `${item.title} · Arbor`;
      }
    });
  } catch (e) {
    const err = e as ApiError;
    if (err.status !== 401) toastError(err.code, `Could not load conversations: ${err.message}`);
  } finally {
    conversationsLoading.value = false;
  }
}

export function loadMoreConversations(): void {
  const next = Math.floor(conversations.value.length / 20) + 1;
  void loadConversations(next);
}

// ---- actions ----------------------------------------------------------------

function uuid(): string {
  if (typeof crypto.randomUUID === "function") return crypto.randomUUID();
  const b = crypto.getRandomValues(new Uint8Array(16));
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  const h = [...b].map((x) => x.toString(16).padStart(2, "0")).join("");
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

export function send(text: string): boolean {
  const content = text.trim() ? text : "";
  if (!content || sending.value || activeResponseId.value) return false;
  if (content.length > boot.max_prompt_chars) {
    toastError("too_large", `Messages are limited to ${boot.max_prompt_chars.toLocaleString()} characters.`);
    return false;
  }
  const token = navToken;
  const v = view.value;
  const b = branch.value;
  const parentId = b.length ? b[b.length - 1].id : null;
  const clientId = uuid();
  const localId = `local:${clientId}`;
  const optimistic: Message = {
    id: localId, parent_id: parentId, role: "user", content, created_at: new Date().toISOString(), response: null,
  };
  view.value = { ...v, tree: addMessage(v.tree, optimistic) };
  sending.value = true;
  const model = selectedModel.value;
  socket
    .request(
      { type: "chat.send", client_id: clientId, conversation_id: v.id, parent_id: parentId, content, model },
      true,
    )
    .then((frame) => {
      const f = frame as unknown as ResponseCreatedFrame;
      if (!live.has(f.response_id)) setLive(emptyResponse(f.response_id, f.model));
      if (token === navToken) {
        const cur = view.value;
        let tree = removeMessage(cur.tree, localId);
        const now = new Date().toISOString();
        tree = addMessage(tree, { ...optimistic, id: f.user_message_id, created_at: now });
        tree = addMessage(tree, {
          id: f.response_id, parent_id: f.user_message_id, role: "assistant", content: "", created_at: now,
          response: {
            id: f.response_id, status: "queued", model: f.model, finish_reason: null, usage: null,
            timings: null, error: null, last_seq: 0, created_at: now, started_at: null,
          },
        });
        view.value = { ...cur, id: f.conversation_id, model: f.model, tree };
        if (!cur.id) {
          history.pushState({}, "", `/c/${f.conversation_id}/`);
          document.title = "New conversation · Arbor";
        }
      }
      announce.value = "Message sent. Waiting for the model…";
      scheduleSidebarRefresh();
    })
    .catch((e: RequestError) => {
      if (token === navToken) {
        view.value = { ...view.value, tree: removeMessage(view.value.tree, localId) };
        composerRestore.value = { text: content, n: Date.now() };
      }
      toastError(e.code, e.message, e.retryAfterS);
      announce.value = `Message not sent: ${e.message}`;
    })
    .finally(() => {
      sending.value = false;
    });
  return true;
}

// ---- branches -------------------------------------------------------------------

function setSelection(sel: ReadonlyMap<string, string>): void {
  const v = view.value;
  view.value = { ...v, sel };
  hydrateResponses(activeBranch(v.tree, sel));
}

/** Show the previous/next sibling of a message (‹ 2 / 3 ›). */
export function switchBranch(messageId: string, dir: -1 | 1): void {
  const v = view.value;
  setSelection(stepSibling(v.tree, v.sel, messageId, dir));
  announce.value = "Showing another branch.";
}

/** Show the branch through a message (sidebar branch map). */
export function showMessage(messageId: string): void {
  const v = view.value;
  if (!v.tree.byId.has(messageId)) return;
  setSelection(selectPathTo(v.tree, v.sel, messageId));
}

/** Busy: a send is in flight or the shown branch is still generating. */
export const busy = computed(() => sending.value || activeResponseId.value !== null);

function adoptCreated(f: ResponseCreatedFrame, user: Message | null, token: number): void {
  if (!live.has(f.response_id)) setLive(emptyResponse(f.response_id, f.model));
  if (token !== navToken) return;
  const cur = view.value;
  let tree = cur.tree;
  const now = new Date().toISOString();
  if (user) tree = addMessage(tree, { ...user, id: f.user_message_id, created_at: now });
  const assistant: Message = {
    id: f.response_id, parent_id: f.user_message_id, role: "assistant", content: "", created_at: now,
    response: {
      id: f.response_id, status: "queued", model: f.model, finish_reason: null, usage: null,
      timings: null, error: null, last_seq: 0, created_at: now, started_at: null,
    },
  };
  tree = addMessage(tree, assistant);
  const sel = selectPathTo(tree, cur.sel, f.response_id);
  view.value = { ...cur, id: f.conversation_id, model: f.model, tree, sel };
}

/** Ask for another answer to the same user message (a sibling response). */
export function regenerate(responseId: string): boolean {
  if (busy.value) return false;
  const token = navToken;
  sending.value = true;
  announce.value = "Regenerating…";
  socket
    .request({ type: "chat.regenerate", response_id: responseId, client_id: uuid(), model: selectedModel.value }, true)
    .then((frame) => {
      adoptCreated(frame as unknown as ResponseCreatedFrame, null, token);
      announce.value = "Regenerating: waiting for the model…";
      scheduleSidebarRefresh();
    })
    .catch((e: RequestError) => {
      toastError(e.code, e.message, e.retryAfterS);
      announce.value = `Could not regenerate: ${e.message}`;
    })
    .finally(() => {
      sending.value = false;
    });
  return true;
}

/** Send an edited copy of a user message as a new branch (a sibling of the original). */
export function editMessage(userMessageId: string, text: string): boolean {
  const v = view.value;
  const orig = v.tree.byId.get(userMessageId);
  const content = text.trim() ? text : "";
  if (!orig || !v.id || !content || busy.value) return false;
  if (content.length > boot.max_prompt_chars) {
    toastError("too_large", `Messages are limited to ${boot.max_prompt_chars.toLocaleString()} characters.`);
    return false;
  }
  const token = navToken;
  sending.value = true;
  announce.value = "Sending the edited message as a new branch…";
  const user: Message = {
    id: "", parent_id: orig.parent_id, role: "user", content, created_at: new Date().toISOString(), response: null,
  };
  socket
    .request(
      { type: "chat.send", client_id: uuid(), conversation_id: v.id, edit_of: userMessageId, content, model: selectedModel.value },
      true,
    )
    .then((frame) => {
      adoptCreated(frame as unknown as ResponseCreatedFrame, user, token);
      scheduleSidebarRefresh();
    })
    .catch((e: RequestError) => {
      toastError(e.code, e.message, e.retryAfterS);
      announce.value = `Edit not sent: ${e.message}`;
    })
    .finally(() => {
      sending.value = false;
    });
  return true;
}

export function stop(): void {
  const id = activeResponseId.value;
  if (!id || stopping.value === id) return;
  stopping.value = id;
  announce.value = "Stopping…";
  socket.cancel(id).catch((e: RequestError) => {
    if (stopping.value === id) stopping.value = null;
    toastError(e.code, `Could not stop: ${e.message}`, e.retryAfterS);
  });
}

export function retryConnection(): void {
  socket.reconnectNow();
}

// ---- start ------------------------------------------------------------------

export function startApp(b: Boot): void {
  boot = b;
  api = new Api(b.api_base, loginRedirect);
  let stored: string | null = null;
  try {
    stored = localStorage.getItem("arbor.model");
  } catch {
    /* ignore */
  }
  const slugs = b.models.map((m) => m.slug);
  selectedModel.value = stored && slugs.includes(stored) ? stored : b.default_model ?? slugs[0] ?? null;
  selectedModel.subscribe((m) => {
    try {
      if (m) localStorage.setItem("arbor.model", m);
    } catch {
      /* ignore */
    }
  });

  socket = new ChatSocket(wsUrl(b.ws_path), {
    onEvent,
    onState: (state, info) => {
      conn.value = { state, retryInMs: info.retryInMs };
      if (state === "reconnecting" && info.attempt === 1) announce.value = "Connection lost. Reconnecting…";
      if (state === "open") announce.value = "";
    },
    onAuthRequired: loginRedirect,
    onServerError: (f: ErrorFrame) => toastError(f.code, f.message, f.retry_after_s),
    onFrame: (f) => {
      // Another tab's send in the same conversation arrives as an auto-subscribe only for
      // the sending socket; nothing to do here for now.
      void f;
    },
  });
  socket.start();
  window.addEventListener("online", () => socket.reconnectNow());
  window.addEventListener("popstate", () => navigate(window.location.pathname, false));

  void loadConversations(1);
  const id = b.conversation_id ?? conversationIdFromPath(window.location.pathname);
  if (id) void openConversation(id);
  else newChat();
}

export function getBoot(): Boot {
  return boot;
}
