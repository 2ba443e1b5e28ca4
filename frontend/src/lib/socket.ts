// One WebSocket per tab: reconnect with backoff + jitter, heartbeat, request
// ids, and re-subscription of unfinished responses from the last applied seq.
import { RESPONSE_EVENT_TYPES } from "./types";
import type { ErrorFrame, ResponseEvent } from "./types";

export type ConnState = "connecting" | "open" | "reconnecting" | "closed";

export interface WebSocketLike {
  readyState: number;
  send(data: string): void;
  close(code?: number, reason?: string): void;
  onopen: ((ev: unknown) => void) | null;
  onclose: ((ev: { code: number; reason?: string }) => void) | null;
  onmessage: ((ev: { data: unknown }) => void) | null;
  onerror: ((ev: unknown) => void) | null;
}

export type WebSocketCtor = new (url: string) => WebSocketLike;

export interface SocketDeps {
  WebSocketImpl: WebSocketCtor;
  setTimeout: (fn: () => void, ms: number) => unknown;
  clearTimeout: (h: unknown) => void;
  now: () => number;
  random: () => number;
}

export interface SocketHandlers {
  onEvent(ev: ResponseEvent): void;
  onState?(state: ConnState, info: { retryInMs?: number; attempt: number }): void;
  /** Close code 4401: the session is gone. */
  onAuthRequired?(): void;
  /** `error` frames that answer no pending request. */
  onServerError?(frame: ErrorFrame): void;
  /** Any other frame (e.g. response.created from another send). */
  onFrame?(frame: Record<string, unknown>): void;
}

export interface SocketOptions {
  pingIntervalMs?: number;
  pongTimeoutMs?: number;
  backoffBaseMs?: number;
  backoffMaxMs?: number;
}

export class RequestError extends Error {
  code: string;
  retryAfterS: number | null;
  constructor(code: string, message: string, retryAfterS: number | null = null) {
    super(message);
    this.code = code;
    this.retryAfterS = retryAfterS;
  }
}

interface Pending {
  frame: Record<string, unknown>;
  resolve: (f: Record<string, unknown>) => void;
  reject: (e: RequestError) => void;
  /** Re-send after a reconnect if still unanswered (idempotent frames only). */
  retry: boolean;
}

const OPEN = 1;

/** Exponential backoff with "equal jitter": half fixed, half random. */
export function backoffDelay(attempt: number, baseMs: number, maxMs: number, random: () => number): number {
  const exp = Math.min(maxMs, baseMs * 2 ** Math.max(0, attempt));
  return Math.round(exp / 2 + random() * (exp / 2));
}

export function defaultDeps(): SocketDeps {
  return {
    WebSocketImpl: WebSocket as unknown as WebSocketCtor,
    setTimeout: (fn, ms) => window.setTimeout(fn, ms),
    clearTimeout: (h) => window.clearTimeout(h as number),
    now: () => Date.now(),
    random: Math.random,
  };
}

export class ChatSocket {
  state: ConnState = "closed";
  private ws: WebSocketLike | null = null;
  private attempt = 0;
  private reqCounter = 0;
  private stopped = true;
  private reconnectTimer: unknown = null;
  private pingTimer: unknown = null;
  private pongDeadline: unknown = null;
  private pending = new Map<string, Pending>();
  /** response id -> last applied seq, for every unfinished response we follow. */
  private subs = new Map<string, number>();
  private opts: Required<SocketOptions>;

  constructor(
    private url: string,
    private handlers: SocketHandlers,
    private deps: SocketDeps = defaultDeps(),
    opts: SocketOptions = {},
  ) {
    this.opts = {
      pingIntervalMs: opts.pingIntervalMs ?? 25_000,
      pongTimeoutMs: opts.pongTimeoutMs ?? 10_000,
      backoffBaseMs: opts.backoffBaseMs ?? 500,
      backoffMaxMs: opts.backoffMaxMs ?? 15_000,
    };
  }

  start(): void {
    this.stopped = false;
    this.connect();
  }

  stop(): void {
    this.stopped = true;
    this.clearTimers();
    const ws = this.ws;
    this.ws = null;
    if (ws) {
      ws.onclose = ws.onmessage = ws.onerror = ws.onopen = null;
      ws.close(1000);
    }
    this.setState("closed");
  }

  /** Reconnect at once (e.g. the browser came back online). */
  reconnectNow(): void {
    if (this.stopped || this.state === "open" || this.state === "connecting") return;
    if (this.reconnectTimer !== null) this.deps.clearTimeout(this.reconnectTimer);
    this.reconnectTimer = null;
    this.connect();
  }

  /** Follow a response; events after `afterSeq` will be delivered. */
  subscribe(responseId: string, afterSeq: number): void {
    const known = this.subs.get(responseId);
    this.subs.set(responseId, Math.max(afterSeq, known ?? afterSeq));
    if (this.isOpen()) this.raw({ type: "response.subscribe", response_id: responseId, after_seq: afterSeq });
  }

  /** Record the last seq the app applied (resume point after a reconnect). */
  noteSeq(responseId: string, seq: number): void {
    if (!this.subs.has(responseId)) return;
    this.subs.set(responseId, Math.max(seq, this.subs.get(responseId) ?? 0));
  }

  /** The response is finished: nothing to resume. */
  forget(responseId: string): void {
    this.subs.delete(responseId);
  }

  subscriptions(): ReadonlyMap<string, number> {
    return this.subs;
  }

  /**
   * Send a frame with a fresh `req`; resolves with the frame that echoes it,
   * rejects with the `error` frame (as RequestError). With `retry`, an
   * unanswered frame is sent again after a reconnect (use with idempotent
   * frames only, e.g. chat.send with a client_id).
   */
  request(frame: Record<string, unknown>, retry = false): Promise<Record<string, unknown>> {
    const req = `r${++this.reqCounter}`;
    const full = { ...frame, req };
    return new Promise((resolve, reject) => {
      this.pending.set(req, { frame: full, resolve, reject, retry });
      if (this.isOpen()) this.raw(full);
      else if (!retry) {
        this.pending.delete(req);
        reject(new RequestError("disconnected", "Not connected to the server."));
      }
    });
  }

  /**
   * Stop a generation. The protocol has no direct answer to a cancel (the
   * result is the response's terminal event), so only an `error` frame with
   * our req rejects; otherwise the promise resolves after `answerWindowMs`.
   */
  cancel(responseId: string, answerWindowMs = 10_000): Promise<Record<string, unknown>> {
    const req = `r${++this.reqCounter}`;
    const frame = { type: "response.cancel", response_id: responseId, req };
    return new Promise((resolve, reject) => {
      if (!this.isOpen()) {
        reject(new RequestError("disconnected", "Not connected to the server."));
        return;
      }
      this.pending.set(req, { frame, resolve, reject, retry: false });
      this.raw(frame);
      this.deps.setTimeout(() => {
        if (this.pending.delete(req)) resolve({ type: "response.cancel", req });
      }, answerWindowMs);
    });
  }

  isOpen(): boolean {
    return !!this.ws && this.ws.readyState === OPEN && this.state === "open";
  }

  // ---- internals -----------------------------------------------------------

  private setState(s: ConnState, retryInMs?: number): void {
    this.state = s;
    this.handlers.onState?.(s, { retryInMs, attempt: this.attempt });
  }

  private raw(frame: Record<string, unknown>): void {
    try {
      this.ws?.send(JSON.stringify(frame));
    } catch {
      /* the close handler will reconnect */
    }
  }

  private connect(): void {
    this.clearTimers();
    this.setState(this.attempt === 0 ? "connecting" : "reconnecting");
    let ws: WebSocketLike;
    try {
      ws = new this.deps.WebSocketImpl(this.url);
    } catch {
      this.scheduleReconnect();
      return;
    }
    this.ws = ws;
    ws.onopen = () => this.onOpen();
    ws.onmessage = (ev) => this.onMessage(ev.data);
    ws.onerror = () => {
      /* onclose follows */
    };
    ws.onclose = (ev) => this.onClose(ev.code);
  }

  private onOpen(): void {
    this.attempt = 0;
    this.setState("open");
    // 1. unanswered idempotent requests (chat.send with the same client_id)
    for (const p of this.pending.values()) if (p.retry) this.raw(p.frame);
    // 2. every unfinished response from the last seq we applied
    for (const [id, seq] of this.subs) this.raw({ type: "response.subscribe", response_id: id, after_seq: seq });
    this.schedulePing();
  }

  private onMessage(data: unknown): void {
    this.armPongDeadline(false);
    let frame: Record<string, unknown>;
    try {
      frame = JSON.parse(String(data));
    } catch {
      return;
    }
    if (!frame || typeof frame !== "object") return;
    const type = frame.type as string;
    if (RESPONSE_EVENT_TYPES.has(type)) {
      this.handlers.onEvent(frame as unknown as ResponseEvent);
      return;
    }
    const req = typeof frame.req === "string" ? frame.req : undefined;
    const p = req ? this.pending.get(req) : undefined;
    if (type === "response.created" && typeof frame.response_id === "string") {
      // The server subscribed this socket from seq 0.
      if (!this.subs.has(frame.response_id)) this.subs.set(frame.response_id, 0);
    }
    if (type === "error") {
      const e = frame as unknown as ErrorFrame;
      if (p && req) {
        this.pending.delete(req);
        p.reject(new RequestError(e.code, e.message, e.retry_after_s ?? null));
      } else this.handlers.onServerError?.(e);
      return;
    }
    if (p && req) {
      this.pending.delete(req);
      p.resolve(frame);
    }
    this.handlers.onFrame?.(frame);
  }

  private onClose(code: number): void {
    this.clearTimers();
    this.ws = null;
    // Requests that cannot be retried fail now; idempotent ones wait.
    for (const [req, p] of this.pending) {
      if (!p.retry) {
        this.pending.delete(req);
        p.reject(new RequestError("disconnected", "The connection was lost."));
      }
    }
    if (code === 4401) {
      this.stopped = true;
      this.setState("closed");
      this.handlers.onAuthRequired?.();
      return;
    }
    if (this.stopped) {
      this.setState("closed");
      return;
    }
    this.scheduleReconnect();
  }

  private scheduleReconnect(): void {
    const delay = backoffDelay(this.attempt, this.opts.backoffBaseMs, this.opts.backoffMaxMs, this.deps.random);
    this.attempt += 1;
    this.setState("reconnecting", delay);
    this.reconnectTimer = this.deps.setTimeout(() => {
      this.reconnectTimer = null;
      this.connect();
    }, delay);
  }

  private schedulePing(): void {
    this.pingTimer = this.deps.setTimeout(() => {
      this.pingTimer = null;
      if (!this.isOpen()) return;
      this.raw({ type: "ping", req: `p${++this.reqCounter}` });
      this.armPongDeadline(true);
      this.schedulePing();
    }, this.opts.pingIntervalMs);
  }

  /** After a ping, expect some frame within pongTimeoutMs or drop the socket. */
  private armPongDeadline(arm: boolean): void {
    if (this.pongDeadline !== null) this.deps.clearTimeout(this.pongDeadline);
    this.pongDeadline = null;
    if (!arm) return;
    this.pongDeadline = this.deps.setTimeout(() => {
      this.pongDeadline = null;
      const ws = this.ws;
      if (!ws) return;
      ws.onclose = ws.onmessage = ws.onerror = ws.onopen = null;
      try {
        ws.close(4000, "heartbeat timeout");
      } catch {
        /* ignore */
      }
      this.onClose(4000);
    }, this.opts.pongTimeoutMs);
  }

  private clearTimers(): void {
    for (const t of [this.reconnectTimer, this.pingTimer, this.pongDeadline]) if (t !== null) this.deps.clearTimeout(t);
    this.reconnectTimer = this.pingTimer = this.pongDeadline = null;
  }
}
