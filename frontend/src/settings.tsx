import "./styles/base.css";
import "./styles/app.css";
import "./styles/pages.css";
import { render } from "preact";
import { Shell, loginRedirect, readPageBoot } from "./components/pages/Shell";
import { Settings } from "./components/pages/Settings";
import { Api } from "./lib/api";
import { initTheme } from "./lib/theme";
import { UsageApi } from "./lib/usage";

initTheme();
const boot = readPageBoot();
const api = new UsageApi(new Api(boot.api_base, loginRedirect));
const root = document.getElementById("app");
if (root) render(<Shell boot={boot} title="Settings"><Settings api={api} /></Shell>, root);
