// The one place that reads the cluster's state; views only subscribe to it.
//
// It follows the events stream (GET /api/v1/events), one EventSource per tab: the stream's
// first event is a `resync`, on which the lists are read; every later event replaces the item
// it names (events.ts). Events that arrive while the lists are being read are held and applied
// after them, so an answer read before an event cannot undo it. When the stream breaks, it is
// opened again after a growing pause (1 s doubling to 30 s) with a fresh ticket, and the lists
// are read again on its `resync`; while it is down, the lists are read every 15 s at most.
// Apart from that the store reads only: a list whose read failed (after 2 s doubling to 30 s,
// until it answers) and the cluster's etcd status, which no event carries (every 10 s while
// the tab is visible).

import { createContext } from "preact";
import { useContext, useEffect, useState } from "preact/hooks";

import { API, ApiError, apiGet, apiSend, asApiError } from "./api";
import {
  applyHA, applyNode, applyTask, applyVM, backoffMs, EVENT_KINDS, type StreamEvent,
} from "./events";
import { haChange, nodeChange, type RecentEvent, remember, vmChange } from "./recent";
import type { ClusterStatus, HAReport, Node, Task, VM } from "./types";

export const RECENT_TASKS = 10;
export const CLUSTER_POLL_MS = 10_000;
export const FALLBACK_POLL_MS = 15_000; // the lists, while the stream is down
const NOTIFY_MS = 50; // events of one flush draw the views once

/** The events stream: being opened (first time), open, or broken and being opened again. */
export type Link = "connecting" | "live" | "reconnecting";

export interface State {
  nodes: Node[] | null; // null: not loaded yet
  vms: VM[] | null;
  ha: HAReport | null;
  cluster: ClusterStatus | null;
  tasks: Task[] | null;
  recent: RecentEvent[]; // what the stream changed since the tab opened, newest first
  // The last failure of each source; its data above is then the last that did load.
  errors: Partial<Record<Source, ApiError>>;
  updatedAt: number | null; // ms since the epoch, of the last change applied
  link: Link;
  linkError: string | null; // why the stream is down, while it is
}

type Data = Omit<State, "errors" | "updatedAt" | "link" | "linkError" | "recent">;
export type Source = keyof Data;

const PATHS: Record<Source, string> = {
  nodes: "/nodes",
  vms: "/vms",
  ha: "/ha/status",
  tasks: `/tasks?limit=${RECENT_TASKS}`,
  cluster: "/cluster/status",
};
// What the stream keeps current; the cluster's status it does not carry.
const LISTS: Source[] = ["nodes", "vms", "ha", "tasks"];

/** What views may follow besides the state: each task event, and each time the lists were
 *  read again (anything may have changed: a view holding its own reads reads them again). */
export type Notice = { kind: "task"; id: string; task: Task | null } | { kind: "reread" };

const EMPTY: State = {
  nodes: null, vms: null, ha: null, cluster: null, tasks: null, recent: [], errors: {},
  updatedAt: null,
  link: "connecting", linkError: null,
};

export class ClusterStore {
  private state: State = EMPTY;
  private listeners = new Set<(s: State) => void>();
  private noticeListeners = new Set<(n: Notice) => void>();
  private stopped = true;
  private abort = new AbortController();
  private source: EventSource | null = null;
  private attempt = 0; // reconnects since the stream was last open
  private retries = 0; // reads again of failing lists since all last answered
  private reading: Promise<void> | null = null;
  private readAgain = false;
  private held: StreamEvent[] | null = null; // events arriving during a read of the lists
  private timers: Partial<Record<"reconnect" | "fallback" | "retry" | "cluster" | "notify",
                                 number>> = {};

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

  listen(fn: (n: Notice) => void): () => void {
    this.noticeListeners.add(fn);
    return () => this.noticeListeners.delete(fn);
  }

  start(): void {
    this.stopped = false;
    document.addEventListener("visibilitychange", this.onVisibility);
    void this.connect();
    void this.readCluster();
  }

  stop(): void {
    this.stopped = true;
    this.abort.abort();
    this.source?.close();
    this.source = null;
    for (const t of Object.values(this.timers)) window.clearTimeout(t);
    document.removeEventListener("visibilitychange", this.onVisibility);
  }

  /** Read the lists again now; a read already running is not doubled. */
  refresh(): Promise<void> {
    return this.readLists();
  }

  /** A read with the session's token; a refused token ends the session. */
  async get<T>(path: string): Promise<T> {
    return this.guard(apiGet<T>(path, this.token, this.abort.signal));
  }

  /** A write with the session's token; the change comes back through the stream. */
  async send<T>(method: "POST" | "PUT" | "DELETE", path: string, body?: unknown
  ): Promise<T | null> {
    return this.guard(apiSend<T>(method, path, this.token, body));
  }

  private async guard<T>(p: Promise<T>): Promise<T> {
    try {
      return await p;
    } catch (e) {
      if (e instanceof ApiError && e.status === 401 && !this.stopped) this.onUnauthorized(e);
      throw e;
    }
  }

  // --- the stream --------------------------------------------------------------------------

  private async connect(): Promise<void> {
    window.clearTimeout(this.timers.reconnect);
    if (this.stopped) return;
    let ticket: string;
    try {
      // An EventSource sends no header: the token buys a single-use ticket for the URL.
      const t = await apiSend<{ ticket: string }>("POST", "/events/ticket", this.token);
      ticket = t!.ticket;
    } catch (e) {
      const err = asApiError(e);
      if (err.status === 401) {
        if (!this.stopped) this.onUnauthorized(err);
        return;
      }
      this.streamDown(`no stream ticket: ${err.describe()}`);
      return;
    }
    if (this.stopped) return;
    const es = new EventSource(`${API}/events?ticket=${encodeURIComponent(ticket)}`);
    this.source = es;
    es.addEventListener("open", () => {
      this.attempt = 0;
      window.clearTimeout(this.timers.fallback);
      this.timers.fallback = undefined;
      this.update({ link: "live", linkError: null });
    });
    es.addEventListener("resync", () => void this.readLists());
    for (const kind of EVENT_KINDS) {
      es.addEventListener(kind, (m) => this.onEvent(kind, (m as MessageEvent<string>).data));
    }
    es.addEventListener("error", () => {
      // A ticket opens one stream once: the EventSource's own retry with it would be
      // refused. This store opens a new one itself, with a new ticket.
      if (this.source !== es) return;
      es.close();
      this.source = null;
      this.streamDown("the events stream broke");
    });
  }

  private streamDown(why: string): void {
    if (this.stopped) return;
    this.update({ link: "reconnecting", linkError: why });
    const wait = backoffMs(this.attempt, Math.random() * 2 - 1);
    this.attempt += 1;
    this.timers.reconnect = window.setTimeout(() => void this.connect(), wait);
    if (this.timers.fallback === undefined) this.scheduleFallback(this.state.vms === null);
  }

  /** While the stream is down the lists are read now and then: at once if nothing was read
   *  yet, then every FALLBACK_POLL_MS until it is open again. */
  private scheduleFallback(soon: boolean): void {
    const wait = soon ? 0 : FALLBACK_POLL_MS;
    this.timers.fallback = window.setTimeout(() => {
      this.timers.fallback = undefined;
      if (this.stopped || this.state.link === "live") return;
      void this.readLists().finally(() => {
        const down = !this.stopped && this.state.link !== "live";
        if (down && this.timers.fallback === undefined) this.scheduleFallback(false);
      });
    }, wait);
  }

  private onEvent(kind: StreamEvent["kind"], raw: string): void {
    let event: StreamEvent;
    try {
      event = { kind, data: JSON.parse(raw) } as StreamEvent;
    } catch {
      return; // not JSON: nothing to apply (the next resync reads everything)
    }
    if (this.held) this.held.push(event);
    else this.apply([event]);
  }

  private apply(events: StreamEvent[]): void {
    const s = { ...this.state };
    const now = Date.now();
    const seen: (RecentEvent | null)[] = [];
    for (const e of events) {
      switch (e.kind) {
        case "vm":
          if (s.vms) {
            const was = s.vms.find((v) => v.vmid === e.data.vmid);
            seen.push(vmChange(was, e.data.deleted ? undefined : e.data.vm, now));
            s.vms = applyVM(s.vms, e.data);
          }
          break;
        case "node":
          if (s.nodes) {
            const was = s.nodes.find((n) => n.name === e.data.name);
            seen.push(nodeChange(was, e.data.deleted ? undefined : e.data.node, now));
            s.nodes = applyNode(s.nodes, e.data);
          }
          break;
        case "task":
          if (s.tasks) s.tasks = applyTask(s.tasks, e.data, RECENT_TASKS);
          this.notice({ kind: "task", id: e.data.id, task: e.data.task ?? null });
          break;
        case "ha":
          if (s.ha) {
            const rows = s.ha.vms;
            for (const r of e.data.vms ?? []) {
              seen.push(haChange(rows.find((x) => x.vmid === r.vmid), r, now));
            }
            s.ha = applyHA(s.ha, e.data);
          }
          break;
      }
    }
    s.recent = remember(s.recent, seen);
    this.update({ ...s, updatedAt: now });
  }

  // --- reads -------------------------------------------------------------------------------

  /** The lists, all at once; events arriving meanwhile are applied after them. */
  private readLists(): Promise<void> {
    if (this.reading) {
      this.readAgain = true; // a resync during a read: what it read may be older
      return this.reading;
    }
    this.held = [];
    this.reading = this.read(LISTS).finally(() => {
      const held = this.held ?? [];
      this.held = null;
      this.reading = null;
      if (held.length && !this.stopped) this.apply(held);
      this.notice({ kind: "reread" });
      if (this.readAgain) {
        this.readAgain = false;
        void this.readLists();
      }
    });
    return this.reading;
  }

  private async readCluster(): Promise<void> {
    window.clearTimeout(this.timers.cluster);
    await this.read(["cluster"]);
    if (!this.stopped && document.visibilityState === "visible") {
      this.timers.cluster = window.setTimeout(() => void this.readCluster(), CLUSTER_POLL_MS);
    }
  }

  private onVisibility = (): void => {
    if (document.visibilityState === "visible") void this.readCluster();
    else window.clearTimeout(this.timers.cluster);
  };

  private async read(sources: Source[]): Promise<void> {
    const results = await Promise.allSettled(
      sources.map((k) => apiGet<unknown>(PATHS[k], this.token, this.abort.signal)));
    if (this.stopped) return;
    const next: State = { ...this.state, errors: { ...this.state.errors },
                          updatedAt: Date.now() };
    results.forEach((r, i) => {
      const key = sources[i]!;
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
    this.notify(true);
    if (sources.some((k) => LISTS.includes(k))) this.scheduleRetry();
  }

  /** Lists whose last read failed are read again, alone, until they answer: after 2 s,
   *  then 4, 8, … up to 30 s, so that a cluster store that is down is not asked in a storm. */
  private scheduleRetry(): void {
    window.clearTimeout(this.timers.retry);
    const failed = LISTS.filter((k) => this.state.errors[k]);
    if (failed.length === 0 || this.stopped) {
      this.retries = 0;
      return;
    }
    const wait = backoffMs(this.retries + 1, Math.random() * 2 - 1);
    this.retries += 1;
    this.timers.retry = window.setTimeout(() => void this.read(failed), wait);
  }

  // --- telling the views -------------------------------------------------------------------

  private update(change: Partial<State>): void {
    this.state = { ...this.state, ...change };
    this.notify(false);
  }

  private notify(now: boolean): void {
    if (now) {
      window.clearTimeout(this.timers.notify);
      this.timers.notify = undefined;
      for (const fn of this.listeners) fn(this.state);
      return;
    }
    if (this.timers.notify !== undefined) return;
    this.timers.notify = window.setTimeout(() => {
      this.timers.notify = undefined;
      for (const fn of this.listeners) fn(this.state);
    }, NOTIFY_MS);
  }

  private notice(n: Notice): void {
    for (const fn of this.noticeListeners) fn(n);
  }
}

export const StoreContext = createContext<ClusterStore | null>(null);

export function useStore(): ClusterStore {
  const store = useContext(StoreContext);
  if (!store) throw new Error("useStore outside a StoreContext");
  return store;
}

/** The cluster's state; the calling view draws again whenever it changes. */
export function useClusterState(): State {
  const store = useStore();
  const [state, setState] = useState(store.getState());
  useEffect(() => {
    setState(store.getState()); // a read may have finished before this view subscribed
    return store.subscribe(setState);
  }, [store]);
  return state;
}
