import { getCookie } from "./boot";
import type { ConversationDetail, ConversationPage, ResponseSnapshot } from "./types";

export class ApiError extends Error {
  constructor(
    public status: number,
    public code: string,
    message: string,
    public retryAfterS: number | null = null,
  ) {
    super(message);
  }
}

export class Api {
  constructor(private base: string, private onUnauthorized: () => void = () => {}) {}

  private async call<T>(method: string, path: string, body?: unknown): Promise<T> {
    const headers: Record<string, string> = { Accept: "application/json" };
    if (method !== "GET") {
      headers["X-CSRFToken"] = getCookie("csrftoken");
      headers["Content-Type"] = "application/json";
    }
    let res: Response;
    try {
      res = await fetch(this.base + path, {
        method,
        headers,
        credentials: "same-origin",
        body: body === undefined ? undefined : JSON.stringify(body),
      });
    } catch {
      throw new ApiError(0, "network", "Could not reach the server.");
    }
    if (res.status === 401) {
      this.onUnauthorized();
      throw new ApiError(401, "unauthorized", "Your session has ended.");
    }
    let data: unknown = null;
    try {
      data = await res.json();
    } catch {
      data = null;
    }
    if (!res.ok) {
      const err = (data as { error?: { code?: string; message?: string } } | null)?.error;
      const ra = Number(res.headers.get("Retry-After"));
      throw new ApiError(
        res.status,
        err?.code ?? (res.status === 404 ? "not_found" : "internal"),
        err?.message ?? `Request failed (${res.status}).`,
        Number.isFinite(ra) && ra > 0 ? ra : null,
      );
    }
    return data as T;
  }

  /** Any JSON call under the API base (the settings and dashboard pages use this). */
  request<T>(method: "GET" | "POST" | "PUT" | "PATCH" | "DELETE", path: string, body?: unknown): Promise<T> {
    return this.call<T>(method, path, body);
  }

  conversations(page = 1): Promise<ConversationPage> {
    return this.call("GET", `/conversations?page=${page}`);
  }

  conversation(id: string): Promise<ConversationDetail> {
    return this.call("GET", `/conversations/${encodeURIComponent(id)}`);
  }

  response(id: string): Promise<ResponseSnapshot> {
    return this.call("GET", `/responses/${encodeURIComponent(id)}`);
  }
}
