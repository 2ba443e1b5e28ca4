import { beforeEach, describe, expect, it } from "vitest";
import { ChatSocket, RequestError, backoffDelay } from "./socket";
import type { SocketDeps, WebSocketLike } from "./socket";
import type { ResponseEvent } from "./types";

class FakeWS implements WebSocketLike {
  static all: FakeWS[] = [];
  readyState = 0;
  sent: Record<string, unknown>[] = [];
  onopen: ((ev: unknown) => void) | null = null;
  onclose: ((ev: { code: number }) => void) | null = null;
  onmessage: ((ev: { data: unknown }) => void) | null = null;
  onerror: ((ev: unknown) => void) | null = null;
  constructor(public url: string) {
    FakeWS.all.push(this);
  }
  send(data: string) {
    this.sent.push(JSON.parse(data));
  }
  close(code = 1000) {
    this.readyState = 3;
    this.onclose?.({ code });
  }
  // test helpers
  open() {
    this.readyState = 1;
    this.onopen?.({});
  }
  drop(code = 1006) {
    this.readyState = 3;
    this.onclose?.({ code });
  }
  recv(frame: Record<string, unknown>) {
    this.onmessage?.({ data: JSON.stringify(frame) });
  }
}

function fakeClock() {
  let t = 0;
  let id = 0;
  const timers = new Map<number, { at: number; fn: () => void }>();
  const deps: SocketDeps = {
    WebSocketImpl: FakeWS,
    setTimeout: (fn, ms) => {
      timers.set(++id, { at: t + ms, fn });
      return id;
    },
    clearTimeout: (h) => void timers.delete(h as number),
    now: () => t,
    random: () => 0.5,
  };
  const advance = (ms: number) => {
    const end = t + ms;
    for (;;) {
      let next: [number, { at: number; fn: () => void }] | null = null;
      for (const e of timers) if (e[1].at <= end && (!next || e[1].at < next[1].at)) next = e;
      if (!next) break;
      timers.delete(next[0]);
      t = next[1].at;
      next[1].fn();
    }
    t = end;
  };
  return { deps, advance };
}

const last = () => FakeWS.all[FakeWS.all.length - 1];

describe("ChatSocket", () => {
  let events: ResponseEvent[];
  let states: string[];
  let auth: number;
  beforeEach(() => {
    FakeWS.all = [];
    events = [];
    states = [];
    auth = 0;
  });

  function make() {
    const clock = fakeClock();
    const s = new ChatSocket("ws://x/ws/chat/", {
      onEvent: (e) => events.push(e),
      onState: (st) => states.push(st),
      onAuthRequired: () => auth++,
    }, clock.deps);
    s.start();
    return { s, ...clock };
  }

  it("re-subscribes unfinished responses from the last applied seq after a reconnect", () => {
    const { s, advance } = make();
    last().open();
    s.subscribe("a", 5);
    s.subscribe("b", 0);
    expect(last().sent).toEqual([
      { type: "response.subscribe", response_id: "a", after_seq: 5 },
      { type: "response.subscribe", response_id: "b", after_seq: 0 },
    ]);
    last().recv({ type: "reasoning.delta", response_id: "a", seq: 6, text: "x" });
    expect(events).toHaveLength(1);
    s.noteSeq("a", 6);
    s.noteSeq("b", 3);
    s.forget("b"); // finished
    last().drop();
    expect(s.state).toBe("reconnecting");
    const before = FakeWS.all.length;
    advance(10_000);
    expect(FakeWS.all.length).toBe(before + 1);
    last().open();
    expect(last().sent).toEqual([{ type: "response.subscribe", response_id: "a", after_seq: 6 }]);
    expect(states).toContain("open");
  });

  it("retries an unanswered chat.send with the same client_id after a reconnect", async () => {
    const { s, advance } = make();
    last().open();
    const p = s.request({ type: "chat.send", client_id: "c-1", content: "hi" }, true);
    const first = last().sent[0];
    last().drop();
    advance(20_000);
    last().open();
    const again = last().sent[0];
    expect(again.client_id).toBe("c-1");
    expect(again.req).toBe(first.req);
    last().recv({ type: "response.created", req: again.req, conversation_id: "conv", user_message_id: "u",
      response_id: "resp", model: "m" });
    await expect(p).resolves.toMatchObject({ response_id: "resp" });
    // the server auto-subscribed from seq 0: a later reconnect resumes it
    s.noteSeq("resp", 4);
    last().drop();
    advance(20_000);
    last().open();
    expect(last().sent).toEqual([{ type: "response.subscribe", response_id: "resp", after_seq: 4 }]);
  });

  it("queues a chat.send made while offline and sends it on connect", () => {
    const { s } = make();
    void s.request({ type: "chat.send", client_id: "c-2", content: "x" }, true);
    expect(last().sent).toEqual([]);
    last().open();
    expect(last().sent[0]).toMatchObject({ type: "chat.send", client_id: "c-2" });
  });

  it("matches error frames to requests by req", async () => {
    const { s } = make();
    last().open();
    const p = s.request({ type: "chat.send", client_id: "c", content: "x" }, true);
    const req = last().sent[0].req;
    last().recv({ type: "error", req, code: "quota_exceeded", message: "Over quota", retry_after_s: 30 });
    const err = await p.catch((e: RequestError) => e);
    expect(err).toBeInstanceOf(RequestError);
    expect((err as RequestError).code).toBe("quota_exceeded");
    expect((err as RequestError).retryAfterS).toBe(30);
  });

  it("fails non-idempotent requests when the connection drops", async () => {
    const { s } = make();
    last().open();
    const p = s.request({ type: "ping" });
    last().drop();
    await expect(p).rejects.toMatchObject({ code: "disconnected" });
  });

  it("redirects to login on close code 4401 and stops reconnecting", () => {
    const { advance } = make();
    last().open();
    const n = FakeWS.all.length;
    last().drop(4401);
    advance(60_000);
    expect(auth).toBe(1);
    expect(FakeWS.all.length).toBe(n);
  });

  it("pings periodically and reconnects when no answer comes", () => {
    const { advance } = make();
    last().open();
    advance(25_000);
    expect(last().sent.at(-1)).toMatchObject({ type: "ping" });
    const n = FakeWS.all.length;
    advance(10_000); // no pong
    advance(20_000);
    expect(FakeWS.all.length).toBe(n + 1);
  });

  it("keeps the socket when the pong arrives", () => {
    const { advance } = make();
    last().open();
    advance(25_000);
    const ping = last().sent.at(-1)!;
    last().recv({ type: "pong", req: ping.req });
    const n = FakeWS.all.length;
    advance(12_000);
    expect(FakeWS.all.length).toBe(n);
  });

  it("backs off exponentially with jitter, capped", () => {
    const half = () => 0.5;
    expect(backoffDelay(0, 500, 15_000, half)).toBe(375);
    expect(backoffDelay(3, 500, 15_000, half)).toBe(3000);
    expect(backoffDelay(20, 500, 15_000, half)).toBe(11_250);
    expect(backoffDelay(20, 500, 15_000, () => 0)).toBe(7500);
    expect(backoffDelay(20, 500, 15_000, () => 1)).toBe(15_000);
  });

  it("sends cancel with a req; an error frame rejects it, silence resolves it", async () => {
    const { s, advance } = make();
    last().open();
    const p1 = s.cancel("a");
    const f1 = last().sent.at(-1)!;
    expect(f1).toMatchObject({ type: "response.cancel", response_id: "a" });
    last().recv({ type: "error", req: f1.req, code: "not_found", message: "No such response." });
    await expect(p1).rejects.toMatchObject({ code: "not_found" });
    const p2 = s.cancel("b");
    advance(10_000);
    await expect(p2).resolves.toMatchObject({ type: "response.cancel" });
  });

  it("ignores malformed frames", () => {
    make();
    last().open();
    last().onmessage?.({ data: "not json" });
    last().recv({ type: "unknown.thing" });
    expect(events).toEqual([]);
  });
});
