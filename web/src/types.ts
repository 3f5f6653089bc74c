// The parts of the API's answers (src/corral/api/schemas.py and the models it returns) that
// the console reads. Unknown fields are ignored, as the stored records do.

export interface NodeUsage {
  cpu: number; // fraction of all cpus, 0..1
  memory_used_mb: number;
  memory_total_mb: number;
  load1: number;
  vms_running: number;
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

export interface VM {
  vmid: number;
  name: string;
  node: string;
  state: "running" | "stopped" | "paused"; // what the operator asked for
  status: string; // what the host's agent last saw; "unknown" without a report
  memory_mb: number;
  cores: number;
  image: string | null;
  description: string;
  pid: number | null;
  accel: string | null;
  started_at: number | null;
  message: string;
}

export interface HAVMRow {
  vmid: number;
  name: string | null;
  requested: string;
  status: string;
  node: string | null;
  reason: string;
}

export interface HANodeRow {
  node: string;
  status: string;
  reason: string;
}

export interface HAReport {
  vms: HAVMRow[];
  nodes: HANodeRow[];
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
}
