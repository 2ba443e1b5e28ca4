// Light/dark: follows the OS unless the user picked one (persisted in
// localStorage and in a cookie so the server can render it without a flash).
export type ThemePref = "system" | "light" | "dark";
const KEY = "arbor.theme";

export function getThemePref(): ThemePref {
  try {
    const v = localStorage.getItem(KEY);
    if (v === "light" || v === "dark") return v;
  } catch {
    /* storage blocked */
  }
  const attr = document.documentElement.dataset.theme;
  return attr === "light" || attr === "dark" ? attr : "system";
}

export function effectiveTheme(pref: ThemePref = getThemePref()): "light" | "dark" {
  if (pref !== "system") return pref;
  return window.matchMedia?.("(prefers-color-scheme: dark)").matches ? "dark" : "light";
}

export function applyTheme(pref: ThemePref): void {
  const root = document.documentElement;
  if (pref === "system") delete root.dataset.theme;
  else root.dataset.theme = pref;
  try {
    if (pref === "system") localStorage.removeItem(KEY);
    else localStorage.setItem(KEY, pref);
  } catch {
    /* ignore */
  }
  const maxAge = pref === "system" ? 0 : 31_536_000;
  document.cookie = `arbor_theme=${pref === "system" ? "" : pref}; path=/; max-age=${maxAge}; samesite=lax`;
  window.dispatchEvent(new CustomEvent("arbor:theme", { detail: pref }));
}

/** Cycle: system -> (the opposite of what the OS shows) -> the other -> system. */
export function nextTheme(pref: ThemePref): ThemePref {
  const osDark = window.matchMedia?.("(prefers-color-scheme: dark)").matches ?? false;
  if (pref === "system") return osDark ? "light" : "dark";
  if ((pref === "dark") === !osDark) return pref === "dark" ? "light" : "dark";
  return "system";
}

export function initTheme(): void {
  const pref = getThemePref();
  if (pref !== "system") document.documentElement.dataset.theme = pref;
}

/** Wire every [data-theme-toggle] button (used by the login page). */
export function bindThemeButtons(root: ParentNode = document): void {
  const update = () => {
    const pref = getThemePref();
    root.querySelectorAll<HTMLElement>("[data-theme-toggle]").forEach((b) => {
      b.setAttribute("aria-label", `Theme: ${pref}. Switch theme`);
      b.dataset.pref = pref;
      b.title = `Theme: ${pref}`;
    });
  };
  root.querySelectorAll<HTMLElement>("[data-theme-toggle]").forEach((b) =>
    b.addEventListener("click", () => {
      applyTheme(nextTheme(getThemePref()));
      update();
    }),
  );
  update();
}
