// Contracts of the campaigns admin API (webapp/annotation/admin_api.py) and the
// exports API, with a thin client over the shared Api.
import type { Api } from "../../lib/api";
import { ApiError } from "../../lib/api";
import { getCookie } from "../../lib/boot";

export type TaskType = "step_labels" | "rubric" | "pairwise";
export type CampaignStatus = "draft" | "active" | "closed";
export const TASK_TYPES: readonly TaskType[] = ["step_labels", "rubric", "pairwise"];
export const TASK_LABELS: Record<TaskType, string> = {
  step_labels: "Step labels",
  rubric: "Trace rubric",
  pairwise: "Pairwise preference",
};
export const RUBRIC_DIMENSIONS = ["correctness", "soundness", "efficiency", "clarity"] as const;
export type RubricDimension = (typeof RUBRIC_DIMENSIONS)[number];
export const PAIRWISE_PARTS = ["reasoning", "answer"] as const;
export const CHOICES = ["a", "b", "tie", "both_bad"] as const;
export type Choice = (typeof CHOICES)[number];
export const FINISH_REASONS = ["solution", "found_error", "bad_problem", "give_up"] as const;

export interface CampaignSummary {
  id: string;
  name: string;
  status: CampaignStatus;
  task_types: TaskType[];
  overlap: number;
  items: number;
  labels: number;
  progress: number;
  created_at: string;
}

export interface Guideline {
  version: number;
  text: string;
  created_at: string;
  created_by: string;
}

export interface AnnotatorStats {
  annotator_id: number;
  username: string;
  labels: number;
  gold_labels: number;
  skipped: number;
  gold_accuracy: number | null;
  median_time_ms: number | null;
  raw_agreement: number | null;
  first_error_agreement: number | null;
}

export interface StepAgreement {
  alpha: number | null;
  raw: number | null;
  first_error_exact: number | null;
  first_error_within_1: number | null;
  units: number;
  items: number;
}

export interface SimpleAgreement {
  alpha: number | null;
  raw: number | null;
  items?: number;
}

export interface Agreement {
  step_labels: StepAgreement;
  rubric: Partial<Record<RubricDimension, SimpleAgreement>>;
  pairwise: Partial<Record<"reasoning" | "answer", SimpleAgreement>>;
  per_annotator: { annotator_id: number; username: string; labels: number; raw_agreement: number | null; first_error_agreement: number | null }[];
}

export interface Batch {
  id: number;
  status: string;
  model: string;
  samples_per_prompt: number;
  total: number;
  done: number;
  failed: number;
  created_at: string;
  finished_at: string | null;
}

export interface TypeCounts {
  items: number;
  gold: number;
  labels: number;
  needed: number;
}

export interface CampaignDetail extends CampaignSummary {
  description: string;
  gold_rate: number;
  lease_seconds: number;
  created_by: string;
  counts: Record<string, number>;
  items_by_type: Partial<Record<TaskType, TypeCounts>>;
  guidelines: Guideline[];
  annotators: AnnotatorStats[];
  agreement: Agreement;
  batches: Batch[];
}

export interface NewCampaign {
  name: string;
  description: string;
  task_types: TaskType[];
  overlap: number;
  gold_rate: number;
  lease_seconds: number;
  guidelines: string;
}

export interface UnitSpan {
  start: number;
  end: number;
  answer: boolean;
  kind?: string;
  title?: string;
}

export interface StepRating {
  rating: -1 | 0 | 1 | null;
  tags?: string[];
  note?: string;
}

export interface StepLabelsValue {
  units: UnitSpan[];
  segmentation_edited?: boolean;
  steps: StepRating[];
  finish_reason: (typeof FINISH_REASONS)[number];
  rationale?: string;
}

export type RubricValue = Record<RubricDimension, number> & { rationale?: string };
export interface PairwiseValue {
  reasoning: Choice;
  answer: Choice;
  rationale?: string;
}
export type LabelValue = StepLabelsValue | RubricValue | PairwiseValue;

export interface ItemLabel {
  annotator: string;
  value: LabelValue;
  summary: string;
  created_at: string;
}

export interface Disagreement {
  item_id: number;
  task_type: TaskType;
  adjudicated: boolean;
  adjudication: LabelValue | null;
  labels: ItemLabel[];
}

export interface TraceView {
  id: number;
  model: string;
  reasoning: string;
  content: string;
  units: UnitSpan[];
  auto_correct: boolean | null;
  format_ok: boolean | null;
  extracted_answer: string;
}

export interface ItemDetail {
  id: number;
  campaign: string;
  task_type: TaskType;
  prompt: string;
  reference_answer: string;
  traces: TraceView[];
  is_gold: boolean;
  gold_value: LabelValue | null;
  labels: ItemLabel[];
  adjudication: { value: LabelValue; note: string; adjudicator: string; updated_at: string } | null;
}

// A Celery worker writes a snapshot after the request that froze it: pending (queued),
// writing (claimed), then ready (records, size and sha256 filled in) or failed (error).
export type SnapshotStatus = "pending" | "writing" | "ready" | "failed";

export interface Snapshot {
  id: string;
  kind: string;
  version: number;
  options: Record<string, unknown>;
  records: number;
  size_bytes: number;
  sha256: string;
  status: SnapshotStatus;
  error: string;
  created_at: string;
  created_by: string;
  finished_at: string | null;
  download_url: string;
}

export interface BatchProgress {
  id: number;
  campaign_id: string;
  status: string;
  total: number;
  done: number;
  failed: number;
  running: number;
  queued: number;
  cancelled: number;
  percent: number;
  eta_s: number | null;
  created_at: string;
  finished_at: string | null;
}

export interface ConversationFilter {
  model: string | null;
  since: string | null;
  until: string | null;
  tags: string[];
  limit: number;
}

export interface ModelOption {
  slug: string;
  name: string;
}

export class CampaignsApi {
  constructor(private api: Api, private base = "/api") {}

  list(): Promise<CampaignSummary[]> {
    return this.api.request("GET", "/admin/campaigns");
  }
  create(body: NewCampaign): Promise<CampaignDetail> {
    return this.api.request("POST", "/admin/campaigns", body);
  }
  get(id: string): Promise<CampaignDetail> {
    return this.api.request("GET", `/admin/campaigns/${encodeURIComponent(id)}`);
  }
  setStatus(id: string, status: CampaignStatus): Promise<CampaignDetail> {
    return this.api.request("PATCH", `/admin/campaigns/${encodeURIComponent(id)}`, { status });
  }
  publishGuidelines(id: string, text: string): Promise<Guideline> {
    return this.api.request("POST", `/admin/campaigns/${encodeURIComponent(id)}/guidelines`, { text });
  }
  disagreements(id: string): Promise<Disagreement[]> {
    return this.api.request("GET", `/admin/campaigns/${encodeURIComponent(id)}/disagreements`);
  }
  item(id: number): Promise<ItemDetail> {
    return this.api.request("GET", `/admin/items/${id}`);
  }
  adjudicate(id: number, value: LabelValue, note: string): Promise<ItemDetail> {
    return this.api.request("PUT", `/admin/items/${id}/adjudication`, { value, note });
  }
  clearAdjudication(id: number): Promise<null> {
    return this.api.request("DELETE", `/admin/items/${id}/adjudication`);
  }
  setGold(id: number, value: LabelValue): Promise<ItemDetail> {
    return this.api.request("PUT", `/admin/items/${id}/gold`, { value });
  }
  clearGold(id: number): Promise<null> {
    return this.api.request("DELETE", `/admin/items/${id}/gold`);
  }
  models(): Promise<ModelOption[]> {
    return this.api.request("GET", "/models");
  }
  batch(id: number): Promise<BatchProgress> {
    return this.api.request("GET", `/admin/batches/${id}`);
  }
  cancelBatch(id: number): Promise<BatchProgress> {
    return this.api.request("POST", `/admin/batches/${id}/cancel`);
  }
  addConversations(campaign: string, filter: ConversationFilter): Promise<{ added: number; items: number }> {
    return this.api.request("POST", `/admin/campaigns/${encodeURIComponent(campaign)}/conversations`, filter);
  }
  /** Multipart upload (the shared client speaks JSON only). */
  async startBatch(campaign: string, form: FormData): Promise<BatchProgress> {
    let res: Response;
    try {
      res = await fetch(`${this.base}/admin/campaigns/${encodeURIComponent(campaign)}/batches`, {
        method: "POST",
        body: form,
        credentials: "same-origin",
        headers: { Accept: "application/json", "X-CSRFToken": getCookie("csrftoken") },
      });
    } catch {
      throw new ApiError(0, "network", "Could not reach the server.");
    }
    const data = (await res.json().catch(() => null)) as { error?: { code?: string; message?: string } } | BatchProgress | null;
    if (!res.ok) {
      const err = (data as { error?: { code?: string; message?: string } } | null)?.error;
      throw new ApiError(res.status, err?.code ?? "internal", err?.message ?? `Upload failed (${res.status}).`);
    }
    return data as BatchProgress;
  }
  snapshots(campaign: string): Promise<Snapshot[]> {
    return this.api.request("GET", `/exports/snapshots?campaign=${encodeURIComponent(campaign)}`);
  }
  freeze(kind: string, campaign: string, options: Record<string, string>): Promise<Snapshot> {
    return this.api.request("POST", `/exports/${encodeURIComponent(kind)}/snapshots`, { campaign, options });
  }
}
