// The VM page (#/vm/<id>): status, config, host, HA settings and state, the task history, and
// the actions. Live: the VM's item, its HA row and its tasks follow the events stream.
// Destructive actions ask first; every refusal shows the API's reason.

import type { ComponentChildren } from "preact";
import { useEffect, useState } from "preact/hooks";

import { type ApiError, asApiError } from "../api";
import { href } from "../route";
import { useClusterState, useStore } from "../store";
import { formatMB } from "../summary";
import type { HAVMRow, TaskAccepted, VM, VMDetail } from "../types";
import { SerialConsole } from "./SerialConsole";
import { UsageCharts } from "./UsageCharts";
import { ACTIONS, type ActionSpec, activeTask, sensible } from "../vmActions";
import { ApiErrors, StateIcon } from "./bits";
import { ConfirmDialog, ErrorLine, useRequest } from "./Dialog";
import { describeRule, HASettingsForm, useHARules } from "./HAParts";
import { MigrateDialog } from "./MigrateDialog";
import { TaskHistory, useVMTasks } from "./VmTasks";

type Modal =
  | { kind: "action"; spec: ActionSpec }
  | { kind: "delete" }
  | { kind: "migrate" }
  | { kind: "ha-remove" }
  | null;

const DEFAULT_SHUTDOWN_TIMEOUT = 180; // s, the API's default

function time(ts: number | null | undefined): string {
  return ts ? new Date(ts * 1000).toLocaleString() : "—";
}

function uptime(startedAt: number | null): string {
  if (!startedAt) return "";
  const s = Math.max(0, Math.round(Date.now() / 1000 - startedAt));
  const d = Math.floor(s / 86400), h = Math.floor((s % 86400) / 3600), m = Math.floor((s % 3600) / 60);
  return d ? `${d}d ${h}h` : h ? `${h}h ${m}m` : `${m}m ${s % 60}s`;
}

function Field({ name, label, children }: { name: string; label: string; children: ComponentChildren }) {
  return (
    <>
      <dt>{label}</dt>
      <dd data-field={name}>{children}</dd>
    </>
  );
}

/** GET /vms/{vmid} for what the list's item lacks; read again whenever the item changes. */
function useDetail(vmid: number, vm: VM | undefined): {
  detail: VMDetail | null; error: ApiError | null;
} {
  const store = useStore();
  const [detail, setDetail] = useState<VMDetail | null>(null);
  const [error, setError] = useState<ApiError | null>(null);
  useEffect(() => {
    if (!vm) return;
    let alive = true;
    store.get<VMDetail>(`/vms/${vmid}`).then(
      (d) => {
        if (!alive) return;
        setDetail(d);
        setError(null);
      },
      (e) => alive && setError(asApiError(e)),
    );
    return () => {
      alive = false;
    };
  }, [store, vmid, vm]);
  return { detail, error };
}

function StatusCard({ vm, detail, ha }: { vm: VM; detail: VMDetail | null; ha: HAVMRow | null }) {
  const origin = detail?.placement.origin;
  return (
    <section class="card" data-testid="vm-status">
      <h3>Status</h3>
      <dl class="fields">
        <Field name="status" label="status">
          <StateIcon state={vm.status} /> <span data-testid="vm-status-value">{vm.status}</span>
        </Field>
        <Field name="state" label="requested">{vm.state}</Field>
        <Field name="node" label="host">
          <a href={href({ page: "node", name: vm.node })}>{vm.node}</a>
        </Field>
        {origin && <Field name="origin" label="returns to">{origin} (after its maintenance)</Field>}
        <Field name="started_at" label="started">
          {vm.started_at ? `${time(vm.started_at)} (up ${uptime(vm.started_at)})` : "—"}
        </Field>
        <Field name="pid" label="QEMU pid">{vm.pid ?? "—"}</Field>
        <Field name="accel" label="accelerator">{vm.accel ?? "—"}</Field>
        <Field name="ha" label="HA">
          {ha ? <><StateIcon state={ha.status} /> {ha.status}</> : "not managed"}
        </Field>
        {vm.message && <Field name="message" label="message">{vm.message}</Field>}
        {detail?.runtime && (
          <Field name="reported" label="last report">
            {time(detail.runtime.updated_at)} from {detail.runtime.node}
          </Field>
        )}
      </dl>
    </section>
  );
}

function ConfigCard({ vm, detail, error }: {
  vm: VM; detail: VMDetail | null; error: ApiError | null;
}) {
  return (
    <section class="card" data-testid="vm-config">
      <h3>Config</h3>
      <ErrorLine error={error} testid="api-error" />
      <dl class="fields">
        <Field name="memory_mb" label="memory">{formatMB(vm.memory_mb)}</Field>
        <Field name="cores" label="cores">{vm.cores}</Field>
        <Field name="disks" label="disks">
          {vm.disks.length === 0 ? "none" : (
            <ul class="plain">
              {vm.disks.map((d) => <li key={d.volume}><code>{d.volume}</code> {formatMB(d.size_mb)}</li>)}
            </ul>
          )}
        </Field>
        <Field name="image" label="image">{vm.image ?? "—"}</Field>
        <Field name="startup" label="start order">{vm.startup}</Field>
        {detail?.config.maintenance && (
          <Field name="maintenance" label="on host maintenance">{detail.config.maintenance}</Field>
        )}
        {detail?.config.append && (
          <Field name="append" label="kernel append"><code>{detail.config.append}</code></Field>
        )}
        <Field name="description" label="description">{vm.description || "—"}</Field>
      </dl>
    </section>
  );
}

function HACard({ vm, ha, onRemove }: { vm: VM; ha: HAVMRow | null; onRemove: () => void }) {
  const store = useStore();
  const { rules, error } = useHARules();
  const mine = (rules ?? []).filter((r) => r.vms.includes(vm.vmid));
  return (
    <section class="card" data-testid="vm-ha">
      <h3>High availability</h3>
      {ha ? (
        <>
          <dl class="fields">
            <Field name="ha-status" label="HA state"><StateIcon state={ha.status} /> {ha.status}</Field>
            <Field name="ha-requested" label="requested">{ha.requested}</Field>
            <Field name="ha-counts" label="restarts · relocations">
              {ha.restarts}/{ha.max_restart} · {ha.relocates}/{ha.max_relocate}
            </Field>
            {ha.reason && <Field name="ha-reason" label="reason">{ha.reason}</Field>}
          </dl>
          <HASettingsForm
            key={`${ha.requested}-${ha.max_restart}-${ha.max_relocate}`}
            initial={{ state: ha.requested, max_restart: ha.max_restart,
                       max_relocate: ha.max_relocate }}
            submitLabel="Save HA settings"
            onSubmit={(s) => store.send("PUT", `/ha/resources/${vm.vmid}`, s)}
          />
          <button type="button" class="danger-outline" onClick={onRemove}>Remove from HA</button>
        </>
      ) : (
        <>
          <p class="muted">Not managed by HA: nothing restarts it or moves it off a failed host.</p>
          <HASettingsForm
            initial={{ state: "started", max_restart: 1, max_relocate: 1 }}
            submitLabel="Add to HA"
            onSubmit={(s) => store.send("POST", "/ha/resources", { vmid: vm.vmid, ...s })}
          />
        </>
      )}
      <h4>Rules</h4>
      <ErrorLine error={error} testid="api-error" />
      {rules !== null && (mine.length === 0 ? <p class="muted small">No rule names this VM.</p> : (
        <ul class="plain" data-testid="vm-rules">
          {mine.map((r) => (
            <li key={r.name}><strong>{r.name}</strong> <span class="muted">({r.kind})</span>:{" "}
              {describeRule(r)}</li>
          ))}
        </ul>
      ))}
      <p class="small"><a href={href({ page: "ha" })}>All HA resources and rules</a></p>
    </section>
  );
}

function ActionBar({ vm, busyTask, onAsk, onRun, error, accepted, busy }: {
  vm: VM;
  busyTask: string | null;
  onAsk: (m: Modal) => void;
  onRun: (spec: ActionSpec) => void;
  error: ApiError | null;
  accepted: string | null;
  busy: boolean;
}) {
  return (
    <div class="actions" data-testid="vm-actions">
      <div class="action-buttons" role="toolbar" aria-label="VM actions">
        {ACTIONS.map((spec) => (
          <button
            key={spec.action}
            type="button"
            class={spec.confirm ? "danger-outline" : ""}
            disabled={busy || !sensible(spec.action, vm.status)}
            title={sensible(spec.action, vm.status) ? "" : `not while ${vm.status}`}
            onClick={() => (spec.confirm ? onAsk({ kind: "action", spec }) : onRun(spec))}
          >
            {spec.label}
          </button>
        ))}
        <button type="button" onClick={() => onAsk({ kind: "migrate" })}>Migrate…</button>
        <button type="button" class="danger" onClick={() => onAsk({ kind: "delete" })}>
          Delete…
        </button>
      </div>
      {busyTask && <p class="muted small">A task runs on this VM: {busyTask}</p>}
      <ErrorLine error={error} />
      {accepted && <p class="muted small" data-testid="action-accepted">{accepted}</p>}
    </div>
  );
}

export function VMPage({ vmid }: { vmid: number }) {
  const store = useStore();
  const { vms, ha, errors } = useClusterState();
  const vm = vms?.find((v) => v.vmid === vmid);
  const haRow = ha?.vms.find((r) => r.vmid === vmid) ?? null;
  const { detail, error: detailError } = useDetail(vmid, vm);
  const { tasks, error: tasksError } = useVMTasks(vmid);
  const [modal, setModal] = useState<Modal>(null);
  const [accepted, setAccepted] = useState<string | null>(null);
  const [force, setForce] = useState(false);
  const [timeout, setTimeoutS] = useState(String(DEFAULT_SHUTDOWN_TIMEOUT));
  const run = useRequest();
  const running = activeTask(tasks ?? []);

  useEffect(() => { // another VM's page starts clean
    setModal(null);
    setAccepted(null);
    run.clear();
  }, [vmid]);

  const act = async (spec: ActionSpec) => {
    const body = spec.action === "shutdown" ? { timeout: Number(timeout) } : undefined;
    const r = await store.send<TaskAccepted>("POST", `/vms/${vmid}/status/${spec.action}`, body);
    setAccepted(`${spec.label}: task ${r!.task} queued`);
  };

  return (
    <div class="record-page" data-testid="vm-page">
      <h2>
        {vm && <StateIcon state={vm.status} />} VM {vmid}{vm ? ` · ${vm.name}` : ""}
        {vm && <span class="muted small"> {vm.status} on {vm.node}</span>}
      </h2>
      <ApiErrors errors={errors} only={["vms", "ha"]} />
      {vms === null ? <p class="muted">loading…</p> : !vm ? (
        <p class="error" data-testid="vm-missing">
          No VM {vmid} in the API's answer (deleted?). <a href={href({ page: "dashboard" })}>
            Datacenter</a>
        </p>
      ) : (
        <>
          <ActionBar
            vm={vm}
            busyTask={running ? `${running.kind} (${running.state})` : null}
            busy={run.busy}
            error={run.error}
            accepted={accepted}
            onAsk={(m) => { run.clear(); setModal(m); }}
            onRun={(spec) => void run.run(() => act(spec))}
          />
          <div class="cards vm-cards">
            <StatusCard vm={vm} detail={detail} ha={haRow} />
            <ConfigCard vm={vm} detail={detail} error={detailError} />
            <HACard vm={vm} ha={haRow} onRemove={() => setModal({ kind: "ha-remove" })} />
          </div>
          <UsageCharts vmid={vm.vmid} />
          <SerialConsole vmid={vm.vmid} status={vm.status} />
        </>
      )}
      <TaskHistory tasks={tasks} error={tasksError} />

      {vm && modal?.kind === "action" && (
        <ConfirmDialog
          title={`${modal.spec.label} VM ${vm.vmid} · ${vm.name}?`}
          confirmLabel={modal.spec.label}
          onClose={() => setModal(null)}
          onConfirm={() => act(modal.spec)}
        >
          <p>{modal.spec.confirm}</p>
          {modal.spec.action === "shutdown" && (
            <label class="inline">
              Timeout (s) <input type="number" value={timeout} size={6} aria-label="timeout"
                                 onInput={(e) => setTimeoutS((e.target as HTMLInputElement).value)} />
            </label>
          )}
        </ConfirmDialog>
      )}
      {vm && modal?.kind === "delete" && (
        <ConfirmDialog
          title={`Delete VM ${vm.vmid} · ${vm.name}?`}
          confirmLabel="Delete"
          typeToConfirm={vm.name}
          onClose={() => { setModal(null); setForce(false); }}
          onConfirm={async () => {
            const r = await store.send<TaskAccepted>(
              "DELETE", `/vms/${vmid}${force ? "?force=true" : ""}`);
            setAccepted(`Delete: task ${r!.task} queued`);
          }}
        >
          <p>The VM, its config and its disks are removed for good.</p>
          <label class="check">
            <input type="checkbox" checked={force} aria-label="force"
                   onChange={(e) => setForce((e.target as HTMLInputElement).checked)} />
            Stop it first if it runs (force)
          </label>
        </ConfirmDialog>
      )}
      {vm && modal?.kind === "migrate" && (
        <MigrateDialog vm={vm} tasks={tasks ?? []} onClose={() => setModal(null)} />
      )}
      {vm && modal?.kind === "ha-remove" && (
        <ConfirmDialog
          title={`Remove VM ${vm.vmid} from HA?`}
          confirmLabel="Remove from HA"
          onClose={() => setModal(null)}
          onConfirm={() => store.send("DELETE", `/ha/resources/${vmid}`)}
        >
          <p>Nothing will restart it, or recover it when its host fails. Its rules stay.</p>
        </ConfirmDialog>
      )}
    </div>
  );
}
