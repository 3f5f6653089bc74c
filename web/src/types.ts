// The parts of the API's answers (src/corral/api/schemas.py and the models it returns) that
// the console reads. Unknown fields are ignored, as the stored records do.

export interface NodeUsage {
  cpu: number; // fraction of all cpus, 0..1
  memory_used_mb: number;
  memory_total_mb: number;
  load1: number;
  vms_running: number;
  // The host's data file system, where its VMs' disks are; null from an agent that does
  // not say (absent from older agents).
  disk_used_mb?: number | null;
  disk_total_mb?: number | null;
  sampled_at: number;
}

export interface Node {
  name: string;
  online: boolean;
  cpus: number | null;
  memory_mb: number | null;
  accel: string | null;
  address: string | null;
  versions: Record<string, string>;
  started_at: number | null;
  usage: NodeUsage | null;
  maintenance: boolean;
  vms: number;
  vms_running: number;
}

export interface Disk {
  volume: string; // "<storage>:<file>"
  size_mb: number;
}

export interface VM {
  vmid: number;
  name: string;
  node: string;
  state: "running" | "stopped" | "paused"; // what the operator asked for
  status: string; // what the host's agent last saw; "unknown" without a report
  memory_mb: number;
  cores: number;
  disks: Disk[];
  image: string | null;
  startup: number;
  description: string;
  pid: number | null;
  accel: string | null;
  started_at: number | null;
  message: string;
}

/** GET /vms/{vmid}: the list's item and the records behind it. */
export interface VMDetail extends VM {
  config: Record<string, unknown> & { maintenance?: string; append?: string };
  placement: { node: string; state: string; origin: string | null; generation: number };
  runtime: { node: string; status: string; updated_at: number; message: string } | null;
}

export type HARequest = "started" | "stopped" | "disabled" | "ignored";
export const HA_REQUESTS: HARequest[] = ["started", "stopped", "disabled", "ignored"];

export interface HAVMRow {
  vmid: number;
  name: string | null;
  requested: HARequest;
  status: string;
  node: string | null;
  max_restart: number;
  max_relocate: number;
  restarts: number;
  relocates: number;
  reason: string;
}

export interface HANodeRow {
  node: string;
  status: string;
  lost_at: number | null;
  fenced_at: number | null;
  reason: string;
  fence_time: number | null;
}

export interface HAReport {
  vms: HAVMRow[];
  nodes: HANodeRow[];
  unprotected: { vmid: number; node: string; status: string }[];
  skipped: { key: string; problem: string }[];
}

/** GET/POST /ha/resources */
export interface HASettings {
  vmid: number;
  state: HARequest;
  max_restart: number;
  max_relocate: number;
}

export type HARuleKind = "anti-affinity" | "affinity" | "node-preference";

export interface HARule {
  name: string;
  kind: HARuleKind;
  vms: number[];
  nodes: Record<string, number>;
  strict: boolean;
  failback: boolean;
}

/** GET /vms/{vmid}/targets (src/corral/scheduler/targets.py) */
export interface MigrationTarget {
  node: string;
  allowed: boolean;
  reasons: string[];
  current: boolean;
  online: boolean;
  maintenance: boolean;
  memory_mb: number | null;
  free_memory_mb: number | null;
  cpus: number | null;
  cpu_used: number | null;
  cpu_free: number | null;
  cores_allocated: number;
}

export interface MigrationTargets {
  vmid: number;
  node: string;
  running: boolean;
  memory_mb: number;
  cores: number;
  local_disks: string[];
  with_local_disks: boolean;
  targets: MigrationTarget[];
}

/** GET /vms/{vmid}/migration, while one runs */
export interface MigrationRecord {
  vmid: number;
  source: string;
  target: string;
  mode: "live" | "cold";
  task: string;
  phase: string;
  error?: string | null;
  stats?: { ram_total: number; ram_transferred: number; disk_total: number;
            disk_transferred: number; rate: number; elapsed: number } | null;
}

export interface TaskAccepted {
  task: string;
}

export interface ClusterStatus {
  cluster: { name?: string } | null;
  voters: string[];
  learners: string[];
  healthy_voters: string[];
  quorum: boolean;
  leader: string | null;
  witnesses: string[];
}

export interface Task {
  id: string;
  kind: string;
  node: string;
  vmid: number | null;
  state: string;
  progress: number;
  created_at: number;
  started_at: number | null;
  ended_at: number | null;
  error: string | null;
  params?: Record<string, unknown>;
  result?: Record<string, unknown>;
  log?: string[];
}

/** A task no longer runs: its state is one of these. */
export const FINISHED_TASK_STATES = ["ok", "error"];

/** A planned or queued balancing move (GET /balance/plan, the last round of GET /balance). */
export interface BalanceMove {
  vmid: number;
  source: string;
  target: string;
  reason: string;
  gain: number;
  cost_s: number;
  task: string | null;
}

/** GET /balance/plan and POST /balance/apply */
export interface BalancePlan {
  imbalance: number;
  moves: BalanceMove[];
  notes: string[];
  held: Record<string, string>; // vmid -> why it stays
  applied: boolean;
}

/** GET /balance (the settings shown on the page; the API holds more) */
export interface BalanceOverview {
  config: {
    enabled: boolean;
    interval_s: number;
    threshold: number;
    max_concurrent: number;
    max_moves_per_round: number;
  };
  config_problem: string | null;
  last_round: {
    at: number;
    imbalance: number;
    moves: BalanceMove[];
    notes: string[];
    held: Record<string, string>;
  } | null;
}
