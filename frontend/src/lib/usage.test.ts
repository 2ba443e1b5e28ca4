import { afterEach, describe, expect, it, vi } from "vitest";
import { Api } from "./api";
import {
  UsageApi, compact, dayRange, fraction, histogramBins, lastDays, level, limitTitle, localizeTimes, meterText,
  mentionsRetry, money, pivotByDay, reasoningShare, resetLabel,
} from "./usage";

describe("formatting", () => {
  it("compacts counts", () => {
    expect(compact(950)).toBe("950");
    expect(compact(12_345)).toBe("12.3k");
    expect(compact(200_000)).toBe("200k");
    expect(compact(1_250_000)).toBe("1.25M");
    expect(compact(null)).toBe("–");
  });
  it("formats money", () => {
    expect(money(1.234)).toBe("$1.23");
    expect(money(0.0012)).toBe("$0.0012");
    expect(money(0)).toBe("$0.00");
  });
  it("meter text with and without a limit", () => {
    expect(meterText(12_345, 200_000)).toBe("12.3k / 200k tokens today");
    expect(meterText(12_345, null)).toBe("12.3k tokens today");
  });
  it("fractions and levels", () => {
    expect(fraction(50, 100)).toBe(0.5);
    expect(fraction(500, 100)).toBe(1);
    expect(fraction(5, null)).toBeNull();
    expect(fraction(0, 0)).toBe(1);
    expect(level(0.5)).toBe("ok");
    expect(level(0.85)).toBe("warn");
    expect(level(1)).toBe("full");
    expect(level(null)).toBe("ok");
  });
  it("reset labels are relative plus absolute", () => {
    const now = Date.parse("2026-05-02T20:30:00Z");
    expect(resetLabel("2026-05-03T00:00:00Z", now)).toMatch(/^in 3 h 30 min \(/);
    expect(resetLabel("2026-05-02T20:40:00Z", now)).toMatch(/^in 10 min \(/);
    expect(resetLabel("garbage", now)).toBe("");
  });
});

describe("dates", () => {
  it("lists every day of a range", () => {
    expect(dayRange("2026-02-27", "2026-03-02")).toEqual(["2026-02-27", "2026-02-28", "2026-03-01", "2026-03-02"]);
    expect(dayRange("2026-03-02", "2026-03-01")).toEqual([]);
  });
  it("last N days ends today", () => {
    const r = lastDays(7, new Date(2026, 4, 10));
    expect(r).toEqual({ since: "2026-05-04", until: "2026-05-10" });
  });
});

describe("shaping", () => {
  it("pivots rows by day and group, largest group first, rest as other", () => {
    const days = ["2026-05-01", "2026-05-02"];
    const rows = [
      { day: "2026-05-01", m: "a", v: 1 }, { day: "2026-05-02", m: "b", v: 10 },
      { day: "2026-05-02", m: "c", v: 2 }, { day: "2026-05-01", m: "d", v: 3 }, { day: "2026-04-30", m: "a", v: 99 },
    ];
    const s = pivotByDay(rows, days, (r) => r.day, (r) => r.m, (r) => r.v, 3);
    expect(s.map((x) => x.name)).toEqual(["a", "b", "other"]);
    expect(s[1].values).toEqual([0, 10]);
    expect(s[2].values).toEqual([3, 2]);
  });
  it("turns cumulative histograms into per-bucket counts", () => {
    const bins = histogramBins([{ le: 250, count: 5 }, { le: 100, count: 2 }, { le: "+Inf", count: 6 }], (v) => `${v}`);
    expect(bins).toEqual([{ label: "≤ 100", count: 2 }, { label: "≤ 250", count: 3 }, { label: "> 250", count: 1 }]);
  });
  it("keeps per-bucket histograms as they are", () => {
    const bins = histogramBins([{ le: 100, count: 4 }, { le: 250, count: 1 }, { le: null, count: 2 }], (v) => `${v}`);
    expect(bins.map((b) => b.count)).toEqual([4, 1, 2]);
  });
  it("reasoning share of output", () => {
    expect(reasoningShare([{ reasoning_tokens: 3, answer_tokens: 1 }])).toBe(0.75);
    expect(reasoningShare([])).toBeNull();
  });
});

describe("quota messages", () => {
  it("names the limit", () => {
    expect(limitTitle("Too many requests: at most 10 a minute. Try again in 42 s.")).toBe("Request rate limit reached");
    expect(limitTitle("You already have 2 answers being generated (at most 2 at once).")).toBe("Too many answers at once");
    expect(limitTitle("Daily token limit of 200,000 reached; it resets at 2026-05-03T00:00:00Z.")).toBe("Daily token limit reached");
    expect(limitTitle("Monthly token quota used up (3,000,000 tokens).")).toBe("Monthly token limit reached");
    expect(limitTitle("Something else.")).toBeNull();
  });
  it("shows ISO times locally and knows when retry is already said", () => {
    const s = localizeTimes("resets at 2026-05-03T00:00:00Z.");
    expect(s).not.toContain("2026-05-03T");
    expect(s.startsWith("resets at ")).toBe(true);
    expect(mentionsRetry("Try again in 42 s.")).toBe(true);
    expect(mentionsRetry("Resets at midnight.")).toBe(false);
  });
});

describe("UsageApi", () => {
  afterEach(() => vi.unstubAllGlobals());

  it("calls the contract paths with CSRF on writes", async () => {
    document.cookie = "csrftoken=tok123";
    const calls: { url: string; init: RequestInit }[] = [];
    vi.stubGlobal("fetch", vi.fn(async (url: string, init: RequestInit) => {
      calls.push({ url, init });
      return new Response(init.method === "DELETE" ? null : "{}", { status: init.method === "DELETE" ? 204 : 200 });
    }));
    const api = new UsageApi(new Api("/api"));
    await api.myUsage();
    await api.createKey("laptop");
    await api.revokeKey(7);
    await api.usage("user", "2026-05-01", "2026-05-02");
    await api.stats("2026-05-01", undefined);
    await api.patchEndpoint(3, { draining: true });
    await api.putQuota("al ice", { tokens_per_day: 5, tokens_per_month: null, requests_per_minute: null, concurrent_streams: null, max_tokens: null });
    expect(calls.map((c) => `${c.init.method} ${c.url}`)).toEqual([
      "GET /api/me/usage",
      "POST /api/me/keys",
      "DELETE /api/me/keys/7",
      "GET /api/admin/usage?group_by=user&since=2026-05-01&until=2026-05-02",
      "GET /api/admin/stats?since=2026-05-01",
      "PATCH /api/admin/endpoints/3",
      "PUT /api/admin/quotas/al%20ice",
    ]);
    expect((calls[1].init.headers as Record<string, string>)["X-CSRFToken"]).toBe("tok123");
    expect(JSON.parse(calls[5].init.body as string)).toEqual({ draining: true });
    expect(JSON.parse(calls[6].init.body as string).tokens_month).toBeUndefined();
  });

  it("surfaces the error envelope", async () => {
    vi.stubGlobal("fetch", vi.fn(async () => new Response(JSON.stringify({ error: { code: "not_found", message: "No such user." } }), { status: 404 })));
    const api = new UsageApi(new Api("/api"));
    await expect(api.quota("nobody")).rejects.toMatchObject({ code: "not_found", message: "No such user." });
  });
});
