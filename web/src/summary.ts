// The dashboard's figures, computed from the API's answers alone. Pure: no fetching, no clock.

import type { HAReport, Node, VM } from "./types";

export type HostState = "online" | "maintenance" | "offline";

/** Every host is in exactly one state: offline wins over maintenance. */
export function hostState(n: Node): HostState {
  if (!n.online) return "offline";
  return n.maintenance ? "maintenance" : "online";
}

export interface HostCounts {
  online: number;
  maintenance: number;
  offline: number;
}

export function countHosts(nodes: Node[]): HostCounts {
  const c: HostCounts = { online: 0, maintenance: 0, offline: 0 };
  for (const n of nodes) c[hostState(n)] += 1;
  return c;
}

export interface VMCounts {
  running: number;
  paused: number;
  stopped: number;
  other: number; // starting, shutting down, or unknown (host offline, no report yet)
}

export function countVMs(vms: VM[]): VMCounts {
  const c: VMCounts = { running: 0, paused: 0, stopped: 0, other: 0 };
  for (const vm of vms) {
    if (vm.status === "running" || vm.status === "paused" || vm.status === "stopped") {
      c[vm.status] += 1;
    } else {
      c.other += 1;
    }
  }
  return c;
}

/** HA VMs the manager gave up on (their run state is counted with the VMs too). */
export function haErrors(ha: HAReport): number {
  return ha.vms.filter((r) => r.status === "error").length;
}

/** A VM that holds its memory and cores on its host: its QEMU process exists. */
export function holdsResources(vm: VM): boolean {
  return ["running", "paused", "starting", "shutting-down"].includes(vm.status);
}

export interface Capacity {
  physical: number; // hosts online (maintenance included): what the hardware has
  used: number; // what the hosts report in use
  allocated: number; // what the VMs that hold resources were given
  // What is left for more VMs if the largest host that takes VMs fails: the hosts that take
  // VMs (online, not in maintenance) minus the largest of them, minus what is allocated.
  // Negative: that many would find no room.
  spareIfLargestFails: number;
  largestHost: string | null;
}

function capacity(nodes: Node[], vms: VM[], total: (n: Node) => number,
                  used: (n: Node) => number, given: (vm: VM) => number,
                  holds: (vm: VM) => boolean = holdsResources): Capacity {
  const online = nodes.filter((n) => n.online);
  const placeable = online.filter((n) => !n.maintenance);
  let largest: Node | null = null;
  for (const n of placeable) if (largest === null || total(n) > total(largest)) largest = n;
  const allocated = vms.filter(holds).reduce((s, vm) => s + given(vm), 0);
  const placeableTotal = placeable.reduce((s, n) => s + total(n), 0);
  return {
    physical: online.reduce((s, n) => s + total(n), 0),
    used: online.reduce((s, n) => s + used(n), 0),
    allocated,
    spareIfLargestFails: placeableTotal - (largest ? total(largest) : 0) - allocated,
    largestHost: largest?.name ?? null,
  };
}

export function nodeMemoryMB(n: Node): number {
  return n.memory_mb ?? n.usage?.memory_total_mb ?? 0;
}

/** Cores busy on a host: its CPU fraction times its cores. */
export function nodeCoresUsed(n: Node): number {
  return (n.usage?.cpu ?? 0) * (n.cpus ?? 0);
}

export function cpuCapacity(nodes: Node[], vms: VM[]): Capacity {
  return capacity(nodes, vms, (n) => n.cpus ?? 0, nodeCoresUsed, (vm) => vm.cores);
}

export function memoryCapacity(nodes: Node[], vms: VM[]): Capacity {
  return capacity(nodes, vms, nodeMemoryMB, (n) => n.usage?.memory_used_mb ?? 0,
                  (vm) => vm.memory_mb);
}

/** Storage: the hosts' data file systems (total and used, as their agents report them)
 *  against the disks given to VMs, every VM's whatever its state: a stopped VM's disk still
 *  takes its room. Hosts that do not report count as none. */
export function storageCapacity(nodes: Node[], vms: VM[]): Capacity {
  return capacity(nodes, vms, (n) => n.usage?.disk_total_mb ?? 0,
                  (n) => n.usage?.disk_used_mb ?? 0,
                  (vm) => vm.disks.reduce((s, d) => s + d.size_mb, 0), () => true);
}

/** Online hosts whose agent reports its disk space. */
export function reportsDisk(nodes: Node[]): number {
  return nodes.filter((n) => n.online && typeof n.usage?.disk_total_mb === "number").length;
}

export function formatMB(mb: number): string {
  const sign = mb < 0 ? "-" : "";
  const a = Math.abs(mb);
  if (a >= 1024 * 1024) return `${sign}${(a / 1024 / 1024).toFixed(1)} TiB`;
  return a >= 1024 ? `${sign}${(a / 1024).toFixed(1)} GiB` : `${sign}${Math.round(a)} MiB`;
}

export function percent(part: number, whole: number): number {
  return whole > 0 ? Math.round((100 * part) / whole) : 0;
}
