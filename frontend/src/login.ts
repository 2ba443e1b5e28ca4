import "./styles/base.css";
import { bindThemeButtons, initTheme } from "./lib/theme";

initTheme();
bindThemeButtons();

// Demo credentials: clicking a row fills the form.
document.querySelectorAll<HTMLButtonElement>("[data-demo-user]").forEach((btn) =>
  btn.addEventListener("click", () => {
    const u = document.querySelector<HTMLInputElement>("input[name=username]");
    const p = document.querySelector<HTMLInputElement>("input[name=password]");
    if (!u || !p) return;
    u.value = btn.dataset.demoUser ?? "";
    p.value = btn.dataset.demoPassword ?? "";
    p.focus();
  }),
);
