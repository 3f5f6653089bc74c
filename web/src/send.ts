// Writes to the API (actions), with the session's token; failures are ApiErrors carrying the
// API's reason, as reads' are. Reads of the cluster's state go through the store.

import { API, ApiError, errorFrom } from "./api";
import { savedToken } from "./session";

export async function apiSend<T>(method: "POST" | "PUT" | "DELETE", path: string,
                                 body?: unknown): Promise<T> {
  const token = savedToken();
  if (!token) throw new ApiError(401, "unauthorized", "not signed in");
  let resp: Response;
  try {
    resp = await fetch(API + path, {
      method,
      headers: {
        Authorization: `Bearer ${token}`,
        Accept: "application/json",
        ...(body === undefined ? {} : { "Content-Type": "application/json" }),
      },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (e) {
    throw new ApiError(0, "unreachable", `the API did not answer (${String(e)})`);
  }
  if (!resp.ok) throw await errorFrom(resp);
  return (await resp.json()) as T;
}
