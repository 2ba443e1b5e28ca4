import { render } from "preact";
import { act } from "preact/test-utils";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import type { UsageApi } from "../../lib/usage";
import * as fx from "../../test/usageFixtures";
import { Dashboard, limitsFromDraft, rangeFromUrl } from "./Dashboard";
import { Settings } from "./Settings";
import { isCurrent, navLinks } from "./Shell";

// uPlot draws on canvas, which jsdom lacks; the charts fall back to nothing there.
vi.mock("uplot", () => ({ default: class { static paths = {}; destroy() {} setSize() {} } }));

function fakeApi(overrides: Partial<Record<keyof UsageApi, unknown>> = {}) {
  const api = {
    myUsage: vi.fn(async () => fx.myUsage),
    keys: vi.fn(async () => fx.keys),
    createKey: vi.fn(async () => fx.newKey),
    revokeKey: vi.fn(async () => null),
    usage: vi.fn(async (g: string) => fx.usageRows(g)),
    stats: vi.fn(async () => fx.stats),
    endpoints: vi.fn(async () => fx.endpoints),
    patchEndpoint: vi.fn(async (id: number, body: object) => ({ ...fx.endpoints.find((e) => e.id === id)!, ...body })),
    quota: vi.fn(async () => fx.quota),
    putQuota: vi.fn(async (_u: string, l: object) => ({ ...fx.quota, ...l })),
    ...overrides,
  };
  return api as unknown as UsageApi & typeof api;
}

let root: HTMLDivElement;
beforeEach(() => {
  root = document.createElement("div");
  document.body.appendChild(root);
});
afterEach(() => {
  render(null, root);
  root.remove();
});

const flush = async () => {
  for (let i = 0; i < 5; i++) await act(async () => { await new Promise((r) => setTimeout(r, 0)); });
};
const $ = (sel: string) => root.querySelector<HTMLElement>(sel);
const $$ = (sel: string) => [...root.querySelectorAll<HTMLElement>(sel)];
const click = async (el: HTMLElement | null) => {
  expect(el).not.toBeNull();
  await act(async () => { el!.click(); });
  await flush();
};
const type = async (el: HTMLElement | null, value: string) => {
  const input = el as HTMLInputElement;
  await act(async () => {
    input.value = value;
    input.dispatchEvent(new Event("input", { bubbles: true }));
  });
};

describe("settings page", () => {
  it("lists keys, shows a new key once, and revokes only after confirming", async () => {
    const api = fakeApi();
    await act(async () => render(<Settings api={api} />, root));
    await flush();
    const rows = $$("[data-testid=keys-list] [data-testid=key-row]");
    expect(rows).toHaveLength(2);
    expect($$("[data-testid=key-revoke]")).toHaveLength(1); // the revoked key has no button
    expect($("[data-testid=key-secret]")).toBeNull();

    await type($("[data-testid=key-name]"), "notebook");
    await act(async () => {
      $("form.key-form")!.dispatchEvent(new Event("submit", { bubbles: true, cancelable: true }));
    });
    await flush();
    expect(api.createKey).toHaveBeenCalledWith("notebook");
    expect($("[data-testid=key-secret]")!.textContent).toBe(fx.newKey.key);
    expect(root.textContent).toContain("you won't see it again");
    await click($$("button").find((b) => b.textContent === "I've saved it")!);
    expect($("[data-testid=key-secret]")).toBeNull();

    await click($("[data-testid=key-revoke]"));
    expect(api.revokeKey).not.toHaveBeenCalled();
    await click($("[data-testid=key-revoke-confirm]"));
    expect(api.revokeKey).toHaveBeenCalledWith(1);
  });

  it("shows usage bars against the limits", async () => {
    const api = fakeApi();
    await act(async () => render(<Settings api={api} />, root));
    await flush();
    const day = $("[data-testid=usage-limit][data-limit=tokens_per_day]")!;
    expect(day.textContent).toContain("12,345");
    expect(day.textContent).toContain("200,000");
    expect(day.className).toContain("lv-ok");
    expect($("[data-testid=usage-limit][data-limit=tokens_per_month]")!.className).toContain("lv-warn");
    expect($("[data-testid=usage-chart]")).not.toBeNull();
  });
});

describe("dashboard", () => {
  const range = { since: "2026-05-01", until: "2026-05-02" };

  it("renders every chart, with a table fallback", async () => {
    const api = fakeApi();
    await act(async () => render(<Dashboard api={api} initialRange={range} />, root));
    await flush();
    const names = $$("[data-testid=dashboard-chart]").map((e) => e.dataset.chart);
    expect(names).toEqual(expect.arrayContaining([
      "tokens-by-model", "cost-by-model", "tokens-by-user", "reasoning-share", "refusals", "ttft", "thinking", "endpoint-health",
    ]));
    expect(api.usage).toHaveBeenCalledWith("user", "2026-05-01", "2026-05-02");
    expect(api.stats).toHaveBeenCalledWith("2026-05-01", "2026-05-02");
    const users = $("[data-chart=tokens-by-user]")!;
    await click(users.querySelector<HTMLElement>("[data-testid=chart-table-toggle]"));
    const cells = [...users.querySelectorAll("tbody th")].map((c) => c.textContent);
    expect(cells).toEqual(["alice", "admin"]);
    const ttft = $("[data-chart=ttft]")!;
    await click(ttft.querySelector<HTMLElement>("[data-testid=chart-table-toggle]"));
    expect([...ttft.querySelectorAll("tbody td")].map((c) => c.textContent)).toEqual(["2", "3", "1", "0"]);
  });

  it("lists endpoints and toggles draining", async () => {
    const api = fakeApi();
    await act(async () => render(<Dashboard api={api} initialRange={range} />, root));
    await flush();
    const rows = $$("[data-testid=endpoint-row]");
    expect(rows.map((r) => r.dataset.health)).toEqual(["healthy", "unhealthy"]);
    await click(rows[0].querySelector<HTMLElement>("[data-testid=endpoint-draining]"));
    expect(api.patchEndpoint).toHaveBeenCalledWith(1, { draining: true });
    expect($$("[data-testid=endpoint-row]")[0].querySelector("[data-testid=endpoint-draining]")!.getAttribute("aria-checked")).toBe("true");
    await click($$("[data-testid=endpoint-row]")[1].querySelector<HTMLElement>("[data-testid=endpoint-enabled]"));
    expect(api.patchEndpoint).toHaveBeenCalledWith(2, { enabled: true });
  });

  it("edits a user's quota (blank = group default)", async () => {
    const api = fakeApi();
    await act(async () => render(<Dashboard api={api} initialRange={range} />, root));
    await flush();
    const editor = $("[data-testid=quota-editor]")!;
    await type(editor.querySelector("[data-testid=quota-username]"), "alice");
    await act(async () => {
      editor.querySelector("form")!.dispatchEvent(new Event("submit", { bubbles: true, cancelable: true }));
    });
    await flush();
    expect(api.quota).toHaveBeenCalledWith("alice");
    const month = editor.querySelector<HTMLInputElement>("[data-testid=quota-tokens_per_month]")!;
    expect(month.value).toBe("5000000");
    expect(editor.querySelector<HTMLInputElement>("[data-testid=quota-tokens_per_day]")!.placeholder).toBe("default: 200,000");
    await type(editor.querySelector("[data-testid=quota-tokens_per_day]"), "100,000");
    await click(editor.querySelector<HTMLElement>("[data-testid=quota-save]"));
    expect(api.putQuota).toHaveBeenCalledWith("alice", {
      tokens_per_day: 100000, tokens_per_month: 5000000, requests_per_minute: null, concurrent_streams: null, max_tokens: null,
    });
  });

  it("validates limits and the URL range", () => {
    const base = { tokens_per_day: "", tokens_per_month: "", requests_per_minute: "", concurrent_streams: "", max_tokens: "" };
    expect(limitsFromDraft({ ...base, max_tokens: "-3" })).toHaveProperty("error");
    expect(limitsFromDraft({ ...base, max_tokens: "1 000" })).toEqual({ limits: { ...{ tokens_per_day: null, tokens_per_month: null, requests_per_minute: null, concurrent_streams: null }, max_tokens: 1000 } });
    expect(rangeFromUrl("?since=2026-05-09&until=2026-05-01")).toEqual({ since: "2026-05-01", until: "2026-05-09" });
    expect(rangeFromUrl("?since=bad", new Date(2026, 4, 30)).since).toBe("2026-05-01");
  });

  it("shows Dashboard and Admin links to staff only", () => {
    expect(navLinks({ username: "a", is_staff: false, roles: [] }).map((l) => l.label)).toEqual(["Chat", "Settings"]);
    expect(navLinks({ username: "a", is_staff: true, roles: [] }).map((l) => l.label)).toEqual(["Chat", "Settings", "Annotate", "Dashboard", "Campaigns", "Admin"]);
    expect(navLinks({ username: "a", is_staff: false, roles: ["annotator"] }).map((l) => l.label)).toEqual(["Chat", "Settings", "Annotate"]);
  });

  it("marks the campaigns link, not the dashboard's, on campaign pages", () => {
    expect(isCurrent("/dashboard/", "/dashboard/campaigns/")).toBe(false);
    expect(isCurrent("/dashboard/campaigns/", "/dashboard/campaigns/abc/")).toBe(true);
    expect(isCurrent("/dashboard/", "/dashboard/")).toBe(true);
  });
});
