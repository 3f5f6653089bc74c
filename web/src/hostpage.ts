// The host page's decisions and data shaping, pure (tested by web/tests/hostpage.test.ts):
// the host's status lines, which VMs a bulk action concerns, the bulk request's checks, a
// bulk job's per-VM progress and a maintenance status's per-VM lines. Type imports only, so
// Node runs the tests on this file as it is.

import type { HAReport, Node, Task, VM } from "./types";

// --- the host's status ---------------------------------------------------------------------

export function formatDuration(seconds: number): string {
  const s = Math.max(0, Math.floor(seconds));
  const d = Math.floor(s / 86400);
  const h = Math.floor((s % 86400) / 3600);
  const m = Math.floor((s % 3600) / 60);
  if (d > 0) return `${d} d ${h} h`;
  if (h > 0) return `${h} h ${m} min`;
  if (m > 0) return `${m} min`;
  return `${s} s`;
}

function gib(mb: number): string {
  return mb >= 1024 ? `${(mb / 1024).toFixed(1)} GiB` : `${mb} MiB`;
}

export interface StatusLine {
  id: string;
  label: string;
  value: string;
  share?: number | null; // 0..1 for a bar, where it means something
}

/** What the host's record says, as the status card shows it; `now` in unix seconds. What the
 * agents do not report (the host's own boot time; disk space, from agents older than the
 * sample's disk figures) is said to be missing. */
export function statusLines(node: Node, now: number): StatusLine[] {
  const u = node.online ? node.usage : null;
  const versions = Object.entries(node.versions).map(([k, v]) => `${k} ${v}`).join(" · ");
  const lines: StatusLine[] = [
    {
      id: "cpu", label: "CPU",
      value: `${node.cpus ?? "?"} cpus` + (u ? ` · ${(u.cpu * 100).toFixed(0)} % busy` : ""),
      share: u ? u.cpu : null,
    },
    {
      id: "load", label: "Load",
      value: u ? `${u.load1.toFixed(2)} (1 min)` + (node.cpus ? ` on ${node.cpus} cpus` : "")
        : "no sample",
      share: u && node.cpus ? Math.min(1, u.load1 / node.cpus) : null,
    },
    {
      id: "memory", label: "Memory",
      value: u ? `${gib(u.memory_used_mb)} of ${gib(u.memory_total_mb)} used`
        : node.memory_mb ? `${gib(node.memory_mb)}, no sample` : "no sample",
      share: u && u.memory_total_mb > 0 ? u.memory_used_mb / u.memory_total_mb : null,
    },
    typeof u?.disk_total_mb === "number" && typeof u.disk_used_mb === "number"
      ? {
        id: "disk", label: "Disk",
        value: `${gib(u.disk_used_mb)} of ${gib(u.disk_total_mb)} used (data directory)`,
        share: u.disk_total_mb > 0 ? u.disk_used_mb / u.disk_total_mb : null,
      }
      : { id: "disk", label: "Disk", value: "not reported by the host's agent (see Disk I/O)" },
    {
      id: "uptime", label: "Agent up",
      value: node.started_at !== null && node.online
        ? `${formatDuration(now - node.started_at)} (since ${
          new Date(node.started_at * 1000).toLocaleString()})`
        : node.online ? "unknown" : "offline",
    },
    { id: "accel", label: "Accelerator", value: node.accel ?? "unknown" },
    { id: "versions", label: "Versions", value: versions || "not reported" },
    { id: "address", label: "Address", value: node.address ?? "unknown" },
    { id: "vms", label: "VMs", value: `${node.vms_running} running of ${node.vms}` },
  ];
  if (u) {
    const age = now - u.sampled_at;
    if (age > 30) lines.push({ id: "sample", label: "Sampled", value: `${formatDuration(age)} ago` });
  }
  return lines;
}

// --- the VMs of a bulk action ----------------------------------------------------------------

export type BulkAction = "start" | "shutdown" | "suspend" | "migrate";
export const BULK_ACTIONS: readonly BulkAction[] = ["start", "shutdown", "suspend", "migrate"];
export const BULK_VERB: Record<BulkAction, string> = {
  start: "Start", shutdown: "Shut down", suspend: "Suspend", migrate: "Migrate",
};

export interface VMRow {
  vmid: number;
  name: string;
  status: string; // what the agent saw
  state: VM["state"]; // what was asked
  ha: string; // the VM's HA status, "none" when it is not managed by HA
  memory_mb: number;
  cores: number;
}

export function vmRows(vms: VM[], ha: HAReport | null, node: string): VMRow[] {
  const haBy = new Map((ha?.vms ?? []).map((h) => [h.vmid, h.status]));
  return vms.filter((v) => v.node === node).sort((a, b) => a.vmid - b.vmid).map((v) => ({
    vmid: v.vmid, name: v.name, status: v.status, state: v.state,
    ha: haBy.get(v.vmid) ?? "none", memory_mb: v.memory_mb, cores: v.cores,
  }));
}

/** Why the manager would skip this VM for the action (its own rule, manager/bulk.py's
 * nothing_to_do, on the requested state), or null when the action applies. */
export function skipReason(action: BulkAction, vm: VMRow): string | null {
  switch (action) {
    case "start":
      return vm.state === "stopped" ? null : `already ${vm.state}`;
    case "shutdown":
      return vm.state === "stopped" ? "not running" : null;
    case "suspend":
      return vm.state === "running" ? null : vm.state === "paused" ? "already paused" : "not running";
    case "migrate":
      return null;
  }
}

export interface VMFilter {
  text: string; // words each found in the id or the name
  status: string; // "" for any
  ha: string; // "" for any
}

export function filterVMs(rows: VMRow[], f: VMFilter): VMRow[] {
  const words = f.text.toLowerCase().split(/\s+/).filter(Boolean);
  return rows.filter((r) =>
    (f.status === "" || r.status === f.status) && (f.ha === "" || r.ha === f.ha)
    && words.every((w) => String(r.vmid).includes(w) || r.name.toLowerCase().includes(w)));
}

export function distinct(values: string[]): string[] {
  return [...new Set(values)].sort();
}

// --- the bulk request ----------------------------------------------------------------------

export interface BulkForm {
  action: BulkAction;
  target: string;
  parallel: string; // as typed
  withLocalDisks: boolean;
  forceAfter: string; // shutdown: seconds before a hard stop, as typed
  selected: number[];
}

export interface BulkBody {
  action: BulkAction;
  parallel: number;
  vms: number[];
  target?: string;
  with_local_disks?: boolean;
  timeout?: number;
}

export interface FieldError { field: string; message: string }

/** The body of POST /nodes/{node}/bulk, or the first field that is wrong (the API checks
 * again; this only spares a round trip and names the field the same way). */
export function bulkBody(f: BulkForm, node: string): BulkBody | FieldError {
  const parallel = Number(f.parallel);
  if (!Number.isInteger(parallel) || parallel < 1 || parallel > 64) {
    return { field: "parallel", message: "parallel jobs: a whole number from 1 to 64" };
  }
  if (f.selected.length === 0) return { field: "vms", message: "select at least one VM" };
  const body: BulkBody = { action: f.action, parallel, vms: [...f.selected].sort((a, b) => a - b) };
  if (f.action === "migrate") {
    if (!f.target) return { field: "target", message: "migrate needs a target host" };
    if (f.target === node) return { field: "target", message: `target must be another host than ${node}` };
    body.target = f.target;
    body.with_local_disks = f.withLocalDisks;
  }
  if (f.action === "shutdown") {
    const t = Number(f.forceAfter);
    if (!Number.isFinite(t) || t <= 0 || t > 86400) {
      return { field: "timeout", message: "force stop after: seconds, more than 0 and at most 86400" };
    }
    body.timeout = t;
  }
  return body;
}

/** Hosts a bulk migration may go to, and why the others may not. */
export function targets(nodes: Node[], node: string): { name: string; refusal: string | null }[] {
  return nodes.filter((n) => n.name !== node).map((n) => ({
    name: n.name,
    refusal: !n.online ? "offline" : n.maintenance ? "in maintenance" : null,
  }));
}

// --- a running bulk job ----------------------------------------------------------------------

/** A task as GET /tasks answers it, with the parts the console's detail views read. */
export interface TaskRecord extends Task {
  parent?: string | null;
  params?: Record<string, unknown>;
  result?: Record<string, unknown>;
  log?: string[];
}

export type Phase =
  | "waiting" | "queued" | "running" | "ok" | "failed" | "skipped" | "cancelled";

export interface JobRow {
  vmid: number;
  phase: Phase;
  progress: number; // 0..1
  detail: string;
  cancellable: boolean; // not begun: a cancel stops it
}

function record(v: unknown): Record<string, string> {
  return typeof v === "object" && v !== null ? (v as Record<string, string>) : {};
}

/** One line per VM of a bulk job, from its parent task and its children (GET /tasks?parent=). */
export function jobRows(parent: TaskRecord, children: TaskRecord[]): JobRow[] {
  const result = parent.result ?? {};
  const plan = Array.isArray(result.plan) ? (result.plan as number[]) : null;
  const wanted = Array.isArray(parent.params?.vms) ? (parent.params.vms as number[]) : [];
  const skipped = record(result.skipped);
  const failed = record(result.failed);
  const cancelled = record(result.cancelled);
  const byVM = new Map(children.filter((c) => c.vmid !== null).map((c) => [c.vmid!, c]));
  const unfinished = parent.state === "queued" || parent.state === "running";
  const ids = plan ?? wanted;
  const extra = Object.keys(skipped).map(Number).filter((v) => !ids.includes(v));
  return [...ids, ...extra].map((vmid): JobRow => {
    const child = byVM.get(vmid);
    const key = String(vmid);
    if (key in skipped) return { vmid, phase: "skipped", progress: 1, detail: skipped[key]!, cancellable: false };
    if (child?.result?.cancelled === true || key in cancelled) {
      return { vmid, phase: "cancelled", progress: 1,
               detail: child?.error ?? cancelled[key] ?? "cancelled", cancellable: false };
    }
    if (child) {
      switch (child.state) {
        case "ok":
          return { vmid, phase: "ok", progress: 1, detail: child.kind, cancellable: false };
        case "error":
          return { vmid, phase: "failed", progress: 1, detail: child.error ?? "failed", cancellable: false };
        case "running":
          return { vmid, phase: "running", progress: child.progress,
                   detail: child.log?.at(-1) ?? child.kind, cancellable: false };
        default:
          return { vmid, phase: "queued", progress: 0, detail: `${child.kind} queued`,
                   cancellable: unfinished };
      }
    }
    if (key in failed) return { vmid, phase: "failed", progress: 1, detail: failed[key]!, cancellable: false };
    return { vmid, phase: "waiting", progress: 0,
             detail: plan ? "waiting for a slot" : "waiting for the manager",
             cancellable: unfinished };
  });
}

export function jobTitle(t: TaskRecord): string {
  const action = typeof t.params?.action === "string" ? t.params.action : "bulk";
  const target = typeof t.params?.target === "string" ? ` → ${t.params.target}` : "";
  return `${action} on ${t.node}${target}`;
}

// --- maintenance ---------------------------------------------------------------------------

export interface MaintenanceStatus {
  node: string;
  state: "off" | "evacuating" | "in-maintenance" | "returning";
  enabled: boolean;
  no_return: boolean;
  parallel: number;
  to_move: number[];
  moving: number[];
  away: number[];
  staying: number[];
  stopped: number[];
  stuck: Record<string, string>;
}

export interface MaintenanceRow { vmid: number; phase: string; reason: string }

/** Every VM the status names, with what happens to it; stuck ones carry the reason. */
export function maintenanceRows(s: MaintenanceStatus): MaintenanceRow[] {
  const back = !s.enabled; // disabled: the lists are of VMs on their way home
  const rows: MaintenanceRow[] = [
    ...s.moving.map((vmid) => ({ vmid, phase: back ? "returning" : "moving away", reason: "" })),
    ...s.to_move.map((vmid) => ({
      vmid, phase: back ? "waiting to return" : "waiting to move",
      reason: "waiting for a migration slot or for another task of the VM" })),
    ...Object.entries(s.stuck).map(([vmid, reason]) => ({
      vmid: Number(vmid), phase: back ? "cannot return" : "cannot move", reason })),
    ...s.away.map((vmid) => ({ vmid, phase: "moved away", reason: "" })),
    ...s.staying.map((vmid) => ({ vmid, phase: "stays", reason: "its maintenance setting is stay" })),
    ...s.stopped.map((vmid) => ({ vmid, phase: "stopped here", reason: "its maintenance setting is stop" })),
  ];
  return rows.sort((a, b) => a.vmid - b.vmid);
}

export interface Progress { done: number; total: number; label: string }

/** How far the host is: while enabled, the share of its VMs dealt with (moved away, staying,
 * stopped); while VMs return, how many are still out. Null when nothing is under way. */
export function maintenanceProgress(s: MaintenanceStatus): Progress | null {
  const stuck = Object.keys(s.stuck).length;
  if (s.enabled) {
    const done = s.away.length + s.staying.length + s.stopped.length;
    const total = done + s.to_move.length + s.moving.length + stuck;
    if (total === 0) return { done: 0, total: 0, label: "no VM to move: the host is empty" };
    return { done, total, label: `${s.away.length} of ${total} VM(s) moved away`
      + (stuck ? `, ${stuck} cannot move` : "") };
  }
  const out = s.to_move.length + s.moving.length + stuck;
  if (out === 0) return null;
  return { done: 0, total: out, label: `${out} VM(s) still to come back`
    + (stuck ? `, ${stuck} cannot return` : "") };
}
