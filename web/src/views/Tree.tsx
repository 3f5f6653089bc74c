import { useState } from "preact/hooks";

import { href, type Route } from "../route";
import { useClusterState } from "../store";
import { nodeMemoryMB } from "../summary";
import { hostGroups } from "../tree";
import { MiniBar, StateIcon } from "./bits";

export function Tree({ route }: { route: Route }) {
  const { nodes, vms } = useClusterState();
  const [query, setQuery] = useState("");
  const groups = hostGroups(nodes ?? [], vms ?? [], query);

  return (
    <nav class="tree" aria-label="hosts and VMs">
      <input
        type="search"
        class="tree-filter"
        placeholder="Filter: name, host, state"
        aria-label="filter the tree"
        value={query}
        onInput={(e) => setQuery((e.target as HTMLInputElement).value)}
      />
      <a class={`tree-root ${route.page === "dashboard" ? "active" : ""}`}
         href={href({ page: "dashboard" })}>Datacenter</a>
      {nodes === null && <p class="muted tree-note">loading…</p>}
      {nodes !== null && groups.length === 0 && <p class="muted tree-note">nothing matches</p>}
      <ul class="tree-hosts">
        {groups.map((g) => {
          const usage = g.node?.usage ?? null;
          const mem = g.node && usage ? usage.memory_used_mb / (nodeMemoryMB(g.node) || 1) : null;
          const active = route.page === "node" && route.name === g.name;
          return (
            <li key={g.name} data-testid="tree-host" data-name={g.name}>
              <a class={`tree-row host ${active ? "active" : ""}`}
                 href={href({ page: "node", name: g.name })}>
                <StateIcon state={g.state} />
                <span class="tree-name">{g.name}</span>
                <span class="tree-bars">
                  <MiniBar value={usage ? usage.cpu : null} label="CPU" />
                  <MiniBar value={mem} label="memory" />
                </span>
              </a>
              <ul class="tree-vms">
                {g.vms.map((vm) => (
                  <li key={vm.vmid} data-testid="tree-vm" data-vmid={vm.vmid}>
                    <a class={`tree-row vm ${route.page === "vm" && route.vmid === vm.vmid
                                              ? "active" : ""}`}
                       href={href({ page: "vm", vmid: vm.vmid })}>
                      <StateIcon state={vm.status} />
                      <span class="tree-id">{vm.vmid}</span>
                      <span class="tree-name">{vm.name}</span>
                    </a>
                  </li>
                ))}
              </ul>
            </li>
          );
        })}
      </ul>
    </nav>
  );
}
