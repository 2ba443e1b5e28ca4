// Pairwise preference: two traces side by side, blind ("Left"/"Right" only), with a
// choice for the reasoning and one for the final answer.
import { LazyMarkdown } from "./LazyMarkdown";
import type { Choice, PairAction, PairState, Question, TraceView } from "./model";
import { CHOICES, CHOICE_LABEL, QUESTIONS } from "./model";
import { TraceReader } from "./TraceReader";

const KEY: Record<Choice, string> = { left: "a", right: "b", tie: "t", both_bad: "x" };
const ASK: Record<Question, string> = {
  reasoning: "Which reasoning is better?",
  answer: "Which final answer is better?",
};

export function PairSides({ traces, s, dispatch }: { traces: TraceView[]; s: PairState; dispatch: (a: PairAction) => void }) {
  return (
    <div class="wb-pair" data-testid="pair">
      {traces.slice(0, 2).map((t, side) => {
        const open = s.open[side];
        const name = side === 0 ? "Left" : "Right";
        return (
          <section key={side} class="wb-side card" aria-label={name} data-testid={`side-${side === 0 ? "left" : "right"}`}>
            <header class="wb-side-head">
              <h3>{name}</h3>
              <span class="small muted">
                {t.usage.reasoning_tokens ? `${t.usage.reasoning_tokens.toLocaleString()} reasoning tokens` : ""}
                {t.units.length > 1 ? ` · ${t.units.length - 1} steps` : ""}
              </span>
            </header>
            <button type="button" class="ghost small wb-side-toggle" aria-expanded={open}
              onClick={() => dispatch({ type: "toggleSide", side: side as 0 | 1 })}>
              {open ? "Hide the reasoning" : "Show the reasoning"} <kbd>{side === 0 ? "[" : "]"}</kbd>
            </button>
            {open && <TraceReader trace={t} compact />}
            <h4 class="wb-answer-h">Final answer</h4>
            <LazyMarkdown text={t.content || "_(no answer)_"} class="wb-md" eager />
          </section>
        );
      })}
    </div>
  );
}

export function PairControls({ s, dispatch }: { s: PairState; dispatch: (a: PairAction) => void }) {
  return (
    <div class="wb-questions">
      {QUESTIONS.map((q, qi) => (
        <div key={q} class={`wb-question${s.cursor === qi ? " current" : ""}`} role="group" aria-labelledby={`q-${q}`}
          data-testid={`question-${q}`}>
          <div id={`q-${q}`} class="wb-q-title">{ASK[q]}</div>
          <div class="wb-choices">
            {CHOICES.map((c) => (
              <button key={c} type="button" class={`wb-choice c-${c}`} aria-pressed={s[q] === c}
                data-testid={`choose-${q}-${c}`} onClick={() => dispatch({ type: "choose", q, choice: c })}>
                {CHOICE_LABEL[c]} <kbd>{KEY[c]}</kbd>
              </button>
            ))}
          </div>
        </div>
      ))}
    </div>
  );
}
