// Fixtures in the shapes of the issue-5 contract (GET /api/me/usage, keys, admin).
import type {
  AdminStats, ApiKeyItem, Endpoint, MyUsage, NewApiKey, UsageRow, UserQuota,
} from "../lib/usage";

export const myUsage: MyUsage = {
  limits: { tokens_per_day: 200_000, tokens_per_month: 3_000_000, requests_per_minute: 10, concurrent_streams: 2, max_tokens: 32_768 },
  used: { tokens_today: 12_345, tokens_this_month: 2_900_000, requests_this_minute: 1, streams_now: 0, reserved_tokens: 0 },
  resets: { day: "2026-05-03T00:00:00Z", month: "2026-06-01T00:00:00Z" },
  history: [
    { day: "2026-05-01", prompt_tokens: 1000, reasoning_tokens: 6000, answer_tokens: 2000, requests: 4, cost: 0.0123 },
    { day: "2026-05-02", prompt_tokens: 500, reasoning_tokens: 9000, answer_tokens: 845, requests: 2, cost: 0.02 },
  ],
};

export const keys: ApiKeyItem[] = [
  { id: 1, name: "laptop", prefix: "arb_abc123", created_at: "2026-04-01T10:00:00Z", last_used_at: null, revoked: false },
  { id: 2, name: "old ci", prefix: "arb_zzz999", created_at: "2026-03-01T10:00:00Z", last_used_at: "2026-03-02T10:00:00Z", revoked: true },
];

export const newKey: NewApiKey = {
  id: 3, name: "notebook", prefix: "arb_new000", created_at: "2026-05-02T12:00:00Z", key: "arb_new000-SECRET-xyz",
};

export const usageRows = (group: string): UsageRow[] => {
  if (group === "day") {
    return [
      { key: "2026-05-01", prompt_tokens: 1000, reasoning_tokens: 6000, answer_tokens: 2000, cost: 0.5, requests: 4 },
      { key: "2026-05-02", prompt_tokens: 500, reasoning_tokens: 9000, answer_tokens: 1000, cost: 0.7, requests: 2 },
    ];
  }
  if (group === "model") {
    return [{ key: "deepseek-r1", prompt_tokens: 1500, reasoning_tokens: 15000, answer_tokens: 3000, cost: 1.2, requests: 6 }];
  }
  return [
    { key: "alice", prompt_tokens: 1200, reasoning_tokens: 12000, answer_tokens: 2500, cost: 1.0, requests: 5 },
    { key: "admin", prompt_tokens: 300, reasoning_tokens: 3000, answer_tokens: 500, cost: 0.2, requests: 1 },
  ];
};

export const stats: AdminStats = {
  ttft_ms: { p50: 180, p90: 420, p99: 900, histogram: [{ le: 100, count: 2 }, { le: 250, count: 5 }, { le: 1000, count: 6 }, { le: "+Inf", count: 6 }] },
  thinking_ms: { p50: 8000, p90: 30000, p99: 60000, histogram: [{ le: 5000, count: 1 }, { le: 30000, count: 3 }, { le: null, count: 2 }] },
  reasoning_share: 0.78,
  refusals: [{ day: "2026-05-02", limit: "tokens_per_day", count: 3 }, { day: "2026-05-02", limit: "requests_per_minute", count: 1 }],
  by_day_model: [
    { day: "2026-05-01", model: "deepseek-r1", tokens: 9000, cost: 0.5 },
    { day: "2026-05-02", model: "deepseek-r1", tokens: 10500, cost: 0.7 },
  ],
};

export const endpoints: Endpoint[] = [
  {
    id: 1, model: "deepseek-r1", base_url: "http://127.0.0.1:30000", weight: 1, max_concurrency: 8, enabled: true,
    draining: false, health: "healthy", last_check_at: "2026-05-02T12:00:00Z", last_error: null, running: 2, queued: 0,
    history: [
      { at: "2026-05-02T11:58:00Z", healthy: true, running: 1, queued: 0, throughput: 40 },
      { at: "2026-05-02T11:59:00Z", healthy: true, running: 2, queued: 1, throughput: 55.5 },
    ],
  },
  {
    id: 2, model: "deepseek-r1", base_url: "http://127.0.0.1:30001", weight: 1, max_concurrency: null, enabled: false,
    draining: false, health: "unhealthy", last_check_at: "2026-05-02T12:00:00Z", last_error: "connection refused",
    running: 0, queued: 0,
    history: [{ at: "2026-05-02T11:59:00Z", healthy: false, running: 0, queued: 0, throughput: null }],
  },
];

export const quota: UserQuota = {
  username: "alice", tokens_per_day: null, tokens_per_month: 5_000_000, requests_per_minute: null,
  concurrent_streams: null, max_tokens: null,
  effective: { tokens_per_day: 200_000, tokens_per_month: 5_000_000, requests_per_minute: 10, concurrent_streams: 2, max_tokens: 32_768 },
  used: myUsage.used,
};
