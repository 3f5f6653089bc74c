// The usage history of a host or VM (GET /nodes/{n}/usage, /vms/{id}/usage) shaped for
// uPlot: one x list of slot times, one y list per series, null where no sample was kept (a
// gap in the line, never a zero). Pure functions with no imports, so `node --test` runs
// their tests as they are (web/tests/).

export type UsageRange = "hour" | "day" | "week" | "month" | "year";
export const RANGES: readonly UsageRange[] = ["hour", "day", "week", "month", "year"];
export type Consolidation = "avg" | "max";

export type MetricKey =
  | "cpu" | "memory_used_bytes" | "memory_total_bytes"
  | "disk_read_bytes_per_s" | "disk_write_bytes_per_s"
  | "net_rx_bytes_per_s" | "net_tx_bytes_per_s"
  | "psi_cpu" | "psi_memory" | "psi_io";

export type Values = (number | null)[];
export interface SeriesPair { avg: Values; max: Values }

export interface UsageHistory {
  range: UsageRange;
  step_seconds: number;
  start: number; // unix seconds of the first slot
  node: string | null;
  vmid: number | null;
  metrics: Partial<Record<MetricKey, SeriesPair>>; // a VM has no psi_*
}

// "percent": a fraction 0..1 drawn as 0..100 % on a 0..100 axis; "stall": pressure stall, the
// share 0..1 of the time some task waited (/proc/pressure), drawn in per cent on an axis that
// fits the values (stalls of a few per cent would be flat on a 0..100 one).
export type Unit = "percent" | "stall" | "bytes" | "rate";

export interface SeriesSpec { key: MetricKey; label: string; color: string }
export interface ChartSpec { id: string; title: string; unit: Unit; series: SeriesSpec[] }

// Mid-tone colours that read on the light and on the dark theme alike.
const BLUE = "#3b82f6";
const AMBER = "#f59e0b";
const GREEN = "#10b981";
const VIOLET = "#a855f7";

export const CHARTS: readonly ChartSpec[] = [
  { id: "cpu", title: "CPU", unit: "percent",
    series: [{ key: "cpu", label: "CPU", color: BLUE }] },
  { id: "memory", title: "Memory", unit: "bytes",
    series: [{ key: "memory_used_bytes", label: "used", color: BLUE },
             { key: "memory_total_bytes", label: "total", color: VIOLET }] },
  { id: "network", title: "Network", unit: "rate",
    series: [{ key: "net_rx_bytes_per_s", label: "in", color: GREEN },
             { key: "net_tx_bytes_per_s", label: "out", color: AMBER }] },
  { id: "disk", title: "Disk I/O", unit: "rate",
    series: [{ key: "disk_read_bytes_per_s", label: "read", color: GREEN },
             { key: "disk_write_bytes_per_s", label: "write", color: AMBER }] },
  { id: "psi", title: "Pressure stall", unit: "stall",
    series: [{ key: "psi_cpu", label: "cpu", color: BLUE },
             { key: "psi_memory", label: "memory", color: VIOLET },
             { key: "psi_io", label: "io", color: AMBER }] },
];

function isValues(v: unknown): v is Values {
  return Array.isArray(v) && v.every((x) => x === null || typeof x === "number");
}

/** The answer checked against the shape the console draws; a string says what is wrong. */
export function readHistory(body: unknown): UsageHistory | string {
  if (typeof body !== "object" || body === null) return "the answer is not an object";
  const b = body as Record<string, unknown>;
  if (typeof b.range !== "string" || !(RANGES as readonly string[]).includes(b.range)) {
    return `range: unknown value ${JSON.stringify(b.range)}`;
  }
  if (typeof b.step_seconds !== "number" || !(b.step_seconds > 0)) {
    return "step_seconds: not a positive number";
  }
  if (typeof b.start !== "number" || !Number.isFinite(b.start)) return "start: not a number";
  if (typeof b.metrics !== "object" || b.metrics === null) return "metrics: not an object";
  const metrics: Partial<Record<MetricKey, SeriesPair>> = {};
  for (const [key, pair] of Object.entries(b.metrics as Record<string, unknown>)) {
    const p = pair as Record<string, unknown> | null;
    if (!p || !isValues(p.avg) || !isValues(p.max)) {
      return `metrics.${key}: expected {"avg": [...], "max": [...]} of numbers or null`;
    }
    metrics[key as MetricKey] = { avg: p.avg, max: p.max };
  }
  return {
    range: b.range as UsageRange,
    step_seconds: b.step_seconds,
    start: b.start,
    node: typeof b.node === "string" ? b.node : null,
    vmid: typeof b.vmid === "number" ? b.vmid : null,
    metrics,
  };
}

/** The charts this history has data lists for (a VM's has no pressure stall). */
export function chartsFor(history: UsageHistory): ChartSpec[] {
  return CHARTS.filter((c) => c.series.some((s) => history.metrics[s.key] !== undefined));
}

function scaled(unit: Unit, v: number | null): number | null {
  if (v === null || !Number.isFinite(v)) return null;
  return unit === "percent" || unit === "stall" ? v * 100 : v;
}

export type AlignedData = [number[], ...Values[]];

export interface ShapedChart {
  spec: ChartSpec;
  series: SeriesSpec[]; // those present in the answer, in data's order after x
  data: AlignedData;
  empty: boolean; // no sample at all in the range
}

/** One chart's uPlot data: x = each slot's unix time, then one list per series present. */
export function shapeChart(history: UsageHistory, spec: ChartSpec,
                           mode: Consolidation): ShapedChart {
  const series = spec.series.filter((s) => history.metrics[s.key] !== undefined);
  const lists = series.map((s) => history.metrics[s.key]![mode]);
  const n = Math.max(0, ...lists.map((l) => l.length));
  const xs = Array.from({ length: n }, (_, i) => history.start + i * history.step_seconds);
  // A shorter list (it should not be) is padded with gaps, never stretched.
  const ys = lists.map((l) => xs.map((_, i) => scaled(spec.unit, l[i] ?? null)));
  return { spec, series, data: [xs, ...ys], empty: ys.every((y) => y.every((v) => v === null)) };
}

/** The newest value of a list (what the legend shows when the cursor is away). */
export function latest(values: Values): number | null {
  for (let i = values.length - 1; i >= 0; i--) {
    const v = values[i];
    if (v !== null && v !== undefined) return v;
  }
  return null;
}

const BINARY = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];

export function formatBytes(n: number): string {
  let v = Math.abs(n);
  let i = 0;
  while (v >= 1024 && i < BINARY.length - 1) {
    v /= 1024;
    i += 1;
  }
  const digits = i === 0 || v >= 100 ? 0 : v >= 10 ? 1 : 2;
  return `${n < 0 ? "-" : ""}${v.toFixed(digits)} ${BINARY[i]}`;
}

/** A drawn value (after scaling) with its unit, for axes and legends. */
export function formatValue(unit: Unit, v: number | null): string {
  if (v === null || !Number.isFinite(v)) return "—";
  switch (unit) {
    case "percent":
    case "stall":
      return `${v >= 10 || v === 0 ? v.toFixed(0) : v.toFixed(1)} %`;
    case "bytes":
      return formatBytes(v);
    case "rate":
      return `${formatBytes(v)}/s`;
  }
}

/** How long the range is and how fine its slots are, for the picker's hint. */
export function describeStep(seconds: number): string {
  if (seconds < 60) return `${seconds} s`;
  if (seconds < 3600) return `${Math.round(seconds / 60)} min`;
  if (seconds < 86400) return `${Math.round(seconds / 3600)} h`;
  return `${Math.round(seconds / 86400)} d`;
}
