// The host page's pure decisions (src/hostpage.ts), with Node's own test runner.
import assert from "node:assert/strict";
import { test } from "node:test";

import {
  bulkBody, filterVMs, formatDuration, jobRows, maintenanceProgress, maintenanceRows,
  skipReason, statusLines, targets, vmRows,
} from "../src/hostpage.ts";
import type { BulkForm, MaintenanceStatus, TaskRecord } from "../src/hostpage.ts";
import type { Node, VM } from "../src/types.ts";

function node(name: string, over: Partial<Node> = {}): Node {
  return {
    name, online: true, cpus: 4, memory_mb: 8192, accel: "kvm", address: "10.0.0.1",
    versions: { corral: "0.1.0", qemu: "7.2" }, started_at: 1000,
    usage: { cpu: 0.25, memory_used_mb: 2048, memory_total_mb: 8192, load1: 2,
             vms_running: 1, sampled_at: 1000 + 3600 },
    maintenance: false, vms: 2, vms_running: 1, ...over,
  };
}

function vm(vmid: number, name: string, state: VM["state"], host = "n1"): VM {
  return { vmid, name, node: host, state, status: state, memory_mb: 128, cores: 1,
           image: null, description: "", pid: null, accel: null, started_at: null, message: "" };
}

test("status lines say what the agents report and what they do not", () => {
  const lines = Object.fromEntries(statusLines(node("n1"), 1000 + 3600 + 5).map((l) => [l.id, l]));
  assert.equal(lines.cpu!.value, "4 cpus · 25 % busy");
  assert.equal(lines.cpu!.share, 0.25);
  assert.equal(lines.load!.value, "2.00 (1 min) on 4 cpus");
  assert.equal(lines.memory!.value, "2.0 GiB of 8.0 GiB used");
  assert.match(lines.uptime!.value, /^1 h 0 min/);
  assert.equal(lines.versions!.value, "corral 0.1.0 · qemu 7.2");
  assert.equal(lines.accel!.value, "kvm");
  assert.match(lines.disk!.value, /not reported/);
  const withDisk = node("n1");
  withDisk.usage = { ...withDisk.usage!, disk_used_mb: 2048, disk_total_mb: 8192 };
  const disk = statusLines(withDisk, 5000).find((l) => l.id === "disk")!;
  assert.equal(disk.value, "2.0 GiB of 8.0 GiB used (data directory)");
  assert.equal(disk.share, 0.25);
  const off = Object.fromEntries(statusLines(node("n3", { online: false }), 5000).map((l) => [l.id, l]));
  assert.equal(off.uptime!.value, "offline");
  assert.equal(off.memory!.value, "8.0 GiB, no sample");
  assert.equal(formatDuration(90061), "1 d 1 h");
  assert.equal(formatDuration(59), "59 s");
});

test("the bulk dialog's VMs: HA state joined, filters by words, state and HA", () => {
  const vms = [vm(101, "web1", "running"), vm(102, "db1", "stopped"), vm(103, "web2", "paused"),
               vm(200, "elsewhere", "running", "n2")];
  const ha = { vms: [{ vmid: 101, name: "web1", requested: "started", status: "started",
                       node: "n1", reason: "" }], nodes: [] };
  const rows = vmRows(vms, ha, "n1");
  assert.deepEqual(rows.map((r) => [r.vmid, r.ha]), [[101, "started"], [102, "none"], [103, "none"]]);
  assert.deepEqual(filterVMs(rows, { text: "web", status: "", ha: "" }).map((r) => r.vmid), [101, 103]);
  assert.deepEqual(filterVMs(rows, { text: "web", status: "paused", ha: "" }).map((r) => r.vmid), [103]);
  assert.deepEqual(filterVMs(rows, { text: "", status: "", ha: "started" }).map((r) => r.vmid), [101]);
  assert.deepEqual(filterVMs(rows, { text: "10 1", status: "", ha: "" }).map((r) => r.vmid), [101, 102, 103]);
  assert.equal(skipReason("start", rows[0]!), "already running");
  assert.equal(skipReason("start", rows[1]!), null);
  assert.equal(skipReason("shutdown", rows[1]!), "not running");
  assert.equal(skipReason("suspend", rows[2]!), "already paused");
  assert.equal(skipReason("migrate", rows[1]!), null);
});

test("the bulk request names the wrong field, as the API does", () => {
  const form: BulkForm = { action: "shutdown", target: "", parallel: "2", withLocalDisks: false,
                           forceAfter: "60", selected: [103, 101] };
  assert.deepEqual(bulkBody(form, "n1"),
                   { action: "shutdown", parallel: 2, vms: [101, 103], timeout: 60 });
  assert.equal((bulkBody({ ...form, parallel: "0" }, "n1") as { field: string }).field, "parallel");
  assert.equal((bulkBody({ ...form, parallel: "1.5" }, "n1") as { field: string }).field, "parallel");
  assert.equal((bulkBody({ ...form, forceAfter: "x" }, "n1") as { field: string }).field, "timeout");
  assert.equal((bulkBody({ ...form, selected: [] }, "n1") as { field: string }).field, "vms");
  const mig: BulkForm = { ...form, action: "migrate", target: "n1" };
  assert.equal((bulkBody(mig, "n1") as { field: string }).field, "target");
  assert.deepEqual(bulkBody({ ...mig, target: "n2", withLocalDisks: true }, "n1"),
                   { action: "migrate", parallel: 2, vms: [101, 103], target: "n2",
                     with_local_disks: true });
  assert.deepEqual(targets([node("n1"), node("n2"), node("n3", { online: false }),
                            node("n4", { maintenance: true })], "n1"),
                   [{ name: "n2", refusal: null }, { name: "n3", refusal: "offline" },
                    { name: "n4", refusal: "in maintenance" }]);
});

function task(over: Partial<TaskRecord>): TaskRecord {
  return { id: "t", kind: "vm.start", node: "n1", vmid: null, state: "queued", progress: 0,
           created_at: 0, started_at: null, ended_at: null, error: null, ...over };
}

test("a bulk job's lines: each VM's phase, and only what has not begun can be cancelled", () => {
  const parent = task({ id: "b1", kind: "node.bulk", state: "running",
    params: { action: "migrate", target: "n2", vms: null },
    result: { plan: [101, 102, 103, 104, 105, 106], succeeded: [101], skipped: { "107": "now on n3" },
              failed: { "105": "not enough memory on n2" }, cancelled: { "106": "cancelled" } } });
  const children = [
    task({ id: "b1-101", vmid: 101, state: "ok", kind: "vm.migrate" }),
    task({ id: "b1-102", vmid: 102, state: "running", progress: 0.4, kind: "vm.migrate",
           log: ["ram 40 %"] }),
    task({ id: "b1-103", vmid: 103, state: "queued", kind: "vm.migrate" }),
  ];
  const rows = jobRows(parent, children);
  assert.deepEqual(rows.map((r) => [r.vmid, r.phase, r.cancellable]), [
    [101, "ok", false], [102, "running", false], [103, "queued", true],
    [104, "waiting", true], [105, "failed", false], [106, "cancelled", false],
    [107, "skipped", false]]);
  assert.equal(rows[1]!.progress, 0.4);
  assert.equal(rows[1]!.detail, "ram 40 %");
  assert.equal(rows[4]!.detail, "not enough memory on n2");
  const ended = jobRows({ ...parent, state: "error" }, children);
  assert.equal(ended.find((r) => r.vmid === 104)!.cancellable, false);
  const unplanned = jobRows(task({ id: "b2", kind: "node.bulk", params: { vms: [5, 6] } }), []);
  assert.deepEqual(unplanned.map((r) => [r.vmid, r.detail]),
                   [[5, "waiting for the manager"], [6, "waiting for the manager"]]);
  const cancelledChild = task({ id: "b1-104", vmid: 104, state: "error", error: "cancelled by the operator",
                                result: { cancelled: true } });
  assert.equal(jobRows(parent, [cancelledChild]).find((r) => r.vmid === 104)!.phase, "cancelled");
});

test("maintenance lines carry each VM's reason, and the progress counts what left", () => {
  const s: MaintenanceStatus = {
    node: "n1", state: "evacuating", enabled: true, no_return: false, parallel: 2,
    to_move: [104], moving: [102], away: [101], staying: [105], stopped: [], stuck: { "103": "no host has room" },
  };
  assert.deepEqual(maintenanceRows(s).map((r) => [r.vmid, r.phase]), [
    [101, "moved away"], [102, "moving away"], [103, "cannot move"], [104, "waiting to move"],
    [105, "stays"]]);
  assert.equal(maintenanceRows(s).find((r) => r.vmid === 103)!.reason, "no host has room");
  assert.deepEqual(maintenanceProgress(s),
                   { done: 2, total: 5, label: "1 of 5 VM(s) moved away, 1 cannot move" });
  const back: MaintenanceStatus = { ...s, state: "returning", enabled: false, to_move: [101],
                                    moving: [102], away: [], staying: [], stuck: {} };
  assert.equal(maintenanceProgress(back)!.label, "2 VM(s) still to come back");
  assert.equal(maintenanceRows(back)[1]!.phase, "returning");
  assert.equal(maintenanceProgress({ ...back, state: "off", to_move: [], moving: [] }), null);
});
