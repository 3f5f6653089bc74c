import { href } from "../route";
import { type State, useClusterState } from "../store";
import {
  countHosts,
  countVMs,
  cpuCapacity,
  formatMB,
  haErrors,
  hostState,
  memoryCapacity,
  nodeMemoryMB,
  percent,
  reportsDisk,
  storageCapacity,
} from "../summary";
import type { RecentEvent } from "../recent";
import type { Node, Task } from "../types";
import { ApiErrors, MiniBar, StateIcon } from "./bits";
import { Gauge } from "./Gauge";

function Figure({ id, label, value, tone }: {
  id: string; label: string; value: number | string; tone?: string;
}) {
  return (
    <div class={`figure ${tone ?? ""}`}>
      <span class="figure-value" data-testid={id}>{value}</span>
      <span class="figure-label">{label}</span>
    </div>
  );
}

function ClusterCard({ state }: { state: State }) {
  const c = state.cluster;
  const err = state.errors.cluster;
  return (
    <section class="card" data-testid="card-cluster">
      <h3>Cluster</h3>
      {c ? (
        <>
          <div class="figures">
            <Figure id="quorum" label="quorum" value={c.quorum ? "yes" : "NO"}
                    tone={c.quorum ? "ok" : "bad"} />
            <Figure id="voters" label="voters healthy"
                    value={`${c.healthy_voters.length}/${c.voters.length}`}
                    tone={c.healthy_voters.length === c.voters.length ? "ok" : "warn"} />
          </div>
          <p class="muted small">
            {c.cluster?.name ? `${c.cluster.name} · ` : ""}leader {c.leader ?? "none"}
            {c.witnesses.length ? ` · ${c.witnesses.length} witness(es)` : ""}
          </p>
        </>
      ) : err ? (
        <p class="muted small" data-testid="cluster-unavailable">
          Cluster status did not answer: {err.message}
        </p>
      ) : (
        <p class="muted">loading…</p>
      )}
    </section>
  );
}

function HostsCard({ nodes }: { nodes: Node[] }) {
  const c = countHosts(nodes);
  return (
    <section class="card" data-testid="card-hosts">
      <h3>Hosts</h3>
      <div class="figures">
        <Figure id="hosts-online" label="online" value={c.online} tone="ok" />
        <Figure id="hosts-maintenance" label="maintenance" value={c.maintenance}
                tone={c.maintenance ? "warn" : ""} />
        <Figure id="hosts-offline" label="offline" value={c.offline}
                tone={c.offline ? "bad" : ""} />
      </div>
    </section>
  );
}

function VMsCard({ state }: { state: State }) {
  const c = countVMs(state.vms ?? []);
  return (
    <section class="card" data-testid="card-vms">
      <h3>VMs</h3>
      <div class="figures">
        <Figure id="vms-running" label="running" value={c.running} tone="ok" />
        <Figure id="vms-paused" label="paused" value={c.paused} tone={c.paused ? "warn" : ""} />
        <Figure id="vms-stopped" label="stopped" value={c.stopped} />
      </div>
      {c.other > 0 && (
        <p class="muted small" data-testid="vms-other" data-value={c.other}>
          {c.other} starting, stopping or unknown
        </p>
      )}
    </section>
  );
}

function HACard({ state }: { state: State }) {
  const ha = state.ha;
  if (!ha) {
    return (
      <section class="card" data-testid="card-ha">
        <h3>High availability</h3>
        <p class="muted">{state.errors.ha ? "no answer" : "loading…"}</p>
      </section>
    );
  }
  const started = ha.vms.filter((r) => r.status === "started").length;
  const failed = haErrors(ha);
  const notOnline = ha.nodes.filter((n) => n.status !== "online");
  return (
    <section class="card" data-testid="card-ha">
      <h3>High availability</h3>
      <div class="figures">
        <Figure id="ha-vms" label="HA VMs" value={ha.vms.length} />
        <Figure id="ha-started" label="started" value={started} tone="ok" />
        <Figure id="vms-ha-error" label="HA error" value={failed} tone={failed ? "bad" : ""} />
      </div>
      <p class="muted small">
        {notOnline.length === 0
          ? "every host online for HA"
          : notOnline.map((n) => `${n.node}: ${n.status}`).join(" · ")}
      </p>
    </section>
  );
}

function HostsTable({ nodes }: { nodes: Node[] }) {
  const sorted = [...nodes].sort((a, b) => a.name.localeCompare(b.name));
  return (
    <section class="card wide">
      <h3>Hosts</h3>
      <div class="table-wrap">
        <table class="table" data-testid="hosts-table">
          <thead>
            <tr>
              <th>Host</th><th>State</th><th>CPU</th><th>Memory</th><th>Load</th>
              <th>VMs</th><th class="wide-only">Accel</th>
            </tr>
          </thead>
          <tbody>
            {sorted.map((n) => {
              const u = n.usage;
              const total = nodeMemoryMB(n);
              return (
                <tr key={n.name} data-testid="host-row" data-name={n.name}>
                  <td><a href={href({ page: "node", name: n.name })}>{n.name}</a></td>
                  <td><StateIcon state={hostState(n)} /> {hostState(n)}</td>
                  <td>
                    <span class="usage">
                      <MiniBar value={u ? u.cpu : null} label="CPU" />
                      {u ? `${Math.round(u.cpu * 100)}% of ${n.cpus ?? "?"}` : "—"}
                    </span>
                  </td>
                  <td>
                    <span class="usage">
                      <MiniBar value={u && total ? u.memory_used_mb / total : null}
                               label="memory" />
                      {u ? `${formatMB(u.memory_used_mb)} / ${formatMB(total)}` : "—"}
                    </span>
                  </td>
                  <td>{u ? u.load1.toFixed(2) : "—"}</td>
                  <td>{n.vms_running} / {n.vms}</td>
                  <td class="wide-only">{n.accel ?? "—"}</td>
                </tr>
              );
            })}
          </tbody>
        </table>
      </div>
    </section>
  );
}

function taskTarget(t: Task) {
  return t.vmid !== null
    ? <a href={href({ page: "vm", vmid: t.vmid })}>VM {t.vmid}</a>
    : <a href={href({ page: "node", name: t.node })}>{t.node}</a>;
}

function RecentTasks({ tasks }: { tasks: Task[] }) {
  return (
    <section class="card wide">
      <h3>Recent tasks</h3>
      {tasks.length === 0 ? <p class="muted">No tasks yet.</p> : (
        <div class="table-wrap">
          <table class="table" data-testid="tasks-table">
            <thead>
              <tr>
                <th>Created</th><th>Task</th><th>Target</th><th class="wide-only">Host</th>
                <th>State</th>
              </tr>
            </thead>
            <tbody>
              {tasks.map((t) => (
                <tr key={t.id} data-testid="task-row" data-id={t.id}>
                  <td>{new Date(t.created_at * 1000).toLocaleTimeString()}</td>
                  <td>{t.kind}</td>
                  <td>{taskTarget(t)}</td>
                  <td class="wide-only">{t.node}</td>
                  <td class="task-state" title={t.error ?? ""}>
                    <StateIcon state={t.state} /> {t.state}
                    {t.state === "running" ? ` ${percent(t.progress, 1)}%` : ""}
                    {t.error ? <span class="error-text"> — {t.error}</span> : null}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
    </section>
  );
}

/** Hosts whose agent does not say its disk space are left out of the storage gauge. */
function storageNote(nodes: Node[]): string | undefined {
  const online = nodes.filter((n) => n.online).length;
  const reporting = reportsDisk(nodes);
  if (reporting === online) return undefined;
  return reporting === 0
    ? "No host reports its disk space: allocated only"
    : `${online - reporting} of ${online} online hosts do not report their disk space`;
}

function eventTarget(e: RecentEvent) {
  return "vmid" in e.target
    ? <a href={href({ page: "vm", vmid: e.target.vmid })}>{e.text}</a>
    : <a href={href({ page: "node", name: e.target.node })}>{e.text}</a>;
}

function RecentEvents({ events }: { events: RecentEvent[] }) {
  return (
    <section class="card wide" data-testid="card-events">
      <h3>Recent events</h3>
      {events.length === 0 ? <p class="muted">Nothing has changed since this page opened.</p> : (
        <ul class="events">
          {events.map((e, i) => (
            <li key={`${e.at}-${i}`} data-testid="event-row" class={`event ${e.tone}`}>
              <span class="event-time">{new Date(e.at).toLocaleTimeString()}</span>
              {eventTarget(e)}
            </li>
          ))}
        </ul>
      )}
    </section>
  );
}

export function Dashboard() {
  const state = useClusterState();
  const nodes = state.nodes ?? [];
  const vms = state.vms ?? [];
  const loaded = state.nodes !== null && state.vms !== null;
  return (
    <div class="dashboard">
      <h2>Datacenter</h2>
      {/* The cluster card says itself when its status does not answer. */}
      <ApiErrors errors={state.errors} only={["nodes", "vms", "ha", "tasks"]} />
      <div class="cards">
        <ClusterCard state={state} />
        <HostsCard nodes={nodes} />
        <VMsCard state={state} />
        <HACard state={state} />
      </div>
      {loaded && (
        <div class="cards gauges" data-testid="gauges">
          <Gauge id="cpu" title="CPU (cores)" cap={cpuCapacity(nodes, vms)} unit=" cores"
                 format={(v) => (Number.isInteger(v) ? String(v) : v.toFixed(1))} />
          <Gauge id="memory" title="Memory" cap={memoryCapacity(nodes, vms)} format={formatMB} />
          <Gauge id="storage" title="Storage" cap={storageCapacity(nodes, vms)} format={formatMB}
                 note={storageNote(nodes)} />
        </div>
      )}
      <HostsTable nodes={nodes} />
      <div class="cards halves">
        <RecentTasks tasks={state.tasks ?? []} />
        <RecentEvents events={state.recent} />
      </div>
    </div>
  );
}
