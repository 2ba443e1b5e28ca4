import { render } from "preact";
import { act } from "preact/test-utils";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import type { UsageApi } from "../../lib/usage";
import { SharingSection } from "./Settings";

// uPlot (imported by the settings page's charts) needs canvas APIs jsdom lacks.
vi.mock("uplot", () => ({ default: class { static paths = {}; destroy() {} setSize() {} } }));

let root: HTMLDivElement;
beforeEach(() => {
  root = document.createElement("div");
  document.body.appendChild(root);
});
afterEach(() => {
  render(null, root);
  root.remove();
});

const flush = async () => {
  for (let i = 0; i < 5; i++) await act(async () => { await new Promise((r) => setTimeout(r, 0)); });
};

describe("sharing for annotation", () => {
  it("is off by default and toggles through the API", async () => {
    let share = false;
    const api = {
      mySettings: vi.fn(async () => ({ share_for_annotation: share })),
      patchMySettings: vi.fn(async (b: { share_for_annotation: boolean }) => {
        share = b.share_for_annotation;
        return { share_for_annotation: share };
      }),
    } as unknown as UsageApi;
    await act(async () => render(<SharingSection api={api} />, root));
    await flush();
    const box = root.querySelector<HTMLInputElement>("[data-testid=share-for-annotation] input")!;
    expect(box.checked).toBe(false);
    await act(async () => { box.click(); });
    await flush();
    expect(api.patchMySettings).toHaveBeenCalledWith({ share_for_annotation: true });
    expect(root.querySelector<HTMLInputElement>("[data-testid=share-for-annotation] input")!.checked).toBe(true);
  });

  it("shows an error when the setting cannot be loaded", async () => {
    const api = { mySettings: vi.fn(async () => { throw new Error("down"); }) } as unknown as UsageApi;
    await act(async () => render(<SharingSection api={api} />, root));
    await flush();
    expect(root.querySelector("[role=alert]")?.textContent).toContain("Could not load this setting");
    expect(root.querySelector("[data-testid=share-for-annotation]")).toBeNull();
  });
});
