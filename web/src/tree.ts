// The resource tree's content: hosts with their VMs, filtered by name, id, host or state.
// Pure.

import { hostState, type HostState } from "./summary";
import type { Node, VM } from "./types";

export interface HostGroup {
  name: string;
  node: Node | null; // null: VMs placed on a host with no record
  state: HostState | "unknown";
  vms: VM[];
}

function matches(haystack: string, terms: string[]): boolean {
  const h = haystack.toLowerCase();
  return terms.every((t) => h.includes(t));
}

/** Every term of the query must appear in the host's or the VM's name, id, host or state. A
 *  host that matches shows all its VMs; otherwise it shows the VMs that match, if any. */
export function hostGroups(nodes: Node[], vms: VM[], query: string): HostGroup[] {
  const terms = query.toLowerCase().split(/\s+/).filter(Boolean);
  const byHost = new Map<string, VM[]>();
  for (const vm of [...vms].sort((a, b) => a.vmid - b.vmid)) {
    byHost.set(vm.node, [...(byHost.get(vm.node) ?? []), vm]);
  }
  const known = new Map(nodes.map((n) => [n.name, n]));
  const names = [...new Set([...known.keys(), ...byHost.keys()])].sort();
  const groups: HostGroup[] = [];
  for (const name of names) {
    const node = known.get(name) ?? null;
    const state = node ? hostState(node) : "unknown";
    const all = byHost.get(name) ?? [];
    if (matches(`${name} ${state}`, terms)) {
      groups.push({ name, node, state, vms: all });
      continue;
    }
    const shown = all.filter((vm) => matches(`${vm.vmid} ${vm.name} ${vm.node} ${vm.status}`,
                                             terms));
    if (shown.length > 0) groups.push({ name, node, state, vms: shown });
  }
  return groups;
}
