import { useEffect, useRef, useState } from "preact/hooks";
import { announce, branch, getBoot, navigate, stop, activeResponseId, view } from "../store";
import { ConnectionState, Sidebar, ThemeToggle, Toasts } from "./Chrome";
import { Composer, composerFocus } from "./Composer";
import { IconArrowDown, IconMenu } from "./icons";
import { AssistantTurn, UserTurn } from "./Turn";
import { mountUsageMeter } from "./UsageMeter";

const EXAMPLES = [
  "What is the sum of all positive integers n such that n² + 12n − 2007 is a perfect square?",
  "Prove that √2 is irrational.",
  "Write a Python function that returns the n-th prime, and explain its complexity.",
  "How many r's are in the word “strawberry”? Think carefully.",
];

function Empty() {
  const boot = getBoot();
  return (
    <div class="empty">
      <h1>What should the model think about?</h1>
      <p class="muted">
        {boot.user.username ? `Hi ${boot.user.username}. ` : ""}Watch the chain of thought unfold live, then read the
        answer.
      </p>
      <ul class="examples">
        {EXAMPLES.map((ex) => (
          <li key={ex}>
            <button type="button" class="example" onClick={() => {
              const ta = document.querySelector<HTMLTextAreaElement>("[data-testid=composer]");
              if (!ta) return;
              ta.value = ex;
              ta.dispatchEvent(new Event("input", { bubbles: true }));
              ta.focus();
            }}>{ex}</button>
          </li>
        ))}
      </ul>
    </div>
  );
}

function Thread() {
  const v = view.value;
  const msgs = branch.value;
  const scroller = useRef<HTMLDivElement>(null);
  const inner = useRef<HTMLDivElement>(null);
  const stick = useRef(true);
  const [away, setAway] = useState(false);

  useEffect(() => {
    const s = scroller.current;
    const i = inner.current;
    if (!s || !i || typeof ResizeObserver === "undefined") return;
    const ro = new ResizeObserver(() => {
      if (stick.current) s.scrollTop = s.scrollHeight;
    });
    ro.observe(i);
    return () => ro.disconnect();
  }, []);

  useEffect(() => {
    stick.current = true;
    setAway(false);
    const s = scroller.current;
    if (s) s.scrollTop = s.scrollHeight;
  }, [v.id]);

  const onScroll = () => {
    const s = scroller.current;
    if (!s) return;
    const atBottom = s.scrollTop + s.clientHeight >= s.scrollHeight - 48;
    stick.current = atBottom;
    if (away === atBottom) setAway(!atBottom);
  };

  return (
    <div class="thread" ref={scroller} onScroll={onScroll}>
      <div class="thread-inner" ref={inner}>
        {v.error && <div class="turn-error" role="alert">{v.error}</div>}
        {v.loading && msgs.length === 0 && <div class="loading muted">Loading conversation…</div>}
        {!v.loading && !v.error && msgs.length === 0 && <Empty />}
        {msgs.map((m) => (m.role === "user" ? <UserTurn key={m.id} m={m} /> : <AssistantTurn key={m.id} m={m} />))}
      </div>
      {away && (
        <button type="button" class="to-bottom" aria-label="Scroll to the latest message" onClick={() => {
          const s = scroller.current;
          if (s) s.scrollTo({ top: s.scrollHeight, behavior: "smooth" });
          stick.current = true;
          setAway(false);
        }}>
          <IconArrowDown size={16} />
        </button>
      )}
    </div>
  );
}

export function App() {
  const [navOpen, setNavOpen] = useState(false);
  const v = view.value;

  // Usage meter and page links in the sidebar footer (rendered as their own root).
  useEffect(() => mountUsageMeter(document.querySelector("[data-testid=sidebar]")), []);

  useEffect(() => {
    const onKey = (e: KeyboardEvent) => {
      if (e.key === "Escape") {
        if (navOpen) {
          setNavOpen(false);
          return;
        }
        if (activeResponseId.value && !(e.target instanceof HTMLTextAreaElement)) stop();
      }
      if ((e.ctrlKey || e.metaKey) && e.shiftKey && (e.key === "o" || e.key === "O")) {
        e.preventDefault();
        navigate("/");
        composerFocus.fn();
      }
    };
    document.addEventListener("keydown", onKey);
    return () => document.removeEventListener("keydown", onKey);
  }, [navOpen]);

  return (
    <div class={`app${navOpen ? " nav-open" : ""}`}>
      <a href="#composer-input" class="skip-link">Skip to the message box</a>
      <Sidebar onNavigate={() => {
        setNavOpen(false);
        composerFocus.fn();
      }} />
      <div class="scrim" onClick={() => setNavOpen(false)} aria-hidden="true" />
      <main class="main">
        <header class="topbar">
          <button type="button" class="icon-btn menu-btn" aria-label="Show conversations" aria-expanded={navOpen}
            onClick={() => setNavOpen(!navOpen)}>
            <IconMenu />
          </button>
          <h2 class="topbar-title">{v.id ? v.title || "Conversation" : "New chat"}</h2>
          <span class="spacer" />
          <ConnectionState />
          <ThemeToggle />
        </header>
        <Thread />
        <Composer />
      </main>
      <Toasts />
      <div class="sr-only" role="status" aria-live="polite" data-testid="live-status">{announce.value}</div>
    </div>
  );
}
