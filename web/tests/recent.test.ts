// The dashboard's recent events in words, from the item before and after a stream event.

import assert from "node:assert/strict";
import { test } from "node:test";

import { haChange, nodeChange, remember, vmChange } from "../src/recent.ts";

const vm = (status: string, node = "n1") => ({ vmid: 101, name: "web", status, node }) as any;
const host = (online: boolean, maintenance = false) =>
  ({ name: "n2", online, maintenance }) as any;

test("a VM's status change, move, creation and deletion are told; anything else is not", () => {
  assert.equal(vmChange(vm("running"), vm("paused"), 1)?.text, "VM 101 web: running → paused");
  assert.equal(vmChange(vm("running"), vm("paused"), 1)?.tone, "warn");
  assert.equal(vmChange(vm("running"), vm("running", "n2"), 1)?.text,
               "VM 101 web moved n1 → n2");
  assert.equal(vmChange(undefined, vm("stopped"), 1)?.text, "VM 101 web created on n1");
  assert.equal(vmChange(vm("stopped"), undefined, 1)?.text, "VM 101 web deleted");
  assert.equal(vmChange(vm("running"), { ...vm("running"), pid: 7 }, 1), null);
});

test("a host going offline, into and out of maintenance", () => {
  assert.equal(nodeChange(host(true), host(false), 1)?.text, "host n2 offline");
  assert.equal(nodeChange(host(true), host(false), 1)?.tone, "bad");
  assert.equal(nodeChange(host(true), host(true, true), 1)?.text, "host n2 entered maintenance");
  assert.equal(nodeChange(host(true, true), host(true), 1)?.text, "host n2 left maintenance");
  assert.equal(nodeChange(host(false), host(true), 1)?.text, "host n2 online");
  assert.equal(nodeChange(host(true), { ...host(true), usage: {} }, 1), null);
});

test("an HA error carries the manager's reason", () => {
  const row = (status: string, reason = "") => ({ vmid: 101, status, reason }) as any;
  assert.equal(haChange(row("started"), row("error", "start failed twice"), 1)?.text,
               "VM 101 HA started → error: start failed twice");
  assert.equal(haChange(undefined, row("started"), 1), null);
});

test("the newest first, at most the limit, the list unchanged when nothing was told", () => {
  const e = (n: number) => ({ at: n, target: { vmid: n }, text: `e${n}`, tone: "" }) as const;
  const list = [e(2), e(1)];
  assert.equal(remember(list, [null]), list);
  assert.deepEqual(remember(list, [e(3), null, e(4)], 3).map((x) => x.text), ["e4", "e3", "e2"]);
});
