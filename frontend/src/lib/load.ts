// Loading data into a component: one hook for every page that fetches and refreshes.
import { useEffect, useState } from "preact/hooks";
import { ApiError } from "./api";

export function errText(e: unknown): string {
  return e instanceof ApiError ? e.message : "Something went wrong.";
}

export interface Loaded<T> {
  data: T | null;
  error: string | null;
  loading: boolean;
}

/** Load once per `deps`, keep the last data while reloading (no flashing on refresh). */
export function useLoad<T>(fn: () => Promise<T>, deps: unknown[]): Loaded<T> & { reload: () => void; set: (d: T) => void } {
  const [st, setSt] = useState<Loaded<T>>({ data: null, error: null, loading: true });
  const [n, setN] = useState(0);
  useEffect(() => {
    let live = true;
    setSt((s) => ({ ...s, loading: s.data === null, error: null }));
    fn().then(
      (data) => live && setSt({ data, error: null, loading: false }),
      (e) => live && setSt((s) => ({ ...s, error: errText(e), loading: false })),
    );
    return () => {
      live = false;
    };
  }, [...deps, n]);
  return { ...st, reload: () => setN((x) => x + 1), set: (data: T) => setSt({ data, error: null, loading: false }) };
}
