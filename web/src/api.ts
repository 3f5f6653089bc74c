// Calls to the REST API under /api/v1 with the session's bearer token. Every failure becomes an
// ApiError carrying the API's own reason ({"error": {"code", "message", "field"}}).

export const API = "/api/v1";

export class ApiError extends Error {
  constructor(
    readonly status: number, // 0: no answer at all
    readonly code: string,
    message: string,
    readonly field: string | null = null,
  ) {
    super(message);
  }

  /** "code: message (field)", as shown to the operator. */
  describe(): string {
    return `${this.code}: ${this.message}${this.field ? ` (field ${this.field})` : ""}`;
  }
}

interface ErrorBody {
  error?: { code?: unknown; message?: unknown; field?: unknown };
}

export async function errorFrom(resp: Response): Promise<ApiError> {
  const text = await resp.text();
  try {
    const e = (JSON.parse(text) as ErrorBody).error;
    if (e && typeof e.code === "string" && typeof e.message === "string") {
      return new ApiError(resp.status, e.code, e.message,
                          typeof e.field === "string" ? e.field : null);
    }
  } catch {
    // not the API's error shape (a proxy's page, say): fall through
  }
  const detail = text.trim().slice(0, 200) || resp.statusText;
  return new ApiError(resp.status, `http_${resp.status}`, detail);
}

export async function apiGet<T>(path: string, token: string, signal?: AbortSignal): Promise<T> {
  let resp: Response;
  try {
    resp = await fetch(API + path, {
      headers: { Authorization: `Bearer ${token}`, Accept: "application/json" },
      signal,
    });
  } catch (e) {
    if (e instanceof DOMException && e.name === "AbortError") throw e;
    throw new ApiError(0, "unreachable", `the API did not answer (${String(e)})`);
  }
  if (!resp.ok) throw await errorFrom(resp);
  return (await resp.json()) as T;
}

/** A write (POST, PUT, DELETE) with an optional JSON body; null for an empty answer (204). */
export async function apiSend<T>(method: "POST" | "PUT" | "DELETE", path: string, token: string,
                                 body?: unknown): Promise<T | null> {
  let resp: Response;
  try {
    resp = await fetch(API + path, {
      method,
      headers: {
        Authorization: `Bearer ${token}`, Accept: "application/json",
        ...(body === undefined ? {} : { "Content-Type": "application/json" }),
      },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (e) {
    throw new ApiError(0, "unreachable", `the API did not answer (${String(e)})`);
  }
  if (!resp.ok) throw await errorFrom(resp);
  const text = await resp.text();
  return text ? (JSON.parse(text) as T) : null;
}

export function asApiError(e: unknown): ApiError {
  return e instanceof ApiError ? e : new ApiError(0, "client", String(e));
}
