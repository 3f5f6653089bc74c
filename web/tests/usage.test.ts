// The usage history's shaping for the charts (src/usage.ts), with Node's own test runner:
// `npm test` in web/ (Node strips the types; no other package is needed).
import assert from "node:assert/strict";
import { test } from "node:test";

import {
  CHARTS, chartsFor, describeStep, formatBytes, formatValue, latest, readHistory, shapeChart,
} from "../src/usage.ts";
import type { UsageHistory } from "../src/usage.ts";

const pair = (avg: (number | null)[], max: (number | null)[]) => ({ avg, max });

function host(): UsageHistory {
  const h = readHistory({
    range: "hour", step_seconds: 10, start: 1000, node: "n1", vmid: null,
    metrics: {
      cpu: pair([0.25, null, 0.5], [0.5, null, 1]),
      memory_used_bytes: pair([1024, 2048, null], [2048, 4096, null]),
      memory_total_bytes: pair([8192, 8192, 8192], [8192, 8192, 8192]),
      net_rx_bytes_per_s: pair([1, 2, 3], [1, 2, 3]),
      net_tx_bytes_per_s: pair([null, null, null], [null, null, null]),
      disk_read_bytes_per_s: pair([0, 0, 0], [0, 0, 0]),
      disk_write_bytes_per_s: pair([0, 0, 0], [0, 0, 0]),
      psi_cpu: pair([0.005, 0.015, null], [0.01, 0.02, 0.03]),
      psi_memory: pair([0, 0, 0], [0, 0, 0]),
      psi_io: pair([0, 0, 0], [0, 0, 0]),
    },
  });
  assert.equal(typeof h, "object");
  return h as UsageHistory;
}

test("x is each slot's unix time; cpu is drawn in per cent; a missing sample stays a gap", () => {
  const cpu = shapeChart(host(), CHARTS[0]!, "avg");
  assert.deepEqual(cpu.data, [[1000, 1010, 1020], [25, null, 50]]);
  assert.equal(cpu.empty, false);
  assert.deepEqual(shapeChart(host(), CHARTS[0]!, "max").data[1], [50, null, 100]);
});

test("memory draws used and total in bytes, in the spec's order", () => {
  const mem = shapeChart(host(), CHARTS.find((c) => c.id === "memory")!, "max");
  assert.deepEqual(mem.series.map((s) => s.label), ["used", "total"]);
  assert.deepEqual(mem.data.slice(1), [[2048, 4096, null], [8192, 8192, 8192]]);
});

test("pressure stall is a share of the time, drawn in per cent", () => {
  const psi = shapeChart(host(), CHARTS.find((c) => c.id === "psi")!, "avg");
  assert.deepEqual(psi.series.map((s) => s.label), ["cpu", "memory", "io"]);
  assert.deepEqual(psi.data[1], [0.5, 1.5, null]);
});

test("a VM's history has no pressure chart; a host's has all five", () => {
  const h = host();
  assert.deepEqual(chartsFor(h).map((c) => c.id), ["cpu", "memory", "network", "disk", "psi"]);
  const vm = { ...h, node: null, vmid: 101, metrics: { ...h.metrics } };
  delete vm.metrics.psi_cpu;
  delete vm.metrics.psi_memory;
  delete vm.metrics.psi_io;
  assert.deepEqual(chartsFor(vm).map((c) => c.id), ["cpu", "memory", "network", "disk"]);
});

test("a range with no sample at all is empty; short lists are padded with gaps", () => {
  const h = host();
  h.metrics.cpu = pair([null, null], [null, null]);
  const cpu = shapeChart(h, CHARTS[0]!, "max");
  assert.equal(cpu.empty, true);
  assert.deepEqual(cpu.data, [[1000, 1010], [null, null]]);
  h.metrics.memory_used_bytes = pair([1, 2], [1, 2]);
  const mem = shapeChart(h, CHARTS.find((c) => c.id === "memory")!, "avg");
  assert.deepEqual(mem.data[1], [1, 2, null]);
});

test("answers of the wrong shape are named, not drawn", () => {
  assert.equal(readHistory(null), "the answer is not an object");
  assert.match(String(readHistory({ range: "decade", step_seconds: 10, start: 0, metrics: {} })),
               /^range/);
  assert.match(String(readHistory({ range: "day", step_seconds: 0, start: 0, metrics: {} })),
               /^step_seconds/);
  assert.match(String(readHistory({ range: "day", step_seconds: 60, start: 0,
                                    metrics: { cpu: { avg: ["x"], max: [] } } })),
               /^metrics\.cpu/);
});

test("units read as an operator expects", () => {
  assert.equal(formatBytes(0), "0 B");
  assert.equal(formatBytes(1536), "1.50 KiB");
  assert.equal(formatBytes(3 * 1024 ** 3), "3.00 GiB");
  assert.equal(formatBytes(150 * 1024 ** 2), "150 MiB");
  assert.equal(formatValue("rate", 2048), "2.00 KiB/s");
  assert.equal(formatValue("percent", 42.25), "42 %");
  assert.equal(formatValue("stall", 1.25), "1.3 %");
  assert.equal(formatValue("percent", null), "—");
  assert.equal(latest([1, 2, null]), 2);
  assert.equal(latest([null]), null);
  assert.equal(describeStep(10), "10 s");
  assert.equal(describeStep(1800), "30 min");
  assert.equal(describeStep(86400), "1 d");
});
