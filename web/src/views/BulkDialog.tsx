// The bulk action dialog of a host: start, shut down, suspend or migrate a selection of its
// VMs (POST /nodes/{node}/bulk), then the job's progress, VM by VM, with cancelling.

import { useContext, useState } from "preact/hooks";

import { type ApiError, asApiError } from "../api";
import { useFollow } from "../follow";
import {
  BULK_ACTIONS, BULK_VERB, type BulkAction, bulkBody, distinct, type FieldError, filterVMs,
  skipReason, targets, type TaskRecord, type VMFilter, vmRows,
} from "../hostpage";
import { apiSend } from "../send";
import { StoreContext, useClusterState } from "../store";
import type { Node } from "../types";
import { StateIcon } from "./bits";
import { BulkJob } from "./BulkJob";
import { ActionError, Modal, useConfirm } from "./Modal";

const DESTRUCTIVE: Record<BulkAction, boolean> = {
  start: false, shutdown: true, suspend: true, migrate: true,
};

function applicable(action: BulkAction, rows: ReturnType<typeof vmRows>): number[] {
  return rows.filter((r) => skipReason(action, r) === null).map((r) => r.vmid);
}

export function BulkDialog({ node, initial, onClose }: {
  node: Node; initial: BulkAction; onClose: () => void;
}) {
  const store = useContext(StoreContext);
  const { nodes, vms, ha } = useClusterState();
  const rows = vmRows(vms ?? [], ha, node.name);
  const [action, setAction] = useState<BulkAction>(initial);
  const [target, setTarget] = useState("");
  const [parallel, setParallel] = useState("4");
  const [withLocalDisks, setWithLocalDisks] = useState(false);
  const [forceAfter, setForceAfter] = useState("180");
  const [selected, setSelected] = useState<number[]>(() => applicable(initial, rows));
  const [filter, setFilter] = useState<VMFilter>({ text: "", status: "", ha: "" });
  const [invalid, setInvalid] = useState<FieldError | null>(null);
  const [error, setError] = useState<ApiError | null>(null);
  const [taskId, setTaskId] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const confirm = useConfirm();
  const job = useFollow<TaskRecord>(taskId ? `/tasks/${encodeURIComponent(taskId)}` : null);

  const shown = filterVMs(rows, filter);
  const choices = targets(nodes ?? [], node.name);
  const pickAction = (a: BulkAction) => {
    setAction(a);
    setSelected(applicable(a, rows));
    setInvalid(null);
  };
  const toggle = (vmid: number, on: boolean) =>
    setSelected(on ? [...selected, vmid] : selected.filter((v) => v !== vmid));

  const submit = async (e: Event) => {
    e.preventDefault();
    setError(null);
    const body = bulkBody({ action, target, parallel, withLocalDisks, forceAfter, selected },
                          node.name);
    if ("field" in body) {
      setInvalid(body);
      return;
    }
    setInvalid(null);
    const what = `${BULK_VERB[action]} ${body.vms.length} VM(s) on ${node.name}`
      + (body.target ? ` to ${body.target}` : "");
    if (DESTRUCTIVE[action] && !(await confirm.ask(`${what}?`, BULK_VERB[action]))) return;
    setBusy(true);
    try {
      const answer = await apiSend<{ task: string }>(
        "POST", `/nodes/${encodeURIComponent(node.name)}/bulk`, body);
      setTaskId(answer.task);
      void store?.refresh();
    } catch (err) {
      setError(asApiError(err));
    } finally {
      setBusy(false);
    }
  };

  const verb = BULK_VERB[action];
  return (
    <Modal title={`Bulk ${verb.toLowerCase()} on ${node.name}`} onClose={onClose}
           testid="bulk-dialog" wide>
      {taskId ? (
        <div data-testid="bulk-progress">
          {job.error && <p class="error">Task {taskId} (GET /tasks): {job.error.describe()}</p>}
          {job.data ? <BulkJob task={job.data} open /> : <p class="muted">task {taskId} queued…</p>}
          <div class="modal-actions">
            <button type="button" onClick={onClose}>Close</button>
          </div>
        </div>
      ) : (
        <form class="form" onSubmit={(e) => void submit(e)}>
          <div class="form-grid">
            <label>
              Action
              <select value={action} data-testid="bulk-action"
                      onChange={(e) => pickAction(e.currentTarget.value as BulkAction)}>
                {BULK_ACTIONS.map((a) => <option key={a} value={a}>{BULK_VERB[a]}</option>)}
              </select>
            </label>
            <label>
              Parallel jobs
              <input type="number" min={1} max={64} value={parallel} name="parallel"
                     aria-invalid={invalid?.field === "parallel"}
                     onInput={(e) => setParallel(e.currentTarget.value)} />
            </label>
            {action === "migrate" && (
              <label>
                Target host
                <select value={target} name="target" aria-invalid={invalid?.field === "target"}
                        onChange={(e) => setTarget(e.currentTarget.value)}>
                  <option value="">choose…</option>
                  {choices.map((c) => (
                    <option key={c.name} value={c.name} disabled={c.refusal !== null}>
                      {c.name}{c.refusal ? ` (${c.refusal})` : ""}
                    </option>
                  ))}
                </select>
              </label>
            )}
            {action === "migrate" && (
              <label class="check">
                <input type="checkbox" checked={withLocalDisks}
                       onChange={(e) => setWithLocalDisks(e.currentTarget.checked)} />
                Migrate local disks too
              </label>
            )}
            {action === "shutdown" && (
              <label>
                Force stop after (s)
                <input type="number" min={1} value={forceAfter} name="timeout"
                       aria-invalid={invalid?.field === "timeout"}
                       onInput={(e) => setForceAfter(e.currentTarget.value)} />
              </label>
            )}
          </div>

          <fieldset class="vm-pick">
            <legend>VMs ({selected.length} selected)</legend>
            <div class="vm-filters">
              <input type="search" placeholder="filter by name or id" aria-label="filter VMs"
                     value={filter.text}
                     onInput={(e) => setFilter({ ...filter, text: e.currentTarget.value })} />
              <select aria-label="state" value={filter.status}
                      onChange={(e) => setFilter({ ...filter, status: e.currentTarget.value })}>
                <option value="">any state</option>
                {distinct(rows.map((r) => r.status)).map((s) => <option key={s} value={s}>{s}</option>)}
              </select>
              <select aria-label="HA state" value={filter.ha}
                      onChange={(e) => setFilter({ ...filter, ha: e.currentTarget.value })}>
                <option value="">any HA state</option>
                {distinct(rows.map((r) => r.ha)).map((s) => <option key={s} value={s}>{s}</option>)}
              </select>
              <button type="button" class="ghost"
                      onClick={() => setSelected([...new Set([...selected, ...shown.map((r) => r.vmid)])])}>
                select shown
              </button>
              <button type="button" class="ghost"
                      onClick={() => setSelected(selected.filter((v) => !shown.some((r) => r.vmid === v)))}>
                clear shown
              </button>
            </div>
            <div class="vm-pick-list">
              {shown.length === 0 ? <p class="muted">No VM matches.</p> : (
                <table class="table">
                  <tbody>
                    {shown.map((r) => {
                      const skip = skipReason(action, r);
                      return (
                        <tr key={r.vmid} data-testid="pick-vm" data-vmid={r.vmid}>
                          <td>
                            <input type="checkbox" aria-label={`VM ${r.vmid} ${r.name}`}
                                   checked={selected.includes(r.vmid)}
                                   onChange={(e) => toggle(r.vmid, e.currentTarget.checked)} />
                          </td>
                          <td>{r.vmid} {r.name}</td>
                          <td><StateIcon state={r.status} /> {r.status}</td>
                          <td class="muted">HA {r.ha}</td>
                          <td class="muted small">{skip ? `will be skipped: ${skip}` : ""}</td>
                        </tr>
                      );
                    })}
                  </tbody>
                </table>
              )}
            </div>
          </fieldset>

          {invalid && <p class="error" role="alert" data-testid="form-error">{invalid.message}</p>}
          <ActionError what={`POST /nodes/${node.name}/bulk`} error={error} />
          <div class="modal-actions">
            <button type="button" onClick={onClose}>Close</button>
            <button type="submit" class={DESTRUCTIVE[action] ? "danger" : "primary"}
                    disabled={busy} data-testid="bulk-submit">
              {verb} {selected.length} VM(s)
            </button>
          </div>
        </form>
      )}
      {confirm.dialog}
    </Modal>
  );
}
