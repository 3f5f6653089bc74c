// Migrate a VM: pick a target among every host (GET /vms/{vmid}/targets: free memory, CPU, and
// why a host is not allowed), start the migration (POST /vms/{vmid}/migrate), then follow its
// task through the events stream, with the migration's phase and bytes moved
// (GET /vms/{vmid}/migration) read again at most once a second while the task reports.

import { useEffect, useRef, useState } from "preact/hooks";

import { type ApiError, asApiError } from "../api";
import { useStore } from "../store";
import { formatMB } from "../summary";
import type { MigrationRecord, MigrationTargets, Task, TaskAccepted, VM } from "../types";
import { finished } from "../vmActions";
import { StateIcon } from "./bits";
import { Dialog, ErrorLine, useRequest } from "./Dialog";
import { TaskProgress } from "./VmTasks";

const RECORD_EVERY_MS = 1000;

function useTargets(vmid: number, withLocalDisks: boolean) {
  const store = useStore();
  const [answer, setAnswer] = useState<MigrationTargets | null>(null);
  const [error, setError] = useState<ApiError | null>(null);
  useEffect(() => {
    let alive = true;
    setError(null);
    store.get<MigrationTargets>(`/vms/${vmid}/targets?with_local_disks=${withLocalDisks}`).then(
      (a) => alive && setAnswer(a),
      (e) => alive && setError(asApiError(e)),
    );
    return () => {
      alive = false;
    };
  }, [store, vmid, withLocalDisks]);
  return { answer, error };
}

function cpuText(t: MigrationTargets["targets"][number]): string {
  if (t.cpus === null) return "—";
  const used = t.cpu_used === null ? "no sample" : `${Math.round(t.cpu_used * 100)}% busy`;
  const given = `${t.cores_allocated} core${t.cores_allocated === 1 ? "" : "s"} given to VMs`;
  return `${t.cpus} cpus · ${used} · ${given}`;
}

function TargetPicker({ vm, chosen, onChoose, withLocalDisks, setWithLocalDisks }: {
  vm: VM;
  chosen: string | null;
  onChoose: (node: string) => void;
  withLocalDisks: boolean;
  setWithLocalDisks: (v: boolean) => void;
}) {
  const { answer, error } = useTargets(vm.vmid, withLocalDisks);
  return (
    <div data-testid="migrate-targets">
      <ErrorLine error={error} testid="api-error" />
      {answer === null ? <p class="muted">{error ? "" : "loading targets…"}</p> : (
        <>
          <p class="muted small">
            {answer.running ? `A live migration: the target needs ${formatMB(answer.memory_mb)} ` +
              "free for its memory." : "The VM is stopped: it moves cold and needs no memory."}
          </p>
          {answer.local_disks.length > 0 && (
            <label class="check">
              <input type="checkbox" checked={withLocalDisks}
                     onChange={(e) => setWithLocalDisks((e.target as HTMLInputElement).checked)} />
              Copy its local disks ({answer.local_disks.join(", ")})
            </label>
          )}
          <table class="table targets">
            <thead>
              <tr><th /><th>Host</th><th>Free memory</th><th>CPU</th><th>Allowed</th></tr>
            </thead>
            <tbody>
              {answer.targets.map((t) => (
                <tr key={t.node} data-testid="target" data-node={t.node}
                    data-allowed={String(t.allowed)} class={t.allowed ? "clickable" : "refused"}
                    onClick={() => t.allowed && onChoose(t.node)}>
                  <td>
                    <input type="radio" name="target" value={t.node} disabled={!t.allowed}
                           checked={chosen === t.node} aria-label={`migrate to ${t.node}`}
                           onChange={() => onChoose(t.node)} />
                  </td>
                  <td>
                    <StateIcon state={!t.online ? "offline" : t.maintenance ? "maintenance"
                      : "online"} /> {t.node}{t.current ? " (its host)" : ""}
                  </td>
                  <td>{t.free_memory_mb === null ? "—" : formatMB(t.free_memory_mb)}
                    {t.memory_mb !== null && <span class="muted"> of {formatMB(t.memory_mb)}</span>}
                  </td>
                  <td>{cpuText(t)}</td>
                  <td class="reasons" data-testid="target-reasons">
                    {t.allowed ? <span class="ok-text">yes</span> : (
                      <ul class="plain">{t.reasons.map((r) => <li key={r}>{r}</li>)}</ul>
                    )}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </>
      )}
    </div>
  );
}

function bytes(n: number): string {
  return formatMB(n / (1024 * 1024));
}

/** The migration's task and record, until the task ends. */
function Progress({ vmid, taskId, tasks }: { vmid: number; taskId: string; tasks: Task[] }) {
  const store = useStore();
  const task = tasks.find((t) => t.id === taskId) ?? null;
  const [record, setRecord] = useState<MigrationRecord | null>(null);
  const [error, setError] = useState<ApiError | null>(null);
  const last = useRef(0);
  useEffect(() => {
    if (!task || finished(task) || Date.now() - last.current < RECORD_EVERY_MS) return;
    last.current = Date.now();
    let alive = true;
    store.get<MigrationRecord>(`/vms/${vmid}/migration`).then(
      (r) => {
        if (!alive) return;
        setRecord(r);
        setError(null);
      },
      (e) => {
        const err = asApiError(e);
        // 404: none yet, or gone once done; the task says the rest.
        if (alive && err.status !== 404) setError(err);
      },
    );
    return () => {
      alive = false;
    };
  }, [store, vmid, task?.progress, task?.state]);
  const stats = record?.stats;
  return (
    <div class="migrate-progress" data-testid="migrate-progress"
         data-state={task?.state ?? "queued"}>
      <p>
        Task <code>{taskId}</code>: <StateIcon state={task?.state ?? "queued"} />{" "}
        <strong data-testid="migrate-state">{task?.state ?? "queued"}</strong>
        {task && !finished(task) && ` · ${Math.round(task.progress * 100)}%`}
      </p>
      {task && <TaskProgress task={task} />}
      <ErrorLine error={error} testid="api-error" />
      {record && task && !finished(task) && (
        <p class="muted small">
          {record.mode} migration {record.source} → {record.target}, phase {record.phase}
          {stats && stats.ram_total > 0 &&
            ` · RAM ${bytes(stats.ram_transferred)} of ${bytes(stats.ram_total)}`}
          {stats && stats.disk_total > 0 &&
            ` · disks ${bytes(stats.disk_transferred)} of ${bytes(stats.disk_total)}`}
          {stats && stats.rate > 0 && ` · ${bytes(stats.rate)}/s`}
        </p>
      )}
      {task?.log && task.log.length > 0 && (
        <p class="muted small" data-testid="migrate-log">{task.log[task.log.length - 1]}</p>
      )}
      {task?.state === "error" && <p class="error" role="alert">{task.error}</p>}
    </div>
  );
}

export function MigrateDialog({ vm, tasks, onClose }: {
  vm: VM;
  tasks: Task[];
  onClose: () => void;
}) {
  const store = useStore();
  const [chosen, setChosen] = useState<string | null>(null);
  const [withLocalDisks, setWithLocalDisks] = useState(false);
  const [bwlimit, setBwlimit] = useState("");
  const [taskId, setTaskId] = useState<string | null>(null);
  const req = useRequest();
  const task = tasks.find((t) => t.id === taskId);
  const done = task !== undefined && finished(task);

  const start = () => req.run(async () => {
    const body: Record<string, unknown> = { target: chosen, with_local_disks: withLocalDisks };
    if (bwlimit.trim()) body.bwlimit = bwlimit.trim();
    const accepted = await store.send<TaskAccepted>("POST", `/vms/${vm.vmid}/migrate`, body);
    setTaskId(accepted!.task);
  });

  return (
    <Dialog title={`Migrate VM ${vm.vmid} · ${vm.name}`} onClose={onClose} wide
            testid="migrate-dialog">
      {taskId === null ? (
        <form onSubmit={(e) => { e.preventDefault(); void start(); }}>
          <p>Now on <strong>{vm.node}</strong> ({vm.status}). Pick a host:</p>
          <TargetPicker vm={vm} chosen={chosen} onChoose={setChosen}
                        withLocalDisks={withLocalDisks} setWithLocalDisks={setWithLocalDisks} />
          <label class="inline">
            Bandwidth limit <input value={bwlimit} placeholder="none (e.g. 200M)" size={14}
                                   aria-label="bandwidth limit"
                                   onInput={(e) => setBwlimit((e.target as HTMLInputElement).value)} />
          </label>
          <ErrorLine error={req.error} />
          <div class="dialog-buttons">
            <button type="button" onClick={onClose}>Cancel</button>
            <button type="submit" class="primary" disabled={!chosen || req.busy}>
              {chosen ? `Migrate to ${chosen}` : "Migrate"}
            </button>
          </div>
        </form>
      ) : (
        <>
          <Progress vmid={vm.vmid} taskId={taskId} tasks={tasks} />
          {done && task?.state === "ok" && (
            <p data-testid="migrate-done">Done: VM {vm.vmid} is on {vm.node} now.</p>
          )}
          <div class="dialog-buttons">
            <button type="button" class={done ? "primary" : ""} onClick={onClose}>
              {done ? "Close" : "Close (it goes on)"}
            </button>
          </div>
        </>
      )}
    </Dialog>
  );
}
