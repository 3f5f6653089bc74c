// The console's pure functions on plain data, under Node's own test runner (Node strips the
// types; no package needed): `npm test` in web/, or tests/unit/test_web_pure.py.

import assert from "node:assert/strict";
import { test } from "node:test";

import {
  applyHA, applyNode, applyTask, applyVM, backoffMs, BACKOFF_MAX_MS,
} from "../src/events.ts";
import { parseRule } from "../src/haRules.ts";

const vm = (vmid: number, status = "running") => ({ vmid, name: `v${vmid}`, status }) as any;
const task = (id: string, created_at: number, state = "running") =>
  ({ id, created_at, state, vmid: 100 }) as any;

test("a VM event replaces its VM, adds a new one in vmid order, or removes it", () => {
  const vms = [vm(100), vm(102)];
  assert.deepEqual(applyVM(vms, { vmid: 101, vm: vm(101) }).map((v) => v.vmid), [100, 101, 102]);
  assert.equal(applyVM(vms, { vmid: 102, vm: vm(102, "paused") })[1].status, "paused");
  assert.deepEqual(applyVM(vms, { vmid: 100, deleted: true }).map((v) => v.vmid), [102]);
  assert.deepEqual(applyVM(vms, { vmid: 103, vm: vm(103) }).map((v) => v.vmid), [100, 102, 103]);
  assert.equal(vms.length, 2, "the list given is not changed");
});

test("a node event works by name", () => {
  const nodes = [{ name: "n1" }, { name: "n3" }] as any[];
  assert.deepEqual(applyNode(nodes, { name: "n2", node: { name: "n2" } as any }).map((n) => n.name),
                   ["n1", "n2", "n3"]);
  assert.deepEqual(applyNode(nodes, { name: "n1", deleted: true }).map((n) => n.name), ["n3"]);
});

test("tasks stay newest first and within the limit", () => {
  const tasks = [task("c", 30), task("b", 20), task("a", 10)];
  // A new task goes first and the oldest leaves.
  assert.deepEqual(applyTask(tasks, { id: "d", task: task("d", 40) }, 3).map((t) => t.id),
                   ["d", "c", "b"]);
  // An update keeps its place.
  const updated = applyTask(tasks, { id: "b", task: task("b", 20, "ok") }, 3);
  assert.deepEqual(updated.map((t) => `${t.id}:${t.state}`), ["c:running", "b:ok", "a:running"]);
  // One older than a full list was cut from it: it stays out.
  assert.deepEqual(applyTask(tasks, { id: "z", task: task("z", 5) }, 3).map((t) => t.id),
                   ["c", "b", "a"]);
  // ... but comes in when there is room.
  assert.deepEqual(applyTask(tasks, { id: "z", task: task("z", 5) }, 4).map((t) => t.id),
                   ["c", "b", "a", "z"]);
  assert.deepEqual(applyTask(tasks, { id: "b", deleted: true }, 3).map((t) => t.id), ["c", "a"]);
  // One a view does not keep (another VM's) leaves or stays out.
  const mine = (t: any) => t.vmid === 100;
  assert.deepEqual(applyTask(tasks, { id: "b", task: { ...task("b", 20), vmid: 7 } }, 3, mine)
    .map((t) => t.id), ["c", "a"]);
});

test("an HA event replaces, adds and removes rows and whole lists", () => {
  const report = {
    vms: [{ vmid: 100, status: "started" }, { vmid: 101, status: "started" }],
    nodes: [{ node: "n1", status: "online" }, { node: "n2", status: "online" }],
    unprotected: [], skipped: [],
  } as any;
  const next = applyHA(report, {
    vms: [{ vmid: 101, status: "error" } as any, { vmid: 99, status: "started" } as any],
    vms_removed: [100],
    nodes: [{ node: "n2", status: "fence" } as any],
    unprotected: [{ vmid: 105, node: "n2", status: "unknown" }],
  });
  assert.deepEqual(next.vms.map((r: any) => `${r.vmid}:${r.status}`), ["99:started", "101:error"]);
  assert.deepEqual(next.nodes.map((r: any) => `${r.node}:${r.status}`), ["n1:online", "n2:fence"]);
  assert.equal(next.unprotected.length, 1);
  assert.equal(next.skipped, report.skipped, "a list the event leaves out stays");
});

test("reconnects wait 1 s doubling up to 30 s, spread by a fifth at most", () => {
  assert.deepEqual([0, 1, 2, 3, 4, 5, 6, 60].map((a) => backoffMs(a, 0)),
                   [1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000]);
  assert.equal(backoffMs(0, 1), 1200);
  assert.equal(backoffMs(0, -1), 800);
  assert.equal(backoffMs(9, 5), BACKOFF_MAX_MS * 1.2, "jitter is clamped");
});

test("the rule form names the field it cannot read", () => {
  const form = { name: " web-apart ", kind: "anti-affinity", vms: "100, 101", nodes: "n1",
                 strict: true, failback: false } as const;
  assert.deepEqual(parseRule(form), { rule: { name: "web-apart", kind: "anti-affinity",
    vms: [100, 101], nodes: {}, strict: false, failback: true } });
  assert.deepEqual(parseRule({ ...form, vms: "100 web1" }),
                   { error: 'vms: "web1" is not a VM id', field: "vms" });
  const pref = parseRule({ ...form, kind: "node-preference", nodes: "n1:2, n2" });
  assert.deepEqual(pref, { rule: { name: "web-apart", kind: "node-preference", vms: [100, 101],
    nodes: { n1: 2, n2: 1 }, strict: true, failback: false } });
  assert.equal((parseRule({ ...form, kind: "node-preference", nodes: "n1:x" }) as any).field,
               "nodes");
});
