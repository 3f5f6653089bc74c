// The serial console's websocket, without the terminal: a ticket traded for the session's
// token (a browser's WebSocket sends no Authorization header), the URL, and what a close
// means (the codes are the API's: corral/serial/core.py).

import { API, ApiError } from "./api";

// Closes after which the console connects again on its own, if the VM still runs: the QEMU
// it watched went away (the VM moved or restarted), it fell behind, or a hop was unreachable.
const RETRYABLE = new Set([1006, 1011, 1013, 4410, 4502]);
export const RETRY_DELAYS_MS = [500, 1000, 2000, 4000, 8000];

export function shouldRetry(code: number, attempt: number, vmActive: boolean): boolean {
  return vmActive && RETRYABLE.has(code) && attempt < RETRY_DELAYS_MS.length;
}

/** "closed: <reason>" as the operator reads it, from a close event's code and reason. */
export function describeClose(code: number, reason: string): string {
  if (reason) return reason;
  if (code === 1006) return "the connection broke (the API went away, or refused the ticket)";
  return `closed (code ${code})`;
}

async function ticket(vmid: number, token: string): Promise<string> {
  let resp: Response;
  try {
    resp = await fetch(`${API}/vms/${vmid}/console/ticket`, {
      method: "POST",
      headers: { Authorization: `Bearer ${token}`, Accept: "application/json" },
    });
  } catch (e) {
    throw new ApiError(0, "unreachable", `the API did not answer (${String(e)})`);
  }
  if (!resp.ok) {
    let message = resp.statusText;
    try {
      const body = (await resp.json()) as { error?: { message?: string } };
      message = body.error?.message ?? message;
    } catch {
      // not the API's error shape
    }
    throw new ApiError(resp.status, `http_${resp.status}`, message);
  }
  return ((await resp.json()) as { ticket: string }).ticket;
}

/** An open console websocket of VM `vmid` through this page's own API. */
export async function openConsole(vmid: number, token: string): Promise<WebSocket> {
  const t = await ticket(vmid, token);
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const url = `${scheme}://${location.host}${API}/vms/${vmid}/console/ws?ticket=${encodeURIComponent(t)}`;
  const ws = new WebSocket(url);
  ws.binaryType = "arraybuffer";
  return ws;
}
