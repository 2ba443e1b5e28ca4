import "./styles/base.css";
import "./styles/app.css";
import "./styles/pages.css";
import { render } from "preact";
import { Dashboard, rangeFromUrl } from "./components/pages/Dashboard";
import { Shell, loginRedirect, readPageBoot } from "./components/pages/Shell";
import { Api } from "./lib/api";
import { initTheme } from "./lib/theme";
import { UsageApi } from "./lib/usage";

initTheme();
const boot = readPageBoot();
const api = new UsageApi(new Api(boot.api_base, loginRedirect));
const root = document.getElementById("app");
if (root) {
  render(
    <Shell boot={boot} title="Dashboard">
      {boot.user.is_staff
        ? <Dashboard api={api} initialRange={rangeFromUrl(window.location.search)} />
        : <p class="muted">The dashboard is for administrators.</p>}
    </Shell>,
    root,
  );
}
