"""Every metric Corral exposes, with its type, labels and help text, in one place.

docs/metrics.md lists the same names (a unit test keeps the two in step). Labels are bounded:
hosts, VM ids and names, task kinds, states, route templates; never a raw path or a task id.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

MetricType = Literal["gauge", "counter", "histogram", "gaugehistogram"]


@dataclass(frozen=True)
class Spec:
    name: str
    type: MetricType
    labels: tuple[str, ...]
    help: str


# Bucket bounds, in the metric's base unit (seconds, bytes).
REQUEST_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
ETCD_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
                5.0, 10.0)
DECIDE_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
                  5.0)
TASK_BUCKETS = (0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0)
MIGRATION_BYTES_BUCKETS = tuple(float(2 ** e) for e in range(24, 38, 2))  # 16 MiB .. 64 GiB
DOWNTIME_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)

# --- hosts (from the cluster snapshot) -----------------------------------------------------

HOST_UP = Spec("corral_host_up", "gauge", ("host",),
               "1 while the host's agent holds its lease in etcd, else 0.")
HOST_MAINTENANCE = Spec("corral_host_maintenance", "gauge", ("host",),
                        "1 while the host is in maintenance, else 0.")
HOST_CPUS = Spec("corral_host_cpus", "gauge", ("host",),
                 "CPUs the host's agent reported when it started.")
HOST_CPU_USAGE = Spec("corral_host_cpu_usage_ratio", "gauge", ("host",),
                      "Busy fraction of all the host's CPUs (0..1) in its latest usage sample.")
HOST_MEMORY_USED = Spec("corral_host_memory_used_bytes", "gauge", ("host",),
                        "Memory in use on the host in its latest usage sample.")
HOST_MEMORY_TOTAL = Spec("corral_host_memory_total_bytes", "gauge", ("host",),
                         "The host's memory in its latest usage sample.")
HOST_LOAD1 = Spec("corral_host_load1", "gauge", ("host",),
                  "The host's one-minute load average in its latest usage sample.")
HOST_VMS_RUNNING = Spec("corral_host_vms_running", "gauge", ("host",),
                        "VMs the host's agent counted running in its latest usage sample.")
HOST_SAMPLED_AT = Spec("corral_host_usage_sampled_timestamp_seconds", "gauge", ("host",),
                       "When the host's latest usage sample was taken (Unix time).")
HOST_HA_STATUS = Spec("corral_host_ha_status", "gauge", ("host", "status"),
                      "The host's HA status as `corral ha status` shows it: 1, labelled with "
                      "the current status.")

# --- VMs (from the cluster snapshot) -------------------------------------------------------

VM_INFO = Spec("corral_vm_info", "gauge", ("vmid", "name", "host"),
               "Always 1: the VM exists, with the host that owns it.")
VM_STATUS = Spec("corral_vm_status", "gauge", ("vmid", "name", "status"),
                 "The VM's status as its host's agent observed it (unknown before any "
                 "report): 1, labelled with the current status.")
VM_REQUESTED_RUNNING = Spec("corral_vm_requested_running", "gauge", ("vmid", "name"),
                            "1 when the operator asked for the VM to run (or be paused), "
                            "0 when asked for it to be stopped.")
VM_MEMORY = Spec("corral_vm_memory_bytes", "gauge", ("vmid", "name"),
                 "Memory allocated to the VM by its configuration.")
VM_CORES = Spec("corral_vm_cores", "gauge", ("vmid", "name"),
                "CPU cores allocated to the VM by its configuration.")
VM_DISK = Spec("corral_vm_disk_bytes", "gauge", ("vmid", "name"),
               "Size of all the VM's disks together, by its configuration.")
VM_HA_STATUS = Spec("corral_vm_ha_status", "gauge", ("vmid", "name", "status"),
                    "An HA-managed VM's HA status as `corral ha status` shows it: 1, "
                    "labelled with the current status.")
VM_HA_RESTARTS = Spec("corral_vm_ha_restarts", "gauge", ("vmid", "name"),
                      "Restarts HA made of the VM in its current round of recovery.")
VM_HA_RELOCATES = Spec("corral_vm_ha_relocates", "gauge", ("vmid", "name"),
                       "Relocations HA made of the VM in its current round of recovery.")
VM_LAST_MIGRATION_BYTES = Spec(
    "corral_vm_last_migration_bytes", "gauge", ("vmid", "name", "mode"),
    "Bytes (RAM and disks) the VM's latest successful migration still on record moved.")
VM_LAST_MIGRATION_DOWNTIME = Spec(
    "corral_vm_last_migration_downtime_seconds", "gauge", ("vmid", "name"),
    "Guest pause of the VM's latest successful live migration still on record: QEMU's "
    "downtime plus the switchover to the target.")

# --- cluster-wide counts (from the cluster snapshot) ---------------------------------------

VMS = Spec("corral_vms", "gauge", ("status",),
           "VMs by observed status (every status, 0 included).")
HA_VMS = Spec("corral_ha_vms", "gauge", ("status",),
              "HA-managed VMs by HA status (every status, 0 included).")
HA_HOSTS = Spec("corral_ha_hosts", "gauge", ("status",),
                "Hosts by HA status (every status, 0 included).")
TASKS = Spec("corral_tasks", "gauge", ("kind", "state"),
             "Tasks kept in etcd by kind and state (finished ones are pruned after a day, "
             "or beyond the latest 500).")
TASKS_LAST_HOUR = Spec(
    "corral_tasks_finished_last_hour", "gauge", ("kind", "state"),
    "Tasks that ended in the hour before the snapshot, by kind and final state: the task "
    "rate, from the records kept in etcd.")
TASK_DURATION = Spec(
    "corral_task_duration_seconds", "gaugehistogram", ("kind", "state"),
    "Run time (start to end) of the finished tasks kept in etcd, by kind and final state. "
    "A gauge histogram: tasks leave it as they are pruned.")
MIGRATION_BYTES = Spec(
    "corral_migration_bytes", "gaugehistogram", ("mode",),
    "Bytes moved by the successful migrations kept in etcd (their vm.migrate tasks).")
MIGRATION_DOWNTIME = Spec(
    "corral_migration_downtime_seconds", "gaugehistogram", (),
    "Guest pause of the successful live migrations kept in etcd: QEMU's downtime plus the "
    "switchover to the target.")
UNREADABLE_RECORDS = Spec("corral_unreadable_records", "gauge", (),
                          "Records in etcd that do not decode and every part of Corral skips.")
SNAPSHOT_REVISION = Spec("corral_snapshot_revision", "gauge", (),
                         "The etcd revision the cluster metrics were read at.")

# --- this process's own timings (instruments) ----------------------------------------------

API_REQUEST = Spec("corral_api_request_duration_seconds", "histogram",
                   ("route", "method", "status"),
                   "Time the API took to answer a request, by route template (e.g. "
                   "/api/v1/vms/{vmid}), method and status code.")
ETCD_REQUEST = Spec("corral_etcd_request_duration_seconds", "histogram", ("operation",),
                    "Time an etcd call took as its caller saw it (retries included), by "
                    "client operation (get, put, transaction...).")
API_SHED = Spec("corral_api_requests_shed_total", "counter", (),
                "Requests the API refused at once with 503 because as many as it serves at "
                "once (--max-in-flight) were in flight.")
API_IN_FLIGHT_LIMIT = Spec("corral_api_in_flight_limit", "gauge", (),
                           "Requests the API serves at once now: it follows their latency, "
                           "up to --max-in-flight; beyond it, 503.")
MANAGER_DECIDE = Spec("corral_manager_decide_duration_seconds", "histogram", (),
                      "Time the manager's pure decision step took, per pass, while this "
                      "host leads.")
MANAGER_PASS = Spec("corral_manager_pass_duration_seconds", "histogram", (),
                    "Time a whole manager pass took (read etcd, decide, apply), while this "
                    "host leads.")

# --- VMs' processes (each agent's /metrics, sampled at the scrape) --------------------------

VM_CPU_SECONDS = Spec("corral_vm_cpu_seconds_total", "counter", ("host", "vmid"),
                      "CPU time the VM's QEMU process has used (guest and emulation), "
                      "user and system.")
VM_RSS = Spec("corral_vm_memory_resident_bytes", "gauge", ("host", "vmid"),
              "Resident memory of the VM's QEMU process: what the guest has touched, plus "
              "QEMU's own.")
VM_DISK_READ = Spec("corral_vm_disk_read_bytes_total", "counter", ("host", "vmid"),
                    "Bytes the VM's QEMU process read from storage (the guest's disk reads "
                    "that missed the host's page cache).")
VM_DISK_WRITTEN = Spec("corral_vm_disk_written_bytes_total", "counter", ("host", "vmid"),
                       "Bytes the VM's QEMU process wrote to storage.")

CLUSTER = (HOST_UP, HOST_MAINTENANCE, HOST_CPUS, HOST_CPU_USAGE, HOST_MEMORY_USED,
           HOST_MEMORY_TOTAL, HOST_LOAD1, HOST_VMS_RUNNING, HOST_SAMPLED_AT, HOST_HA_STATUS,
           VM_INFO, VM_STATUS, VM_REQUESTED_RUNNING, VM_MEMORY, VM_CORES, VM_DISK,
           VM_HA_STATUS, VM_HA_RESTARTS, VM_HA_RELOCATES, VM_LAST_MIGRATION_BYTES,
           VM_LAST_MIGRATION_DOWNTIME, VMS, HA_VMS, HA_HOSTS, TASKS, TASKS_LAST_HOUR,
           TASK_DURATION,
           MIGRATION_BYTES, MIGRATION_DOWNTIME, UNREADABLE_RECORDS, SNAPSHOT_REVISION)
PROCESS = (API_REQUEST, API_SHED, API_IN_FLIGHT_LIMIT, ETCD_REQUEST, MANAGER_DECIDE, MANAGER_PASS)
VM_PROCESSES = (VM_CPU_SECONDS, VM_RSS, VM_DISK_READ, VM_DISK_WRITTEN)
ALL = CLUSTER + PROCESS + VM_PROCESSES
