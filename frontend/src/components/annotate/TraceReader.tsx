// A trace read, not labelled: its units one after another (for the rubric and pairs),
// typeset lazily like the step list.
import { useMemo } from "preact/hooks";
import { KIND_LABEL } from "../../lib/steps";
import { KindIcon } from "../icons";
import { LazyMarkdown } from "./LazyMarkdown";
import type { TraceView } from "./model";
import { unitText } from "./model";

export function TraceReader({ trace, compact = false }: { trace: TraceView; compact?: boolean }) {
  const units = useMemo(() => trace.units.filter((u) => !u.answer), [trace]);
  return (
    <ol class={`wb-reader${compact ? " compact" : ""}`} aria-label="Reasoning">
      {units.map((u, i) => (
        <li key={`${u.start}`} class="wb-reader-step">
          <span class={`wb-kind k-${u.kind}`} title={u.title}>
            <KindIcon kind={u.kind} size={12} />
            {compact ? "" : KIND_LABEL[u.kind] ?? u.kind}
            <span class="sr-only">step {i + 1}</span>
          </span>
          <LazyMarkdown text={unitText(trace, u)} class="wb-md" />
        </li>
      ))}
    </ol>
  );
}
