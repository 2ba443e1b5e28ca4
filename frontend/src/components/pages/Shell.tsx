// The page frame shared by /settings/ and /dashboard/: the chat's sidebar and
// top-bar look, with Chat / Settings / Dashboard / Admin navigation.
import { signal } from "@preact/signals";
import type { ComponentChildren } from "preact";
import { useEffect, useState } from "preact/hooks";
import { applyTheme, getThemePref, nextTheme } from "../../lib/theme";
import type { ThemePref } from "../../lib/theme";
import { Account } from "../Account";
import { IconAuto, IconMenu, IconMoon, IconSun, IconX, Logo } from "../icons";

export interface PageBoot {
  user: { username: string; is_staff: boolean; roles: string[] };
  api_base: string;
  logout_url: string;
}

const PAGE_FALLBACK: PageBoot = {
  user: { username: "", is_staff: false, roles: [] },
  api_base: "/api",
  logout_url: "/accounts/logout/",
};

export function readPageBoot(doc: Document = document): PageBoot {
  const el = doc.getElementById("arbor-boot");
  if (!el?.textContent) return PAGE_FALLBACK;
  try {
    const b = JSON.parse(el.textContent) as Partial<PageBoot>;
    return { ...PAGE_FALLBACK, ...b, user: { ...PAGE_FALLBACK.user, ...(b.user ?? {}) } };
  } catch {
    return PAGE_FALLBACK;
  }
}

export function loginRedirect(): void {
  const next = encodeURIComponent(window.location.pathname + window.location.search);
  window.location.assign(`/accounts/login/?next=${next}`);
}

// ---- toasts ---------------------------------------------------------------------

export interface PageToast {
  id: number;
  kind: "error" | "success" | "info";
  title: string;
  message: string;
}
export const pageToasts = signal<PageToast[]>([]);
let seq = 0;

export function notify(kind: PageToast["kind"], title: string, message = ""): void {
  const id = ++seq;
  pageToasts.value = [...pageToasts.value.slice(-3), { id, kind, title, message }];
  window.setTimeout(() => {
    pageToasts.value = pageToasts.value.filter((t) => t.id !== id);
  }, kind === "error" ? 10_000 : 4_000);
}

function PageToasts() {
  return (
    <div class="toasts" aria-live="assertive" aria-relevant="additions">
      {pageToasts.value.map((t) => (
        <div key={t.id} class={`toast toast-${t.kind}`} data-testid="toast" role={t.kind === "error" ? "alert" : "status"}>
          <div class="toast-body">
            <strong class="toast-title">{t.title}</strong>
            {t.message && <span class="toast-msg">{t.message}</span>}
          </div>
          <button type="button" class="icon-btn small" aria-label="Dismiss"
            onClick={() => (pageToasts.value = pageToasts.value.filter((x) => x.id !== t.id))}>
            <IconX size={16} />
          </button>
        </div>
      ))}
    </div>
  );
}

// ---- navigation -------------------------------------------------------------------

export interface NavLink {
  href: string;
  label: string;
  testid: string;
}

/** The product's pages a user may open: Annotate for annotators and staff, Admin and Dashboard only for staff. */
export function navLinks(user: PageBoot["user"]): NavLink[] {
  const links: NavLink[] = [
    { href: "/", label: "Chat", testid: "nav-chat" },
    { href: "/settings/", label: "Settings", testid: "nav-settings" },
  ];
  if (user.is_staff || user.roles.includes("annotator")) {
    links.push({ href: "/annotate/", label: "Annotate", testid: "nav-annotate" });
  }
  if (user.is_staff) {
    links.push({ href: "/dashboard/", label: "Dashboard", testid: "nav-dashboard" });
    links.push({ href: "/dashboard/campaigns/", label: "Campaigns", testid: "nav-campaigns" });
    links.push({ href: "/admin/", label: "Admin", testid: "nav-admin" });
  }
  return links;
}

export function isCurrent(href: string, path: string): boolean {
  if (href === "/") return path === "/" || path.startsWith("/c/");
  // The dashboard's own link stays off on the campaign pages under it.
  if (href === "/dashboard/") return path === href;
  return path.startsWith(href);
}

export function PageThemeToggle() {
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

export function Shell({ boot, title, children }: { boot: PageBoot; title: string; children: ComponentChildren }) {
  const [navOpen, setNavOpen] = useState(false);
  const path = window.location.pathname;
  useEffect(() => {
    document.title = `${title} · Arbor`;
  }, [title]);
  useEffect(() => {
    const onKey = (e: KeyboardEvent) => {
      if (e.key === "Escape") setNavOpen(false);
    };
    document.addEventListener("keydown", onKey);
    return () => document.removeEventListener("keydown", onKey);
  }, []);
  return (
    <div class={`app page-app${navOpen ? " nav-open" : ""}`}>
      <a href="#page-main" class="skip-link">Skip to the content</a>
      <aside class="sidebar" data-testid="sidebar" aria-label="Navigation">
        <a class="brand brand-link" href="/">
          <Logo />
          <span class="brand-name">Arbor</span>
        </a>
        <nav class="page-nav" aria-label="Pages">
          <ul>
            {navLinks(boot.user).map((l) => (
              <li key={l.href}>
                <a href={l.href} data-testid={l.testid} class={`page-link${isCurrent(l.href, path) ? " active" : ""}`}
                  aria-current={isCurrent(l.href, path) ? "page" : undefined}>
                  {l.label}
                </a>
              </li>
            ))}
          </ul>
        </nav>
        <Account username={boot.user.username} roles={boot.user.roles} logoutUrl={boot.logout_url} />
      </aside>
      <div class="scrim" onClick={() => setNavOpen(false)} aria-hidden="true" />
      <main class="main">
        <header class="topbar">
          <button type="button" class="icon-btn menu-btn" aria-label="Show navigation" aria-expanded={navOpen}
            onClick={() => setNavOpen(!navOpen)}>
            <IconMenu />
          </button>
          <h1 class="topbar-title">{title}</h1>
          <span class="spacer" />
          <PageThemeToggle />
        </header>
        <div class="page-scroll" id="page-main" tabIndex={-1}>
          <div class="page">{children}</div>
        </div>
      </main>
      <PageToasts />
    </div>
  );
}
