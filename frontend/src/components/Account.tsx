import { getCookie } from "../lib/boot";
import { IconLogout } from "./icons";

/** The sidebar's footer on every page: who is signed in, and a log-out button. */
export function Account({ username, roles, logoutUrl }: { username: string; roles: string[]; logoutUrl: string }) {
  // The form posts Django's logout with the CSRF token read at submit time.
  const logout = (e: Event) => {
    const form = e.currentTarget as HTMLFormElement;
    const input = form.querySelector<HTMLInputElement>("input[name=csrfmiddlewaretoken]");
    if (input) input.value = getCookie("csrftoken");
  };
  return (
    <div class="account">
      <span class="avatar" aria-hidden="true">{(username || "?").slice(0, 1).toUpperCase()}</span>
      <span class="who">
        <span class="who-name">{username}</span>
        {roles.length > 0 && <span class="who-role">{roles.join(", ")}</span>}
      </span>
      <form method="post" action={logoutUrl} onSubmit={logout}>
        <input type="hidden" name="csrfmiddlewaretoken" value="" />
        <button type="submit" class="icon-btn" aria-label="Log out" title="Log out" data-testid="logout">
          <IconLogout />
        </button>
      </form>
    </div>
  );
}
