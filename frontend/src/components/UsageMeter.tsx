// The chat's compact usage meter ("12.3k / 200k tokens today"), with links to
// Settings (and Dashboard / Admin for staff). Mounted into the chat sidebar's
// footer as its own render root, so the sidebar component stays untouched.
import "../styles/meter.css";
import { render } from "preact";
import { useEffect, useState } from "preact/hooks";
import { Api } from "../lib/api";
import { compact, fraction, level, meterText, resetLabel } from "../lib/usage";
import type { Level, MyUsage } from "../lib/usage";
import { UsageApi } from "../lib/usage";
import { getBoot, usageTick } from "../store";

export function meterLabel(u: MyUsage): { text: string; f: number | null; lv: Level; extra: string | null; title: string } {
  const dayLimit = u.limits.tokens_per_day;
  const text = meterText(u.used.tokens_today, dayLimit);
  const parts = [text];
  const monthText = u.limits.tokens_per_month !== null
    ? `${compact(u.used.tokens_this_month)} / ${compact(u.limits.tokens_per_month)} this month` : null;
  if (monthText) parts.push(monthText);
  if (u.resets?.day && dayLimit !== null) parts.push(`daily limit resets ${resetLabel(u.resets.day)}`);
  // The bar shows today; the colour warns about whichever of day and month is fuller,
  // and a second line names the month when it is the one running out.
  const fd = fraction(u.used.tokens_today, dayLimit);
  const fm = fraction(u.used.tokens_this_month, u.limits.tokens_per_month);
  const worst = Math.max(fd ?? 0, fm ?? 0);
  const lv = level(fd === null && fm === null ? null : worst);
  const extra = monthText && fm !== null && fm >= 0.8 && fm > (fd ?? 0) ? monthText : null;
  return { text, f: fd, lv, extra, title: parts.join(" · ") };
}

export function UsageMeter({ api }: { api: UsageApi }) {
  const [u, setU] = useState<MyUsage | null>(null);
  const tick = usageTick.value;
  useEffect(() => {
    // A finished answer is accounted just after its last event: wait a moment.
    const h = window.setTimeout(() => {
      api.myUsage().then(setU, () => {
        /* no usage endpoint or no access: show links only */
      });
    }, tick === 0 ? 0 : 800);
    return () => window.clearTimeout(h);
  }, [tick]);
  useEffect(() => {
    const onFocus = () => (usageTick.value = usageTick.value + 1);
    window.addEventListener("focus", onFocus);
    return () => window.removeEventListener("focus", onFocus);
  }, []);

  const boot = getBoot();
  const m = u ? meterLabel(u) : null;
  return (
    <div class="usage-dock-inner">
      {m && (
        <a href="/settings/" class={`usage-meter lv-${m.lv}`} data-testid="usage-meter" title={m.title}
          aria-label={`Usage: ${m.title}. Open settings`}>
          <span class="um-text">{m.text}</span>
          {m.f !== null && <span class="um-track" aria-hidden="true"><span class="um-fill" style={{ width: `${m.f * 100}%` }} /></span>}
          {m.extra && <span class="um-extra">{m.extra}</span>}
        </a>
      )}
      <nav class="um-links small" aria-label="Pages">
        <a href="/settings/" data-testid="nav-settings">Settings</a>
        {(boot.user.is_staff || boot.user.roles.includes("annotator")) && <a href="/annotate/" data-testid="nav-annotate">Annotate</a>}
        {boot.user.is_staff && <a href="/dashboard/" data-testid="nav-dashboard">Dashboard</a>}
        {boot.user.is_staff && <a href="/admin/" data-testid="nav-admin">Admin</a>}
      </nav>
    </div>
  );
}

/** Render the meter at the end of the chat sidebar (CSS places it above the account row). */
export function mountUsageMeter(sidebar: Element | null): () => void {
  if (!sidebar) return () => {};
  const el = document.createElement("div");
  el.className = "usage-dock";
  sidebar.appendChild(el);
  const boot = getBoot();
  const api = new UsageApi(new Api(boot.api_base));
  render(<UsageMeter api={api} />, el);
  return () => {
    render(null, el);
    el.remove();
  };
}
