import "katex/dist/katex.min.css";
import "./styles/base.css";
import "./styles/app.css";
import "./styles/pages.css";
import "./styles/tree.css";
import "./components/annotate/annotate.css";
import { render } from "preact";
import { AnnotateApi } from "./components/annotate/api";
import { Workbench } from "./components/annotate/Workbench";
import { Shell, loginRedirect, readPageBoot } from "./components/pages/Shell";
import { Api } from "./lib/api";
import { initTheme } from "./lib/theme";

initTheme();
const boot = readPageBoot();
const api = new AnnotateApi(new Api(boot.api_base, loginRedirect), boot.api_base);
const root = document.getElementById("app");
if (root) render(<Shell boot={boot} title="Annotate"><Workbench api={api} /></Shell>, root);
