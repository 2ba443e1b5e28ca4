import { describe, expect, it } from "vitest";
import { toastError, toasts, usageTick } from "../store";
import * as fx from "../test/usageFixtures";
import { meterLabel } from "./UsageMeter";

describe("usage meter", () => {
  it("shows today's tokens against the daily limit; the fuller limit sets the colour", () => {
    const m = meterLabel(fx.myUsage);
    expect(m.text).toBe("12.3k / 200k tokens today");
    expect(m.f).toBeCloseTo(12_345 / 200_000);
    expect(m.lv).toBe("warn");
    expect(m.extra).toBe("2.9M / 3M this month");
    expect(m.title).toContain("2.9M / 3M this month");
  });
  it("unlimited users see a count without a bar", () => {
    const m = meterLabel({ ...fx.myUsage, limits: { ...fx.myUsage.limits, tokens_per_day: null, tokens_per_month: null } });
    expect(m.text).toBe("12.3k tokens today");
    expect(m.f).toBeNull();
  });
});

describe("quota refusals in the chat", () => {
  it("titles the toast by the limit and does not repeat the retry hint", () => {
    const before = usageTick.value;
    toastError("rate_limited", "Too many requests: at most 10 a minute. Try again in 42 s.", 42);
    const t = toasts.value[toasts.value.length - 1];
    expect(t.title).toBe("Request rate limit reached");
    expect(t.message).toBe("Too many requests: at most 10 a minute. Try again in 42 s.");
    expect(usageTick.value).toBe(before + 1);
  });
  it("adds the retry time when the message lacks it and shows the reset time locally", () => {
    toastError("quota_exceeded", "Daily token limit of 200,000 reached; resets at 2026-05-03T00:00:00Z.", 3600);
    const t = toasts.value[toasts.value.length - 1];
    expect(t.title).toBe("Daily token limit reached");
    expect(t.message).not.toContain("T00:00:00Z");
    expect(t.message).toMatch(/Try again in 1 h\.$/);
  });
  it("leaves other errors as they were", () => {
    toastError("too_large", "Too long.", null);
    expect(toasts.value[toasts.value.length - 1].title).toBe("Message too long");
  });
});
