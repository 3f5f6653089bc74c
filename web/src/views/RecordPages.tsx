// The host page: for now the record the API gives, and the VMs of the host. Later work adds
// charts and the host menu here.

import { Fragment } from "preact";

import { href } from "../route";
import { useClusterState } from "../store";
import { hostState } from "../summary";
import { ApiErrors, StateIcon } from "./bits";

function Fields({ record }: { record: object }) {
  return (
    <dl class="fields" data-testid="record">
      {Object.entries(record).map(([k, v]) => (
        <Fragment key={k}>
          <dt>{k}</dt>
          <dd data-field={k}>
            {v === null || v === undefined
              ? "—"
              : typeof v === "object" ? <code>{JSON.stringify(v)}</code> : String(v)}
          </dd>
        </Fragment>
      ))}
    </dl>
  );
}

export function NodePage({ name }: { name: string }) {
  const { nodes, vms, errors } = useClusterState();
  const node = nodes?.find((n) => n.name === name);
  const here = (vms ?? []).filter((vm) => vm.node === name).sort((a, b) => a.vmid - b.vmid);
  return (
    <div class="record-page" data-testid="node-page">
      <h2>
        {node && <StateIcon state={hostState(node)} />} Host {name}
      </h2>
      <ApiErrors errors={errors} only={["nodes", "vms"]} />
      {nodes === null ? <p class="muted">loading…</p> : !node ? (
        <p class="error">No host named {name} in the API's answer.</p>
      ) : (
        <div class="cards">
          <section class="card wide"><h3>Record</h3><Fields record={node} /></section>
          <section class="card">
            <h3>VMs on {name}</h3>
            {here.length === 0 ? <p class="muted">none</p> : (
              <ul class="plain">
                {here.map((vm) => (
                  <li key={vm.vmid}>
                    <StateIcon state={vm.status} />{" "}
                    <a href={href({ page: "vm", vmid: vm.vmid })}>{vm.vmid} {vm.name}</a>
                    <span class="muted"> {vm.status}</span>
                  </li>
                ))}
              </ul>
            )}
          </section>
        </div>
      )}
    </div>
  );
}

// The VM page lives in VmPage.tsx (status, config, HA, tasks, actions, and the mount points
// of the serial console and the usage charts).
