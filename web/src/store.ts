// The one place that fetches the cluster's state; views only subscribe to it. Today it polls
// every 2 s while the tab is visible; the events stream (/api/v1/events) will replace the
// polling inside this module, and the views will not change.

import { createContext } from "preact";
import { useContext, useEffect, useState } from "preact/hooks";

import { ApiError, apiGet, asApiError } from "./api";
import type { ClusterStatus, HAReport, Node, Task, VM } from "./types";

export const POLL_MS = 2000;
export const RECENT_TASKS = 10;

export interface State {
  nodes: Node[] | null; // null: not loaded yet
  vms: VM[] | null;
  ha: HAReport | null;
  cluster: ClusterStatus | null;
  tasks: Task[] | null;
  // The last failure of each source; its data above is then the last that did load.
  errors: Partial<Record<Source, ApiError>>;
  updatedAt: number | null; // ms since the epoch, of the last round that finished
}

interface Feed<K extends Source> {
  path: string;
  every: number; // in rounds: the cluster's etcd status asks each member, so less often
  key: K;
}

type Data = Omit<State, "errors" | "updatedAt">;
export type Source = keyof Data;

const FEEDS: Feed<Source>[] = [
  { key: "nodes", path: "/nodes", every: 1 },
  { key: "vms", path: "/vms", every: 1 },
  { key: "ha", path: "/ha/status", every: 1 },
  { key: "tasks", path: `/tasks?limit=${RECENT_TASKS}`, every: 1 },
  { key: "cluster", path: "/cluster/status", every: 5 },
];

const EMPTY: State = {
  nodes: null, vms: null, ha: null, cluster: null, tasks: null, errors: {}, updatedAt: null,
};

export class ClusterStore {
  private state: State = EMPTY;
  private listeners = new Set<(s: State) => void>();
  private timer: number | undefined;
  private inFlight: Promise<void> | null = null;
  private round = 0;
  private stopped = true;
  private abort = new AbortController();

  constructor(
    private readonly token: string,
    private readonly onUnauthorized: (e: ApiError) => void,
  ) {}

  getState(): State {
    return this.state;
  }

  subscribe(fn: (s: State) => void): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  start(): void {
    this.stopped = false;
    document.addEventListener("visibilitychange", this.onVisibility);
    void this.refresh();
  }

  stop(): void {
    this.stopped = true;
    this.abort.abort();
    window.clearTimeout(this.timer);
    document.removeEventListener("visibilitychange", this.onVisibility);
  }

  /** One round now (after an action, say); a round already running is not doubled. */
  refresh(): Promise<void> {
    if (this.inFlight) return this.inFlight;
    window.clearTimeout(this.timer);
    this.inFlight = this.fetchRound().finally(() => {
      this.inFlight = null;
      this.schedule();
    });
    return this.inFlight;
  }

  private schedule(): void {
    window.clearTimeout(this.timer);
    if (!this.stopped && document.visibilityState === "visible") {
      this.timer = window.setTimeout(() => void this.refresh(), POLL_MS);
    }
  }

  private onVisibility = (): void => {
    if (document.visibilityState === "visible") void this.refresh();
    else window.clearTimeout(this.timer);
  };

  private async fetchRound(): Promise<void> {
    const due = FEEDS.filter((f) => this.round % f.every === 0);
    this.round += 1;
    const results = await Promise.allSettled(
      due.map((f) => apiGet<unknown>(f.path, this.token, this.abort.signal)));
    if (this.stopped) return;
    const next: State = { ...this.state, errors: { ...this.state.errors },
                          updatedAt: Date.now() };
    results.forEach((r, i) => {
      const key = due[i]!.key;
      if (r.status === "fulfilled") {
        (next as unknown as Record<Source, unknown>)[key] = r.value;
        delete next.errors[key];
      } else {
        next.errors[key] = asApiError(r.reason);
      }
    });
    const refused = Object.values(next.errors).find((e) => e.status === 401);
    if (refused) {
      this.onUnauthorized(refused);
      return;
    }
    this.state = next;
    for (const fn of this.listeners) fn(next);
  }
}

export const StoreContext = createContext<ClusterStore | null>(null);

/** The cluster's state; the calling view draws again whenever it changes. */
export function useClusterState(): State {
  const store = useContext(StoreContext);
  if (!store) throw new Error("useClusterState outside a StoreContext");
  const [state, setState] = useState(store.getState());
  useEffect(() => {
    setState(store.getState()); // a round may have finished before this view subscribed
    return store.subscribe(setState);
  }, [store]);
  return state;
}
