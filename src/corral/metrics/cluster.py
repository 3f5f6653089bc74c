"""The cluster's state as Prometheus metric families: a pure function of one snapshot and
the HA inputs read with it, so it runs on whatever view of the cluster the caller holds."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from prometheus_client.core import GaugeHistogramMetricFamily, GaugeMetricFamily, Metric

from corral.cluster.models import RunState, Task, TaskState, VMStatus
from corral.cluster.snapshot import ClusterSnapshot
from corral.cluster.vm_status import shown_status
from corral.ha.models import HAInputs, NodeStatusHA, VMStatusHA
from corral.ha.status import HAReport, ha_status
from corral.metrics import names
from corral.metrics.names import Spec

MB = 1024 * 1024
HOUR = 3600.0
MIGRATE_KIND = "vm.migrate"
# `corral ha status` shows these besides the manager's own statuses: an HA VM the manager has
# not looked at yet, and one whose record does not decode.
VM_HA_STATUSES = (*(s.value for s in VMStatusHA), "pending", "unreadable")
HOST_HA_STATUSES = tuple(s.value for s in NodeStatusHA)
VM_STATUSES = tuple(s.value for s in VMStatus)


@dataclass(frozen=True)
class Migration:
    """What a successful vm.migrate task reports of its move."""

    vmid: int
    mode: str
    bytes: float
    pause_seconds: float | None  # live only
    ended_at: float


def cluster_metrics(snap: ClusterSnapshot, ha: HAInputs) -> list[Metric]:
    report = ha_status(snap, ha)
    return [*_hosts(snap, report), *_vms(snap, report), *_tasks(snap.tasks, snap.now),
            *_migrations(snap), _single(names.UNREADABLE_RECORDS,
                                        len(snap.problems) + len(ha.problems)),
            _single(names.SNAPSHOT_REVISION, snap.revision)]


def _gauge(spec: Spec) -> GaugeMetricFamily:
    return GaugeMetricFamily(spec.name, spec.help, labels=spec.labels)


def _single(spec: Spec, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(spec.name, spec.help, value=value)


def _current(family: GaugeMetricFamily, labels: Sequence[str], state: str) -> None:
    """The current state only, as 1. A full state set (a 0 for every other state) would
    multiply the series of each VM by up to 13, most of the output of a large cluster; the
    counts by state (`corral_vms`, `corral_ha_vms`, `corral_ha_hosts`) have every state."""
    family.add_metric([*labels, state], 1.0)


def _hosts(snap: ClusterSnapshot, report: HAReport) -> list[Metric]:
    up, maint, cpus = _gauge(names.HOST_UP), _gauge(names.HOST_MAINTENANCE), \
        _gauge(names.HOST_CPUS)
    cpu, used, total = (_gauge(names.HOST_CPU_USAGE), _gauge(names.HOST_MEMORY_USED),
                        _gauge(names.HOST_MEMORY_TOTAL))
    load, running, sampled = (_gauge(names.HOST_LOAD1), _gauge(names.HOST_VMS_RUNNING),
                              _gauge(names.HOST_SAMPLED_AT))
    ha_state, ha_counts = _gauge(names.HOST_HA_STATUS), _gauge(names.HA_HOSTS)
    for name, node in sorted(snap.nodes.items()):
        up.add_metric([name], float(node.alive))
        maint.add_metric([name], float(snap.in_maintenance(name)))
        if node.info is not None:
            cpus.add_metric([name], node.info.cpus)
        if (u := node.usage) is not None:
            cpu.add_metric([name], u.cpu)
            used.add_metric([name], u.memory_used_mb * MB)
            total.add_metric([name], u.memory_total_mb * MB)
            load.add_metric([name], u.load1)
            running.add_metric([name], u.vms_running)
            sampled.add_metric([name], u.sampled_at)
    counts = Counter[str]()
    for row in report.nodes:
        _current(ha_state, [row.node], row.status)
        counts[row.status] += 1
    for status in HOST_HA_STATUSES:
        ha_counts.add_metric([status], counts[status])
    return [up, maint, cpus, cpu, used, total, load, running, sampled, ha_state, ha_counts]


def _vms(snap: ClusterSnapshot, report: HAReport) -> list[Metric]:
    info, status, requested = (_gauge(names.VM_INFO), _gauge(names.VM_STATUS),
                               _gauge(names.VM_REQUESTED_RUNNING))
    memory, cores, disk = _gauge(names.VM_MEMORY), _gauge(names.VM_CORES), \
        _gauge(names.VM_DISK)
    counts = Counter[str]()
    online = {n.name for n in snap.nodes.values() if n.alive}
    for vmid, vm in sorted(snap.vms.items()):
        ids = [str(vmid), vm.config.name]
        info.add_metric([*ids, vm.placement.node], 1.0)
        shown = shown_status(vm, vm.placement.node in online)[0].value  # as the API says
        _current(status, ids, shown)
        counts[shown] += 1
        requested.add_metric(ids, float(vm.placement.state is not RunState.STOPPED))
        memory.add_metric(ids, vm.config.memory_mb * MB)
        cores.add_metric(ids, vm.config.cores)
        disk.add_metric(ids, sum(d.size_mb for d in vm.config.disks) * MB)
    by_status = _gauge(names.VMS)
    for s in VM_STATUSES:
        by_status.add_metric([s], counts[s])
    return [info, status, requested, memory, cores, disk, by_status, *_ha_vms(report)]


def _ha_vms(report: HAReport) -> list[Metric]:
    state, restarts, relocates = (_gauge(names.VM_HA_STATUS), _gauge(names.VM_HA_RESTARTS),
                                  _gauge(names.VM_HA_RELOCATES))
    counts = Counter[str]()
    for row in report.vms:
        ids = [str(row.vmid), row.name or ""]
        _current(state, ids, row.status)
        restarts.add_metric(ids, row.restarts)
        relocates.add_metric(ids, row.relocates)
        counts[row.status] += 1
    by_status = _gauge(names.HA_VMS)
    for s in VM_HA_STATUSES:
        by_status.add_metric([s], counts[s])
    return [state, restarts, relocates, by_status]


def run_time(task: Task) -> float | None:
    """Start to end of a finished task; None for one that never started (or has no end)."""
    if not task.state.finished or task.started_at is None or task.ended_at is None:
        return None
    return max(0.0, task.ended_at - task.started_at)


def _tasks(tasks: list[Task], now: float) -> list[Metric]:
    counts = Counter((t.kind, t.state.value) for t in tasks)
    by_state = _gauge(names.TASKS)
    for (kind, state), n in sorted(counts.items()):
        by_state.add_metric([kind, state], n)
    # Finished tasks are pruned after a day, so a count of them falls as well as rises and
    # rate() over it would be wrong; the tasks that ended in the last hour are a rate as such.
    recent = Counter((t.kind, t.state.value) for t in tasks if t.state.finished
                     and t.ended_at is not None and 0 <= now - t.ended_at <= HOUR)
    last_hour = _gauge(names.TASKS_LAST_HOUR)
    for (kind, state), n in sorted(recent.items()):
        last_hour.add_metric([kind, state], n)
    durations: dict[tuple[str, str], list[float]] = {}
    for t in tasks:
        if (d := run_time(t)) is not None:
            durations.setdefault((t.kind, t.state.value), []).append(d)
    histogram = GaugeHistogramMetricFamily(names.TASK_DURATION.name, names.TASK_DURATION.help,
                                           labels=names.TASK_DURATION.labels)
    for labels, values in sorted(durations.items()):
        _add_histogram(histogram, labels, values, names.TASK_BUCKETS)
    return [by_state, last_hour, histogram]


def buckets(values: Sequence[float], bounds: Sequence[float]) -> list[tuple[str, float]]:
    """Cumulative counts at each bound, then +Inf: Prometheus's `le` buckets."""
    upper = [*bounds, math.inf]
    return [(_bound(b), float(sum(1 for v in values if v <= b))) for b in upper]


def _bound(b: float) -> str:
    return "+Inf" if math.isinf(b) else repr(float(b))


def _add_histogram(family: GaugeHistogramMetricFamily, labels: Sequence[str],
                   values: Sequence[float], bounds: Sequence[float]) -> None:
    family.add_metric(list(labels), buckets(values, bounds), float(sum(values)))


def migration_of(task: Task) -> Migration | None:
    """The figures of a successful vm.migrate task (see migration/source.py `result`)."""
    if task.kind != MIGRATE_KIND or task.state is not TaskState.OK or task.vmid is None:
        return None
    r = task.result
    mode, moved = r.get("mode"), r.get("bytes")
    if not isinstance(mode, str) or not isinstance(moved, int | float):
        return None
    pause = r.get("pause_ms", r.get("downtime_ms")) if mode == "live" else None
    return Migration(vmid=task.vmid, mode=mode, bytes=float(moved),
                     pause_seconds=pause / 1000 if isinstance(pause, int | float) else None,
                     ended_at=task.ended_at or task.created_at)


def _migrations(snap: ClusterSnapshot) -> list[Metric]:
    moves = sorted((m for t in snap.tasks if (m := migration_of(t)) is not None),
                   key=lambda m: m.ended_at)
    by_mode: dict[str, list[float]] = {}
    for m in moves:
        by_mode.setdefault(m.mode, []).append(m.bytes)
    moved = GaugeHistogramMetricFamily(names.MIGRATION_BYTES.name, names.MIGRATION_BYTES.help,
                                       labels=names.MIGRATION_BYTES.labels)
    for mode, values in sorted(by_mode.items()):
        _add_histogram(moved, [mode], values, names.MIGRATION_BYTES_BUCKETS)
    pauses = [m.pause_seconds for m in moves if m.pause_seconds is not None]
    downtime = GaugeHistogramMetricFamily(names.MIGRATION_DOWNTIME.name,
                                          names.MIGRATION_DOWNTIME.help)
    _add_histogram(downtime, [], pauses, names.DOWNTIME_BUCKETS)
    latest = {m.vmid: m for m in moves}  # sorted by end: the last one wins
    last_bytes = _gauge(names.VM_LAST_MIGRATION_BYTES)
    last_pause = _gauge(names.VM_LAST_MIGRATION_DOWNTIME)
    for vmid, m in sorted(latest.items()):
        vm = snap.vms.get(vmid)
        if vm is None:  # deleted since: its figures go with it
            continue
        last_bytes.add_metric([str(vmid), vm.config.name, m.mode], m.bytes)
        if m.pause_seconds is not None:
            last_pause.add_metric([str(vmid), vm.config.name], m.pause_seconds)
    return [moved, downtime, last_bytes, last_pause]
