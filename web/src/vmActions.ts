// The VM page's run-state actions (POST /vms/{vmid}/status/{action}): their labels, which ones
// ask first, and which ones make sense in a VM's status. Pure. The API has the last word: an
// action it refuses shows its reason.

import type { Task } from "./types";
import { FINISHED_TASK_STATES } from "./types";

export type VMAction = "start" | "shutdown" | "stop" | "suspend" | "resume" | "reset";

export interface ActionSpec {
  action: VMAction;
  label: string;
  // What the confirmation says; null: the action destroys nothing and runs at once.
  confirm: string | null;
}

export const ACTIONS: ActionSpec[] = [
  { action: "start", label: "Start", confirm: null },
  { action: "shutdown", label: "Shutdown",
    confirm: "The guest is asked to power off (ACPI); if it has not after the timeout, it is " +
             "stopped hard." },
  { action: "stop", label: "Stop",
    confirm: "The guest is powered off at once, as if its plug were pulled: what it has not " +
             "written to disk is lost." },
  { action: "suspend", label: "Suspend", confirm: null },
  { action: "resume", label: "Resume", confirm: null },
  { action: "reset", label: "Reset",
    confirm: "The guest restarts at once, without shutting down: what it has not written to " +
             "disk is lost." },
];

const ACTIVE = ["running", "paused", "starting", "shutting-down"];

/** Whether action makes sense in status; an unknown status (no report, host offline) allows
 *  every action: the API decides. */
export function sensible(action: VMAction, status: string): boolean {
  if (status === "unknown") return true;
  switch (action) {
    case "start":
      return !ACTIVE.includes(status);
    case "suspend":
      return status === "running";
    case "resume":
      return status === "paused";
    default:
      return status !== "stopped";
  }
}

export function finished(t: Task): boolean {
  return FINISHED_TASK_STATES.includes(t.state);
}

/** The VM's task still running, if any (the API refuses most actions meanwhile). */
export function activeTask(tasks: Task[]): Task | null {
  return tasks.find((t) => !finished(t)) ?? null;
}
