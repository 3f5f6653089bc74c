// The host page (#/node/<name>): status, usage charts, its VMs, its bulk jobs, and the host
// menu (bulk start / shutdown / suspend / migrate, maintenance on and off).

import "../panels.css";

import { Fragment } from "preact";
import { useEffect, useRef, useState } from "preact/hooks";

import { useFollow } from "../follow";
import {
  BULK_ACTIONS, BULK_VERB, type BulkAction, statusLines, type TaskRecord, vmRows,
} from "../hostpage";
import { href } from "../route";
import { useClusterState } from "../store";
import { formatMB, hostState } from "../summary";
import { ApiErrors, MiniBar, StateIcon } from "./bits";
import { BulkDialog } from "./BulkDialog";
import { BulkJob } from "./BulkJob";
import { MaintenanceDialog } from "./MaintenanceDialog";
import { UsageCharts } from "./UsageCharts";

type Open = { kind: "bulk"; action: BulkAction } | { kind: "maintenance" } | null;

function HostMenu({ onPick, maintenance }: { onPick: (o: Open) => void; maintenance: boolean }) {
  const [open, setOpen] = useState(false);
  const box = useRef<HTMLDivElement>(null);
  useEffect(() => {
    if (!open) return;
    const away = (e: MouseEvent) => {
      if (!box.current?.contains(e.target as Element)) setOpen(false);
    };
    document.addEventListener("mousedown", away);
    return () => document.removeEventListener("mousedown", away);
  }, [open]);
  const pick = (o: Open) => {
    setOpen(false);
    onPick(o);
  };
  return (
    <div class="menu" ref={box}>
      <button type="button" aria-haspopup="menu" aria-expanded={open} data-testid="host-menu"
              onClick={() => setOpen(!open)}>
        Host actions ▾
      </button>
      {open && (
        <div class="menu-list" role="menu">
          {BULK_ACTIONS.map((a) => (
            <button type="button" role="menuitem" key={a}
                    onClick={() => pick({ kind: "bulk", action: a })}>
              Bulk {BULK_VERB[a].toLowerCase()}…
            </button>
          ))}
          <hr />
          <button type="button" role="menuitem" onClick={() => pick({ kind: "maintenance" })}>
            Maintenance {maintenance ? "(on)" : "(off)"}…
          </button>
        </div>
      )}
    </div>
  );
}

function BulkJobs({ name }: { name: string }) {
  const jobs = useFollow<TaskRecord[]>(
    `/tasks?node=${encodeURIComponent(name)}&kind=node.bulk&limit=5`);
  const list = jobs.data ?? [];
  if (list.length === 0 && !jobs.error) return null;
  return (
    <section class="card wide" data-testid="bulk-jobs">
      <h3>Bulk jobs</h3>
      {jobs.error && <p class="error">Bulk jobs (GET /tasks): {jobs.error.describe()}</p>}
      {list.map((t) => <BulkJob key={t.id} task={t} />)}
    </section>
  );
}

export function HostPage({ name }: { name: string }) {
  const { nodes, vms, ha, errors } = useClusterState();
  const [open, setOpen] = useState<Open>(null);
  const node = nodes?.find((n) => n.name === name);
  const rows = vmRows(vms ?? [], ha, name);
  const now = Date.now() / 1000;

  return (
    <div class="record-page host-page" data-testid="node-page">
      <div class="page-head">
        <h2>
          {node && <StateIcon state={hostState(node)} />} Host {name}
          {node && <span class="badge" data-testid="host-state">{hostState(node)}</span>}
        </h2>
        <span class="spacer" />
        {node && <HostMenu maintenance={node.maintenance} onPick={setOpen} />}
      </div>
      <ApiErrors errors={errors} only={["nodes", "vms", "ha"]} />
      {nodes === null ? <p class="muted">loading…</p> : !node ? (
        <p class="error">No host named {name} in the API's answer.</p>
      ) : (
        <>
          <div class="cards host-cards">
            <section class="card" data-testid="host-status">
              <h3>Status</h3>
              <dl class="fields">
                {statusLines(node, now).map((l) => (
                  <Fragment key={l.id}>
                    <dt>{l.label}</dt>
                    <dd data-field={l.id}>
                      {l.share !== undefined && l.share !== null && (
                        <><MiniBar value={l.share} label={l.label} />{" "}</>
                      )}
                      {l.value}
                    </dd>
                  </Fragment>
                ))}
              </dl>
            </section>
            <section class="card" data-testid="host-vms">
              <h3>VMs on {name} ({rows.length})</h3>
              {rows.length === 0 ? <p class="muted">none</p> : (
                <div class="table-wrap">
                  <table class="table">
                    <thead>
                      <tr><th>VM</th><th>Status</th><th>HA</th><th>Cores</th><th>Memory</th></tr>
                    </thead>
                    <tbody>
                      {rows.map((vm) => (
                        <tr key={vm.vmid} data-testid="host-vm" data-vmid={vm.vmid}
                            data-status={vm.status}>
                          <td><a href={href({ page: "vm", vmid: vm.vmid })}>{vm.vmid} {vm.name}</a></td>
                          <td><StateIcon state={vm.status} /> {vm.status}</td>
                          <td class={vm.ha === "error" ? "error-text" : ""}>{vm.ha === "none" ? "—" : vm.ha}</td>
                          <td>{vm.cores}</td>
                          <td>{formatMB(vm.memory_mb)}</td>
                        </tr>
                      ))}
                    </tbody>
                  </table>
                </div>
              )}
            </section>
          </div>
          <BulkJobs name={name} />
          <UsageCharts node={name} />
        </>
      )}
      {open?.kind === "bulk" && node && (
        <BulkDialog node={node} initial={open.action} onClose={() => setOpen(null)} />
      )}
      {open?.kind === "maintenance" && node && (
        <MaintenanceDialog node={node} onClose={() => setOpen(null)} />
      )}
    </div>
  );
}
