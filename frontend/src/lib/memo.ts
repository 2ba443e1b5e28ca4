// A tiny memo() without preact/compat (compat installs a global vnode hook that
// slows every render down).
import { Component, h } from "preact";
import type { FunctionComponent } from "preact";

export function shallowEqual(a: object, b: object): boolean {
  const ka = Object.keys(a) as Array<keyof typeof a>;
  if (ka.length !== Object.keys(b).length) return false;
  for (const k of ka) if (a[k] !== b[k]) return false;
  return true;
}

export function memo<P extends object>(
  fn: FunctionComponent<P>,
  equal: (prev: P, next: P) => boolean = shallowEqual,
): FunctionComponent<P> {
  class Memo extends Component<P> {
    shouldComponentUpdate(next: P): boolean {
      return !equal(this.props as P, next);
    }
    render(props: P) {
      return h(fn, props);
    }
  }
  (Memo as unknown as { displayName: string }).displayName = `Memo(${fn.displayName || fn.name})`;
  return Memo as unknown as FunctionComponent<P>;
}
