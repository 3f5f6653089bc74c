// What the events stream (GET /api/v1/events, docs/operations.md) does to the lists the console
// holds, and how long to wait before opening it again. Pure: the store (store.ts) feeds it the
// parsed events and keeps the result.

import type { HANodeRow, HAReport, HAVMRow, Node, Task, VM } from "./types";

/** The data of the events the console applies; each names one item, or says it is gone. */
export interface VMEvent { vmid: number; vm?: VM; deleted?: boolean }
export interface NodeEvent { name: string; node?: Node; deleted?: boolean }
export interface TaskEvent { id: string; task?: Task; deleted?: boolean }
export interface HAEvent {
  vms?: HAVMRow[];
  vms_removed?: number[];
  nodes?: HANodeRow[];
  nodes_removed?: string[];
  unprotected?: HAReport["unprotected"];
  skipped?: HAReport["skipped"];
}

export type StreamEvent =
  | { kind: "vm"; data: VMEvent }
  | { kind: "node"; data: NodeEvent }
  | { kind: "task"; data: TaskEvent }
  | { kind: "ha"; data: HAEvent };

export const EVENT_KINDS = ["vm", "node", "task", "ha"] as const;

/** list with item put in place of the one with its key (kept sorted by key), or without it. */
function replaced<T, K extends string | number>(
  list: T[], key: (t: T) => K, id: K, item: T | undefined,
): T[] {
  const rest = list.filter((t) => key(t) !== id);
  if (item === undefined) return rest;
  const at = rest.findIndex((t) => key(t) > id);
  return at < 0 ? [...rest, item] : [...rest.slice(0, at), item, ...rest.slice(at)];
}

export function applyVM(vms: VM[], e: VMEvent): VM[] {
  return replaced(vms, (v) => v.vmid, e.vmid, e.deleted ? undefined : e.vm);
}

export function applyNode(nodes: Node[], e: NodeEvent): Node[] {
  return replaced(nodes, (n) => n.name, e.name, e.deleted ? undefined : e.node);
}

/** Tasks newest first, at most limit of them (the list GET /tasks?limit= gave): a new task
 *  goes in its place by age, an update replaces its task, one deleted leaves. */
export function applyTask(tasks: Task[], e: TaskEvent, limit: number,
                          keep: (t: Task) => boolean = () => true): Task[] {
  const rest = tasks.filter((t) => t.id !== e.id);
  if (e.deleted || !e.task || !keep(e.task)) return rest;
  const task = e.task;
  const known = rest.length < tasks.length;
  const oldest = tasks[tasks.length - 1];
  // A task older than the whole list was cut from it: it stays out unless it was in.
  if (!known && tasks.length >= limit && oldest && task.created_at < oldest.created_at) {
    return rest;
  }
  const at = rest.findIndex((t) => t.created_at < task.created_at);
  const next = at < 0 ? [...rest, task] : [...rest.slice(0, at), task, ...rest.slice(at)];
  return next.slice(0, limit);
}

function merged<T, K>(rows: T[], key: (t: T) => K, changed: T[] | undefined,
                      removed: K[] | undefined): T[] {
  const gone = new Set(removed ?? []);
  const byKey = new Map((changed ?? []).map((r) => [key(r), r]));
  const out = rows.filter((r) => !gone.has(key(r))).map((r) => byKey.get(key(r)) ?? r);
  const had = new Set(rows.map(key));
  for (const r of changed ?? []) if (!had.has(key(r))) out.push(r);
  return out;
}

export function applyHA(report: HAReport, e: HAEvent): HAReport {
  const vms = merged(report.vms, (r) => r.vmid, e.vms, e.vms_removed)
    .sort((a, b) => a.vmid - b.vmid);
  const nodes = merged(report.nodes, (r) => r.node, e.nodes, e.nodes_removed)
    .sort((a, b) => (a.node < b.node ? -1 : a.node > b.node ? 1 : 0));
  return {
    ...report, vms, nodes,
    unprotected: e.unprotected ?? report.unprotected,
    skipped: e.skipped ?? report.skipped,
  };
}

export const BACKOFF_FIRST_MS = 1000;
export const BACKOFF_MAX_MS = 30_000;

/** How long to wait before the attempt-th reconnect (0: the first after a break): doubling
 *  from 1 s up to 30 s, each spread by up to a fifth either way (jitter in -1..1), so the tabs
 *  of an API that restarted do not all come back in the same instant. */
export function backoffMs(attempt: number, jitter: number): number {
  const base = Math.min(BACKOFF_MAX_MS, BACKOFF_FIRST_MS * 2 ** Math.min(attempt, 15));
  return Math.round(base * (1 + 0.2 * Math.max(-1, Math.min(1, jitter))));
}
