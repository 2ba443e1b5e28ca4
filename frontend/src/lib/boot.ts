import type { Boot } from "./types";

const FALLBACK: Boot = {
  user: { username: "", is_staff: false, roles: [] },
  models: [],
  default_model: null,
  max_prompt_chars: 32_000,
  ws_path: "/ws/chat/",
  api_base: "/api",
  logout_url: "/accounts/logout/",
  conversation_id: null,
};

export function readBoot(doc: Document = document): Boot {
  const el = doc.getElementById("arbor-boot");
  if (!el?.textContent) return FALLBACK;
  try {
    return { ...FALLBACK, ...(JSON.parse(el.textContent) as Partial<Boot>) };
  } catch {
    return FALLBACK;
  }
}

export function getCookie(name: string, doc: Document = document): string {
  for (const part of doc.cookie ? doc.cookie.split(";") : []) {
    const [k, ...v] = part.trim().split("=");
    if (k === name) return decodeURIComponent(v.join("="));
  }
  return "";
}

export function wsUrl(path: string, loc: Location = window.location): string {
  const proto = loc.protocol === "https:" ? "wss:" : "ws:";
  return `${proto}//${loc.host}${path}`;
}
