// Trace rubric: four 1–5 scales and a rationale.
import type { RubricAction, RubricState } from "./model";
import { RUBRIC_DIMS, RUBRIC_HELP } from "./model";

export function RubricControls({ s, dispatch }: { s: RubricState; dispatch: (a: RubricAction) => void }) {
  return (
    <div class="wb-rubric" data-testid="rubric">
      {RUBRIC_DIMS.map((d, i) => (
        <div key={d} class={`wb-scale${s.cursor === i ? " current" : ""}`} role="group"
          aria-labelledby={`scale-${d}`} data-testid={`scale-${d}`} onClick={() => dispatch({ type: "cursor", i })}>
          <div class="wb-scale-head">
            <span id={`scale-${d}`} class="wb-scale-name">{RUBRIC_HELP[d][0]}</span>
            <span class="small muted">{RUBRIC_HELP[d][1]}</span>
          </div>
          <div class="wb-scale-btns">
            {[1, 2, 3, 4, 5].map((v) => (
              <button key={v} type="button" class="wb-score" aria-pressed={s.scores[d] === v}
                aria-label={`${RUBRIC_HELP[d][0]}: ${v} of 5`}
                onClick={() => dispatch({ type: "score", dim: d, value: v })}>{v}</button>
            ))}
          </div>
        </div>
      ))}
      <p class="small muted">1 = poor, 5 = excellent. <kbd>j</kbd>/<kbd>k</kbd> move between scales, <kbd>1</kbd>–<kbd>5</kbd> score.</p>
    </div>
  );
}
