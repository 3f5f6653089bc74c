// The tasks dock at the bottom of every page: running and recent tasks with their progress,
// from the store (GET /tasks, and the events stream once the store reads it). A click opens
// the task's detail: its log, result and, for a bulk job, each VM's progress.

import "../panels.css";

import { useState } from "preact/hooks";

import { useFollow } from "../follow";
import type { TaskRecord } from "../hostpage";
import { useClusterState } from "../store";
import type { Task } from "../types";
import { StateIcon } from "./bits";
import { BulkJob } from "./BulkJob";
import { Modal } from "./Modal";

const KEY = "corral.dock";

function target(t: Task): string {
  return t.vmid !== null ? `VM ${t.vmid}` : t.node;
}

function when(t: Task): string {
  return new Date((t.started_at ?? t.created_at) * 1000).toLocaleTimeString();
}

/** Running and queued first (newest first), then the rest newest first. */
export function dockOrder(tasks: Task[]): Task[] {
  const live = (t: Task) => t.state === "running" || t.state === "queued";
  return [...tasks].sort((a, b) =>
    Number(live(b)) - Number(live(a)) || b.created_at - a.created_at);
}

function TaskDetail({ id, onClose }: { id: string; onClose: () => void }) {
  const { data: t, error } = useFollow<TaskRecord>(`/tasks/${encodeURIComponent(id)}`);
  return (
    <Modal title={`Task ${id}`} onClose={onClose} testid="task-detail" wide>
      {error && <p class="error">Task {id} (GET /tasks/{id}): {error.describe()}</p>}
      {!t ? <p class="muted">loading…</p> : (
        <>
          <dl class="fields">
            <dt>Kind</dt><dd>{t.kind}</dd>
            <dt>Target</dt><dd>{t.vmid !== null ? `VM ${t.vmid} on ${t.node}` : `host ${t.node}`}</dd>
            <dt>State</dt>
            <dd data-testid="task-state"><StateIcon state={t.state} /> {t.state}
              {t.state === "running" ? ` · ${Math.round(t.progress * 100)} %` : ""}</dd>
            <dt>Created</dt><dd>{new Date(t.created_at * 1000).toLocaleString()}</dd>
            {t.ended_at !== null && (
              <><dt>Took</dt><dd>{(t.ended_at - (t.started_at ?? t.created_at)).toFixed(1)} s</dd></>
            )}
            {t.parent && <><dt>Part of</dt><dd>{t.parent}</dd></>}
            {t.error && <><dt>Error</dt><dd class="error-text">{t.error}</dd></>}
          </dl>
          {t.kind === "node.bulk" && <BulkJob task={t} open />}
          <h3 class="detail-head">Log</h3>
          <pre class="log" data-testid="task-log">
            {(t.log ?? []).length ? (t.log ?? []).join("\n") : "(no lines)"}
          </pre>
          {t.params && Object.keys(t.params).length > 0 && (
            <><h3 class="detail-head">Parameters</h3>
              <pre class="log">{JSON.stringify(t.params, null, 2)}</pre></>
          )}
          {t.result && Object.keys(t.result).length > 0 && (
            <><h3 class="detail-head">Result</h3>
              <pre class="log">{JSON.stringify(t.result, null, 2)}</pre></>
          )}
        </>
      )}
    </Modal>
  );
}

export function TasksDock() {
  const { tasks, errors } = useClusterState();
  const [shut, setShut] = useState(() => localStorage.getItem(KEY) === "shut");
  const [openId, setOpenId] = useState<string | null>(null);
  const list = dockOrder(tasks ?? []);
  const running = list.filter((t) => t.state === "running" || t.state === "queued").length;
  const toggle = () => {
    localStorage.setItem(KEY, shut ? "open" : "shut");
    setShut(!shut);
  };
  return (
    <footer class={`dock${shut ? " shut" : ""}`} data-testid="tasks-dock">
      <div class="dock-head">
        <button type="button" class="ghost" aria-expanded={!shut} onClick={toggle}>
          {shut ? "▴" : "▾"} Tasks
        </button>
        <span class="muted small" data-testid="dock-summary">
          {tasks === null ? "loading…" : `${running} running · ${list.length} recent`}
        </span>
        {errors.tasks && <span class="error-text small">Tasks (GET /tasks): {errors.tasks.describe()}</span>}
      </div>
      {!shut && (
        <ul class="dock-list">
          {list.map((t) => (
            <li key={t.id}>
              <button type="button" class="dock-row" data-testid="dock-task" data-id={t.id}
                      data-state={t.state} onClick={() => setOpenId(t.id)}>
                <StateIcon state={t.state} />
                <span class="dock-kind">{t.kind}</span>
                <span class="dock-target">{target(t)}</span>
                <span class="progress">
                  <span class={`progress-fill s-${t.state}`}
                        style={{ width: `${(t.state === "queued" ? 0 : t.progress) * 100}%` }} />
                </span>
                <span class="dock-state">
                  {t.state}{t.state === "running" ? ` ${Math.round(t.progress * 100)} %` : ""}
                </span>
                <span class="muted small">{when(t)}</span>
                {t.error && <span class="error-text small dock-error" title={t.error}>{t.error}</span>}
              </button>
            </li>
          ))}
          {tasks !== null && list.length === 0 && <li class="muted small">No tasks yet.</li>}
        </ul>
      )}
      {openId && <TaskDetail id={openId} onClose={() => setOpenId(null)} />}
    </footer>
  );
}
