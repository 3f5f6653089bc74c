// Maintenance of a host: enable (its VMs move away, live), disable (they come back), and the
// evacuation as it goes, with the reason for every VM that cannot move
// (GET/POST /nodes/{node}/maintenance; the manager does the moving).

import { useContext, useState } from "preact/hooks";

import { type ApiError, asApiError } from "../api";
import { useFollow } from "../follow";
import { type MaintenanceStatus, maintenanceProgress, maintenanceRows } from "../hostpage";
import { apiSend } from "../send";
import { StoreContext, useClusterState } from "../store";
import type { Node } from "../types";
import { ActionError, Modal, useConfirm } from "./Modal";

const STATE_TEXT: Record<MaintenanceStatus["state"], string> = {
  off: "off: the host takes VMs",
  evacuating: "on: moving its VMs away",
  "in-maintenance": "on: the host is empty of VMs that move",
  returning: "off: its VMs are coming back",
};

export function MaintenanceDialog({ node, onClose }: { node: Node; onClose: () => void }) {
  const store = useContext(StoreContext);
  const { vms } = useClusterState();
  const path = `/nodes/${encodeURIComponent(node.name)}/maintenance`;
  const status = useFollow<MaintenanceStatus>(path);
  const [parallel, setParallel] = useState("");
  const [noReturn, setNoReturn] = useState(false);
  const [error, setError] = useState<{ what: string; e: ApiError } | null>(null);
  const [busy, setBusy] = useState(false);
  const confirm = useConfirm();
  const s = status.data;
  const names = new Map((vms ?? []).map((v) => [v.vmid, v]));

  const change = async (enable: boolean) => {
    const what = enable ? `Enable maintenance on ${node.name}` : `Disable maintenance on ${node.name}`;
    const message = enable
      ? `Enable maintenance on ${node.name}? Every VM on it moves to another host (live when it `
        + "runs); VMs set to stay or stop are left or shut down."
      : `Disable maintenance on ${node.name}? `
        + (noReturn ? "Its VMs stay where they are now." : "Its VMs move back to it.");
    if (!(await confirm.ask(message, enable ? "Enable maintenance" : "Disable maintenance"))) return;
    const body: Record<string, unknown> = { enable };
    if (enable && parallel.trim() !== "") body.parallel = Number(parallel);
    if (!enable) body.no_return = noReturn;
    setBusy(true);
    setError(null);
    try {
      await apiSend<MaintenanceStatus>("POST", path, body);
      status.reload();
      void store?.refresh();
    } catch (e) {
      setError({ what, e: asApiError(e) });
    } finally {
      setBusy(false);
    }
  };

  const progress = s ? maintenanceProgress(s) : null;
  const rows = s ? maintenanceRows(s) : [];
  return (
    <Modal title={`Maintenance of ${node.name}`} onClose={onClose} testid="maintenance-dialog" wide>
      {status.error && <p class="error">Maintenance status (GET {path}): {status.error.describe()}</p>}
      {!s ? <p class="muted">loading…</p> : (
        <>
          <p data-testid="maintenance-state" data-state={s.state}>
            <strong>Maintenance {STATE_TEXT[s.state]}</strong>
            <span class="muted"> · {s.parallel} migration(s) at once</span>
          </p>
          {progress && (
            <div class="evacuation" data-testid="evacuation">
              <span class="progress wide-bar">
                <span class="progress-fill"
                      style={{ width: `${progress.total ? (progress.done / progress.total) * 100 : 100}%` }} />
              </span>
              <span data-testid="evacuation-label">{progress.label}</span>
            </div>
          )}
          {rows.length > 0 && (
            <table class="table" data-testid="maintenance-vms">
              <tbody>
                {rows.map((r) => (
                  <tr key={r.vmid} data-testid="maintenance-vm" data-vmid={r.vmid} data-phase={r.phase}>
                    <td>{r.vmid} {names.get(r.vmid)?.name ?? ""}</td>
                    <td>{r.phase}</td>
                    <td class="muted">{names.get(r.vmid)?.node ?? ""}</td>
                    <td class={r.phase.startsWith("cannot") ? "error-text" : "muted"}>{r.reason}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          )}
          <ActionError what={error?.what ?? ""} error={error?.e ?? null} />
          <div class="modal-actions">
            {s.enabled ? (
              <>
                <label class="check">
                  <input type="checkbox" checked={noReturn}
                         onChange={(e) => setNoReturn(e.currentTarget.checked)} />
                  leave the VMs where they are
                </label>
                <span class="spacer" />
                <button type="button" onClick={onClose}>Close</button>
                <button type="button" class="danger" disabled={busy} data-testid="maintenance-disable"
                        onClick={() => void change(false)}>
                  Disable maintenance
                </button>
              </>
            ) : (
              <>
                <label class="inline">
                  migrations at once
                  <input type="number" min={1} max={64} placeholder={String(s.parallel)}
                         value={parallel} onInput={(e) => setParallel(e.currentTarget.value)} />
                </label>
                <span class="spacer" />
                <button type="button" onClick={onClose}>Close</button>
                <button type="button" class="danger" disabled={busy} data-testid="maintenance-enable"
                        onClick={() => void change(true)}>
                  Enable maintenance
                </button>
              </>
            )}
          </div>
        </>
      )}
      {confirm.dialog}
    </Modal>
  );
}
