// Shapes of the public contracts (shared/spec/ws-protocol.md, http-api.md).

export type ResponseStatus = "queued" | "running" | "completed" | "failed" | "cancelled";

export type StepKind =
  | "setup" | "plan" | "recall" | "compute" | "result"
  | "reflect" | "verify" | "backtrack" | "alternative" | "final";

export interface Step {
  id: string;
  parent_id: string | null;
  index: number;
  kind: StepKind | string;
  start: number;
  end: number | null;
  title: string;
  status: "open" | "closed" | "abandoned" | "verified" | string;
}

export interface Usage {
  prompt_tokens: number;
  completion_tokens: number;
  reasoning_tokens: number;
}

export interface Timings {
  queued_ms: number | null;
  ttft_ms: number | null;
  thinking_ms: number | null;
  total_ms: number | null;
}

export interface ApiErrorBody {
  code: string;
  message: string;
}

/** GET /api/responses/{id} */
export interface ResponseSnapshot {
  id: string;
  status: ResponseStatus;
  model: string | null;
  reasoning: string;
  content: string;
  finish_reason: string | null;
  usage: Usage | null;
  timings: Timings | null;
  error: ApiErrorBody | null;
  last_seq: number;
  steps: Step[];
  created_at?: string;
  started_at?: string | null;
}

/** The `response` summary inside a conversation message. */
export interface ResponseSummary {
  id: string;
  status: ResponseStatus;
  model: string | null;
  finish_reason: string | null;
  usage: Usage | null;
  timings: Timings | null;
  error: ApiErrorBody | null;
  last_seq: number;
  created_at?: string;
  /** When the engine accepted the request (drives the thinking timer after a reload). */
  started_at?: string | null;
}

export interface Message {
  id: string;
  parent_id: string | null;
  role: "user" | "assistant";
  content: string;
  created_at: string;
  response: ResponseSummary | null;
}

export interface ConversationDetail {
  id: string;
  title: string;
  model: string | null;
  created_at: string;
  updated_at: string;
  messages: Message[];
}

export interface ConversationItem {
  id: string;
  title: string;
  updated_at: string;
  model: string | null;
}

export interface ConversationPage {
  items: ConversationItem[];
  count: number;
}

export interface ModelInfo {
  slug: string;
  name: string;
  description: string;
  context_length: number;
  healthy: boolean;
}

export interface Boot {
  user: { username: string; is_staff: boolean; roles: string[] };
  models: ModelInfo[];
  default_model: string | null;
  max_prompt_chars: number;
  ws_path: string;
  api_base: string;
  logout_url: string;
  conversation_id: string | null;
}

// ---- WebSocket response events -------------------------------------------

interface EventBase {
  response_id: string;
  seq: number;
}

export type ResponseEvent =
  | (EventBase & { type: "response.started"; model: string; started_at: string })
  | (EventBase & { type: "reasoning.delta"; text: string })
  | (EventBase & { type: "content.delta"; text: string })
  | (EventBase & { type: "step.added"; step: Step })
  | (EventBase & { type: "step.updated"; step: Step })
  | (EventBase & { type: "response.completed"; finish_reason: string; usage: Usage | null; timings: Timings | null })
  | (EventBase & { type: "response.failed"; error: ApiErrorBody })
  | (EventBase & { type: "response.cancelled" });

export const RESPONSE_EVENT_TYPES: ReadonlySet<string> = new Set([
  "response.started",
  "reasoning.delta",
  "content.delta",
  "step.added",
  "step.updated",
  "response.completed",
  "response.failed",
  "response.cancelled",
]);

export interface ResponseCreatedFrame {
  type: "response.created";
  req?: string;
  conversation_id: string;
  user_message_id: string;
  response_id: string;
  model: string;
}

export interface ErrorFrame {
  type: "error";
  req?: string;
  code: string;
  message: string;
  retry_after_s?: number | null;
}
