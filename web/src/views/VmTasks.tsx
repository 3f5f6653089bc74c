// A VM's task history: read once (GET /tasks?vmid=), then kept current by the task events the
// store passes on; read again when the store reads its lists again (after a reconnect).

import { Fragment } from "preact";
import { useEffect, useRef, useState } from "preact/hooks";

import { type ApiError, asApiError } from "../api";
import { applyTask, type TaskEvent } from "../events";
import { useStore } from "../store";
import type { Task } from "../types";
import { finished } from "../vmActions";
import { StateIcon } from "./bits";
import { ErrorLine } from "./Dialog";

export const VM_TASKS = 20;

export function useVMTasks(vmid: number): { tasks: Task[] | null; error: ApiError | null } {
  const store = useStore();
  const [tasks, setTasks] = useState<Task[] | null>(null);
  const [error, setError] = useState<ApiError | null>(null);
  const early = useRef<TaskEvent[]>([]); // events that came before the first read answered

  useEffect(() => {
    let alive = true;
    setTasks(null);
    early.current = [];
    const read = () => store.get<Task[]>(`/tasks?vmid=${vmid}&limit=${VM_TASKS}`).then(
      (list) => {
        if (!alive) return;
        const held = early.current;
        early.current = [];
        setTasks(held.reduce((l, e) => applyTask(l, e, VM_TASKS), list));
        setError(null);
      },
      (e) => alive && setError(asApiError(e)),
    );
    void read();
    const off = store.listen((n) => {
      if (n.kind === "reread") {
        void read();
        return;
      }
      if (n.task !== null && n.task.vmid !== vmid) return;
      const e: TaskEvent = n.task ? { id: n.id, task: n.task } : { id: n.id, deleted: true };
      setTasks((cur) => {
        if (cur === null) {
          early.current.push(e);
          return cur;
        }
        return applyTask(cur, e, VM_TASKS);
      });
    });
    return () => {
      alive = false;
      off();
    };
  }, [store, vmid]);
  return { tasks, error };
}

function when(ts: number | null): string {
  return ts ? new Date(ts * 1000).toLocaleTimeString() : "—";
}

function took(t: Task): string {
  if (!t.started_at) return "";
  const end = t.ended_at ?? Date.now() / 1000;
  return `${Math.max(0, end - t.started_at).toFixed(1)} s`;
}

export function TaskProgress({ task }: { task: Task }) {
  const pct = Math.round(Math.max(0, Math.min(1, task.progress)) * 100);
  return (
    <span class="task-progress" title={`${pct}%`}>
      <span class={`task-progress-fill ${task.state}`}
            style={{ width: `${finished(task) ? 100 : pct}%` }} />
    </span>
  );
}

export function TaskHistory({ tasks, error }: { tasks: Task[] | null; error: ApiError | null }) {
  const [open, setOpen] = useState<string | null>(null);
  return (
    <section class="card wide" data-testid="vm-tasks">
      <h3>Task history</h3>
      <ErrorLine error={error} testid="api-error" />
      {tasks === null ? <p class="muted">loading…</p> : tasks.length === 0 ? (
        <p class="muted">No tasks on this VM yet.</p>
      ) : (
        <div class="table-wrap">
          <table class="table">
            <thead>
              <tr><th>Created</th><th>Task</th><th>Host</th><th>State</th><th>Progress</th>
                <th>Took</th><th>Result</th></tr>
            </thead>
            <tbody>
              {tasks.map((t) => (
                <Fragment key={t.id}>
                  <tr data-testid="vm-task" data-id={t.id} data-kind={t.kind} data-state={t.state}
                      class="clickable" onClick={() => setOpen(open === t.id ? null : t.id)}>
                    <td>{when(t.created_at)}</td>
                    <td>{t.kind}</td>
                    <td>{t.node}</td>
                    <td><StateIcon state={t.state} /> {t.state}</td>
                    <td><TaskProgress task={t} /></td>
                    <td>{took(t)}</td>
                    <td class="task-state">
                      {t.error ? <span class="error-text">{t.error}</span>
                        : <span class="muted">{t.log?.[t.log.length - 1] ?? ""}</span>}
                    </td>
                  </tr>
                  {open === t.id && (
                    <tr class="task-log-row">
                      <td colSpan={7}>
                        <pre class="task-log" data-testid="task-log">
                          {(t.log ?? []).join("\n") || "(no log lines)"}
                        </pre>
                      </td>
                    </tr>
                  )}
                </Fragment>
              ))}
            </tbody>
          </table>
        </div>
      )}
    </section>
  );
}
