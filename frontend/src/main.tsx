import "katex/dist/katex.min.css";
import "./styles/base.css";
import "./styles/app.css";
import "./styles/tree.css";
import { render } from "preact";
import { App } from "./components/App";
import { readBoot } from "./lib/boot";
import { initTheme } from "./lib/theme";
import { startApp } from "./store";

initTheme();
const boot = readBoot();
startApp(boot);
const root = document.getElementById("app");
if (root) render(<App />, root);
