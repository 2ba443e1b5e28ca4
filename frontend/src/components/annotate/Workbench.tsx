// /annotate/: the campaign picker, then one task after another.
import { useEffect, useRef, useState } from "preact/hooks";
import { notify } from "../pages/Shell";
import type { AnnotateApi } from "./api";
import { describeError } from "./api";
import type { CampaignCard, Task, TaskType } from "./model";
import { TaskView } from "./TaskView";

const TYPE_LABEL: Record<TaskType, string> = {
  step_labels: "Step labels",
  rubric: "Rubric",
  pairwise: "Pairwise",
};

function campaignFromUrl(): string | null {
  const c = new URLSearchParams(window.location.search).get("campaign");
  return c && /^[0-9a-f-]{36}$/i.test(c) ? c : null;
}

function setCampaignInUrl(id: string | null): void {
  const url = new URL(window.location.href);
  if (id) url.searchParams.set("campaign", id);
  else url.searchParams.delete("campaign");
  window.history.replaceState(null, "", url);
}

type View =
  | { v: "campaigns" }
  | { v: "loading" }
  | { v: "task"; task: Task }
  | { v: "empty" }
  | { v: "error"; message: string };

export function Workbench({ api }: { api: AnnotateApi }) {
  const [campaign, setCampaign] = useState<string | null>(campaignFromUrl());
  const [view, setView] = useState<View>({ v: campaign ? "loading" : "campaigns" });
  const [cards, setCards] = useState<CampaignCard[] | null>(null);
  const seq = useRef(0);
  // What just happened to the previous task ("Submitted"), shown briefly in the next one's bar.
  const [flash, setFlash] = useState<string | null>(null);
  useEffect(() => {
    if (!flash) return;
    const h = window.setTimeout(() => setFlash(null), 4000);
    return () => window.clearTimeout(h);
  }, [flash]);

  const loadNext = async (c: string | null) => {
    const n = ++seq.current;
    setView({ v: "loading" });
    try {
      const task = await api.next(c);
      if (n !== seq.current) return;
      setView(task ? { v: "task", task } : { v: "empty" });
    } catch (e) {
      if (n !== seq.current) return;
      const d = describeError(e, "load the next task");
      setView({ v: "error", message: `${d.title}: ${d.message}` });
    }
  };

  const loadCampaigns = () => {
    setCards(null);
    api.campaigns().then(setCards, (e) => {
      const d = describeError(e, "load the campaigns");
      notify("error", d.title, d.message);
      setCards([]);
    });
  };

  useEffect(() => {
    if (campaign) void loadNext(campaign);
    else loadCampaigns();
  }, []);

  const pick = (id: string | null) => {
    setCampaign(id);
    setCampaignInUrl(id);
    if (id) void loadNext(id);
    else {
      seq.current++;
      setView({ v: "campaigns" });
      loadCampaigns();
    }
  };

  if (view.v === "campaigns") return <CampaignPicker cards={cards} onPick={pick} />;
  if (view.v === "loading") return <p class="muted wb-loading" data-testid="wb-loading">Loading the next task…</p>;
  if (view.v === "error")
    return (
      <div class="wb-empty" role="alert">
        <h2>Something went wrong</h2>
        <p class="muted">{view.message}</p>
        <div class="wb-empty-actions">
          <button type="button" class="btn primary" onClick={() => void loadNext(campaign)}>Try again</button>
          <button type="button" class="btn" onClick={() => pick(null)}>All campaigns</button>
        </div>
      </div>
    );
  if (view.v === "empty")
    return (
      <div class="wb-empty" data-testid="wb-empty">
        <h2>Nothing left to do here</h2>
        <p class="muted">
          You have done every task this campaign has for you, or the remaining ones are being worked on by others.
          Come back later, or pick another campaign.
        </p>
        <div class="wb-empty-actions">
          <button type="button" class="btn primary" onClick={() => pick(null)}>All campaigns</button>
          <button type="button" class="btn" onClick={() => void loadNext(campaign)}>Check again</button>
        </div>
      </div>
    );
  return (
    <TaskView key={view.task.id} task={view.task} api={api} flash={flash}
      onDone={(what) => {
        setFlash(what);
        void loadNext(campaign);
      }} onLeave={() => pick(null)} />
  );
}

function CampaignPicker({ cards, onPick }: { cards: CampaignCard[] | null; onPick: (id: string) => void }) {
  if (cards === null) return <p class="muted wb-loading">Loading campaigns…</p>;
  if (cards.length === 0)
    return (
      <div class="wb-empty" data-testid="wb-no-campaigns">
        <h2>No campaigns are open</h2>
        <p class="muted">When an administrator opens an annotation campaign, it shows up here.</p>
      </div>
    );
  return (
    <section class="wb-campaigns" aria-labelledby="wb-campaigns-h">
      <div class="section-head">
        <h2 id="wb-campaigns-h">Campaigns</h2>
        <p class="muted small">Pick one; tasks come one at a time, and your work is saved as you go.</p>
      </div>
      <ul class="wb-campaign-list">
        {cards.map((c) => (
          <li key={c.id}>
            <button type="button" class="wb-campaign card" data-testid="campaign-card" data-campaign-id={c.id}
              disabled={c.available === 0} onClick={() => onPick(c.id)}>
              <span class="wb-campaign-name">{c.name}</span>
              {c.description && <span class="wb-campaign-desc">{c.description}</span>}
              <span class="wb-campaign-types">
                {c.task_types.map((t) => <span key={t} class="wb-type">{TYPE_LABEL[t] ?? t}</span>)}
              </span>
              <span class="wb-campaign-counts small">
                <span><strong>{c.done}</strong> done</span>
                <span><strong>{c.available}</strong> available</span>
              </span>
              <span class="wb-campaign-go">{c.available ? "Start →" : "Nothing left"}</span>
            </button>
          </li>
        ))}
      </ul>
    </section>
  );
}
