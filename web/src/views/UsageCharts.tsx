// Usage history charts of a host or a VM: CPU, memory, network, disk I/O and (hosts) pressure
// stall, over an hour, day, week, month or year, average or maximum per slot. The data comes
// from GET /nodes/{n}/usage or /vms/{id}/usage; shaping is in usage.ts, drawing is uPlot's.

import { useMemo, useState } from "preact/hooks";

import { useFollow } from "../follow";
import {
  chartsFor, type Consolidation, describeStep, formatValue, latest, RANGES, readHistory,
  shapeChart, type UsageRange,
} from "../usage";
import { UPlotChart } from "./Chart";

export function UsageCharts({ node, vmid }: { node?: string; vmid?: number }) {
  const [range, setRange] = useState<UsageRange>("hour");
  const [mode, setMode] = useState<Consolidation>("avg");
  const base = vmid !== undefined ? `/vms/${vmid}/usage`
    : `/nodes/${encodeURIComponent(node ?? "")}/usage`;
  // Slots are 10 s at the finest: reading more often than that shows nothing new.
  const { data, error, loaded } = useFollow<unknown>(`${base}?range=${range}`, 10_000);
  const history = useMemo(() => (data === null ? null : readHistory(data)), [data]);
  const charts = useMemo(
    () => (history && typeof history !== "string"
      ? chartsFor(history).map((spec) => shapeChart(history, spec, mode)) : []),
    [history, mode]);

  let body;
  if (error?.status === 404 && !history) {
    body = <p class="muted" data-testid="usage-none">No usage history yet.</p>;
  } else if (error && !history) {
    body = <p class="error" data-testid="usage-error">Usage ({base}): {error.describe()}</p>;
  } else if (!loaded || history === null) {
    body = <p class="muted">loading…</p>;
  } else if (typeof history === "string") {
    body = <p class="error" data-testid="usage-error">Usage ({base}) has an unexpected shape: {history}</p>;
  } else if (charts.length === 0) {
    body = <p class="muted" data-testid="usage-none">No usage history yet.</p>;
  } else {
    body = (
      <div class="charts">
        {charts.map((c) => (
          <figure class="chart-box" key={c.spec.id}>
            <figcaption>
              {c.spec.title}
              {c.empty ? <span class="muted small"> · no samples in this range</span> : (
                <span class="muted small" data-testid={`latest-${c.spec.id}`}>
                  {" · last: "}
                  {c.series.map((s, i) =>
                    `${s.label} ${formatValue(c.spec.unit, latest(c.data[i + 1] ?? []))}`).join(", ")}
                </span>
              )}
            </figcaption>
            <UPlotChart shaped={c} />
          </figure>
        ))}
      </div>
    );
  }

  return (
    <section class="card wide usage" data-testid="usage">
      <div class="card-head">
        <h3>Usage</h3>
        <span class="spacer" />
        <div class="segmented" role="group" aria-label="time range">
          {RANGES.map((r) => (
            <button type="button" key={r} aria-pressed={r === range}
                    class={r === range ? "on" : ""} onClick={() => setRange(r)}>
              {r}
            </button>
          ))}
        </div>
        <div class="segmented" role="group" aria-label="consolidation">
          {(["avg", "max"] as const).map((m) => (
            <button type="button" key={m} aria-pressed={m === mode}
                    class={m === mode ? "on" : ""} onClick={() => setMode(m)}>
              {m === "avg" ? "average" : "maximum"}
            </button>
          ))}
        </div>
      </div>
      {history && typeof history !== "string" && (
        <p class="muted small">
          {describeStep(history.step_seconds)} per point, {mode === "avg" ? "average" : "maximum"}
          {" "}of each slot
          {error ? <span class="error-text"> · last refresh failed: {error.describe()}</span> : null}
        </p>
      )}
      {body}
    </section>
  );
}
