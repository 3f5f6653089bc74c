// The dashboard's recent events: what the events stream changed since the tab opened, in
// words ("VM 101 web: running → paused", "host n2 offline"). Pure: the store feeds it the
// item before and after each event it applies.

import type { HAVMRow, Node, VM } from "./types";

export const RECENT_EVENTS = 12;

export type Tone = "ok" | "warn" | "bad" | "";

export interface RecentEvent {
  at: number; // ms since the epoch, when the console applied it
  target: { vmid: number } | { node: string };
  text: string;
  tone: Tone;
}

const VM_TONE: Record<string, Tone> = {
  running: "ok", paused: "warn", stopped: "", unknown: "bad",
};

/** As summary.ts's hostState (this module imports no values, so Node's test runner loads
 *  it as it is). */
function hostState(n: Node): "online" | "maintenance" | "offline" {
  if (!n.online) return "offline";
  return n.maintenance ? "maintenance" : "online";
}

function vmLabel(vm: VM): string {
  return `VM ${vm.vmid} ${vm.name}`;
}

/** A VM created, deleted, moved to another host or whose status changed; null otherwise. */
export function vmChange(before: VM | undefined, after: VM | undefined,
                         at: number): RecentEvent | null {
  if (!before && !after) return null;
  const vm = (after ?? before)!;
  const target = { vmid: vm.vmid };
  if (!before) return { at, target, text: `${vmLabel(vm)} created on ${vm.node}`, tone: "" };
  if (!after) return { at, target, text: `${vmLabel(vm)} deleted`, tone: "" };
  if (before.node !== after.node) {
    return { at, target, text: `${vmLabel(vm)} moved ${before.node} → ${after.node}`,
             tone: "ok" };
  }
  if (before.status !== after.status) {
    return { at, target, text: `${vmLabel(vm)}: ${before.status} → ${after.status}`,
             tone: VM_TONE[after.status] ?? "" };
  }
  return null;
}

/** A host that joined, left, went on- or offline, or in or out of maintenance. */
export function nodeChange(before: Node | undefined, after: Node | undefined,
                           at: number): RecentEvent | null {
  if (!before && !after) return null;
  const name = (after ?? before)!.name;
  const target = { node: name };
  if (!before) return { at, target, text: `host ${name} joined`, tone: "ok" };
  if (!after) return { at, target, text: `host ${name} removed`, tone: "" };
  const was = hostState(before);
  const now = hostState(after);
  if (was === now) return null;
  const tone: Tone = now === "offline" ? "bad" : now === "maintenance" ? "warn" : "ok";
  const text = now === "maintenance" ? `host ${name} entered maintenance`
    : was === "maintenance" && now === "online" ? `host ${name} left maintenance`
    : `host ${name} ${now}`;
  return { at, target, text, tone };
}

/** An HA VM whose HA state changed (an error carries the manager's reason). */
export function haChange(before: HAVMRow | undefined, after: HAVMRow | undefined,
                         at: number): RecentEvent | null {
  if (!before || !after || before.status === after.status) return null;
  const why = after.status === "error" && after.reason ? `: ${after.reason}` : "";
  return { at, target: { vmid: after.vmid },
           text: `VM ${after.vmid} HA ${before.status} → ${after.status}${why}`,
           tone: after.status === "error" ? "bad" : "" };
}

/** Newest first, at most limit. */
export function remember(list: RecentEvent[], found: (RecentEvent | null)[],
                         limit: number = RECENT_EVENTS): RecentEvent[] {
  const fresh = found.filter((e): e is RecentEvent => e !== null).reverse();
  return fresh.length ? [...fresh, ...list].slice(0, limit) : list;
}
