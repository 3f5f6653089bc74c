// One bulk job: each VM's progress, and cancelling the job or a VM of it (VMs not begun are
// left alone; one under way, a migration say, runs to its end or rolls back).

import { useContext, useState } from "preact/hooks";

import type { ApiError } from "../api";
import { asApiError } from "../api";
import { useFollow } from "../follow";
import { jobRows, jobTitle, type TaskRecord } from "../hostpage";
import { apiSend } from "../send";
import { StoreContext } from "../store";
import { StateIcon } from "./bits";
import { ActionError, useConfirm } from "./Modal";

interface Cancelled {
  cancelled: number[];
  begun: Record<string, string>;
  finished: Record<string, string>;
}

function describeCancel(c: Cancelled): string {
  const parts = [`cancelled: ${c.cancelled.length ? c.cancelled.join(", ") : "none"}`];
  const begun = Object.keys(c.begun);
  if (begun.length) parts.push(`under way, left to finish: ${begun.join(", ")}`);
  return parts.join(" · ");
}

export function BulkJob({ task, open: openFirst }: { task: TaskRecord; open?: boolean }) {
  const store = useContext(StoreContext);
  const unfinished = task.state === "queued" || task.state === "running";
  const [open, setOpen] = useState(openFirst ?? unfinished);
  const children = useFollow<TaskRecord[]>(
    open ? `/tasks?parent=${encodeURIComponent(task.id)}&limit=10000` : null);
  const [error, setError] = useState<{ what: string; e: ApiError } | null>(null);
  const [note, setNote] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const confirm = useConfirm();
  const rows = jobRows(task, children.data ?? []);

  const cancel = async (vmid: number | null) => {
    const what = vmid === null ? `the whole ${jobTitle(task)} job` : `VM ${vmid} of ${jobTitle(task)}`;
    const sure = await confirm.ask(
      `Cancel ${what}? VMs not begun are left as they are; a VM already under way `
      + "finishes (a migration completes or rolls back).",
      vmid === null ? "Cancel the job" : `Cancel VM ${vmid}`);
    if (!sure) return;
    setBusy(true);
    setError(null);
    try {
      const answer = await apiSend<Cancelled>("POST", `/tasks/${encodeURIComponent(task.id)}/cancel`,
                                               vmid === null ? {} : { vms: [vmid] });
      setNote(describeCancel(answer));
      children.reload();
      void store?.refresh();
    } catch (e) {
      setError({ what: `Cancel ${what}`, e: asApiError(e) });
    } finally {
      setBusy(false);
    }
  };

  return (
    <div class="bulk-job" data-testid="bulk-job" data-id={task.id} data-state={task.state}>
      <div class="bulk-job-head">
        <button type="button" class="ghost" aria-expanded={open} onClick={() => setOpen(!open)}>
          {open ? "▾" : "▸"}
        </button>
        <StateIcon state={task.state} />
        <strong>{jobTitle(task)}</strong>
        <span class="muted small">{new Date(task.created_at * 1000).toLocaleTimeString()}</span>
        <span class="progress" title={`${Math.round(task.progress * 100)} %`}>
          <span class="progress-fill" style={{ width: `${task.progress * 100}%` }} />
        </span>
        <span class="small" data-testid="bulk-job-state">
          {task.state}{task.state === "running" ? ` ${Math.round(task.progress * 100)} %` : ""}
        </span>
        <span class="spacer" />
        {unfinished && (
          <button type="button" class="danger" disabled={busy} data-testid="cancel-job"
                  onClick={() => void cancel(null)}>
            Cancel job
          </button>
        )}
      </div>
      {task.error && <p class="error small">{task.error}</p>}
      <ActionError what={error?.what ?? ""} error={error?.e ?? null} />
      {note && <p class="muted small" data-testid="cancel-note">{note}</p>}
      {open && (
        <>
          {children.error && <p class="error small">VM tasks (GET /tasks): {children.error.describe()}</p>}
          <table class="table job-table">
            <tbody>
              {rows.map((r) => (
                <tr key={r.vmid} data-testid="job-vm" data-vmid={r.vmid} data-phase={r.phase}>
                  <td>VM {r.vmid}</td>
                  <td><StateIcon state={PHASE_ICON[r.phase] ?? r.phase} /> {r.phase}</td>
                  <td>
                    <span class="progress">
                      <span class="progress-fill" style={{ width: `${r.progress * 100}%` }} />
                    </span>
                  </td>
                  <td class="job-detail">{r.detail}</td>
                  <td>
                    {r.cancellable && (
                      <button type="button" class="small-button" disabled={busy}
                              onClick={() => void cancel(r.vmid)}>
                        Cancel
                      </button>
                    )}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </>
      )}
      {confirm.dialog}
    </div>
  );
}

const PHASE_ICON: Record<string, string> = {
  waiting: "queued", queued: "queued", running: "running", ok: "ok", failed: "error",
  skipped: "stopped", cancelled: "stopped",
};
