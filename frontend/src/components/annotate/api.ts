// The workbench's calls to /api/annotate, over the app's Api client (one error shape).
import { Api, ApiError } from "../../lib/api";
import { getCookie } from "../../lib/boot";
import type { CampaignCard, Task } from "./model";

export interface DraftSaved {
  saved_at: string;
  time_spent_ms: number;
  leased_until: string;
  lease_seconds_left: number;
}

export class AnnotateApi {
  constructor(private api: Api, private base = "/api") {}

  campaigns(): Promise<CampaignCard[]> {
    return this.api.request("GET", "/annotate/campaigns");
  }

  async next(campaign: string | null): Promise<Task | null> {
    const r = await this.api.request<{ task: Task | null }>("POST", "/annotate/next", campaign ? { campaign } : {});
    return r.task;
  }

  task(id: string): Promise<Task> {
    return this.api.request("GET", `/annotate/tasks/${encodeURIComponent(id)}`);
  }

  saveDraft(id: string, draft: Record<string, unknown>, timeSpentMs: number): Promise<DraftSaved> {
    return this.api.request("PUT", `/annotate/tasks/${encodeURIComponent(id)}/draft`, {
      draft,
      time_spent_ms: Math.round(timeSpentMs),
    });
  }

  /** Save while the page goes away: `keepalive` lets the request outlive the page. */
  saveDraftOnExit(id: string, draft: Record<string, unknown>, timeSpentMs: number): void {
    try {
      void fetch(`${this.base}/annotate/tasks/${encodeURIComponent(id)}/draft`, {
        method: "PUT",
        keepalive: true,
        credentials: "same-origin",
        headers: { "Content-Type": "application/json", "X-CSRFToken": getCookie("csrftoken") },
        body: JSON.stringify({ draft, time_spent_ms: Math.round(timeSpentMs) }),
      }).catch(() => {});
    } catch {
      /* a keepalive body over 64 KB is refused; the debounced save has the rest */
    }
  }

  submit(id: string, value: Record<string, unknown>, timeSpentMs: number, guidelineVersion: number): Promise<{ id: string; status: string }> {
    return this.api.request("POST", `/annotate/tasks/${encodeURIComponent(id)}/submit`, {
      value,
      time_spent_ms: Math.round(timeSpentMs),
      guideline_version: guidelineVersion,
    });
  }

  skip(id: string, reason: string): Promise<{ id: string; status: string }> {
    return this.api.request("POST", `/annotate/tasks/${encodeURIComponent(id)}/skip`, { reason });
  }
}

/** A toast's title and text for a failed call. */
export function describeError(e: unknown, doing: string): { title: string; message: string } {
  if (e instanceof ApiError) {
    if (e.code === "conflict")
      return { title: "Your lease expired or the task moved on", message: `${e.message} Load the next task.` };
    if (e.code === "invalid_request") return { title: `The label was not accepted`, message: e.message };
    if (e.code === "too_large") return { title: "Too large", message: e.message };
    if (e.code === "not_found") return { title: "This task is gone", message: "It may have been removed. Load the next one." };
    if (e.code === "network") return { title: `Could not ${doing}`, message: "The server did not answer; check the connection." };
    return { title: `Could not ${doing}`, message: e.message };
  }
  return { title: `Could not ${doing}`, message: String(e) };
}

export interface DraftFailure {
  /** The toast to show, or null when the same failure was already shown. */
  toast: { title: string; message: string } | null;
  /** Identifies the failure, to pass back as `last` next time. */
  key: string;
  /** The task is no longer ours (409): stop saving it. */
  lost: boolean;
}

/**
 * What a failed draft save shows. A 409 means the lease ran out and the item has no slot
 * left (others completed it), or the task is already done: this draft was not stored.
 * The heartbeat saves every minute, so a failure repeated as is is not shown again.
 */
export function draftFailure(e: unknown, last: string | null): DraftFailure {
  const lost = e instanceof ApiError && e.code === "conflict";
  const key = e instanceof ApiError ? `${e.code}:${e.message}` : String(e);
  let d = describeError(e, "save the draft");
  if (lost)
    d = {
      title: "Lease expired: this draft was not saved",
      message: `${(e as ApiError).message} Your latest changes on this task could not be saved; load the next task.`,
    };
  return { toast: key === last ? null : d, key, lost };
}
