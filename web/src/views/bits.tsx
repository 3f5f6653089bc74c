// Small pieces the views share: state icons, usage bars, API error lines.

import type { ApiError } from "../api";
import type { Source } from "../store";

const SOURCE_LABEL: Record<Source, string> = {
  nodes: "Hosts (GET /api/v1/nodes)",
  vms: "VMs (GET /api/v1/vms)",
  ha: "HA (GET /api/v1/ha/status)",
  tasks: "Tasks (GET /api/v1/tasks)",
  cluster: "Cluster (GET /api/v1/cluster/status)",
};

/** A coloured mark for a host or VM state; its name is the accessible label. */
export function StateIcon({ state }: { state: string }) {
  return <span class={`state-icon s-${state}`} role="img" aria-label={state} title={state} />;
}

/** A thin bar of `value` out of 0..1, for the tree and the hosts table. */
export function MiniBar({ value, label }: { value: number | null; label: string }) {
  const pct = value === null ? 0 : Math.max(0, Math.min(1, value)) * 100;
  const level = pct >= 90 ? "high" : pct >= 70 ? "mid" : "low";
  return (
    <span class="minibar" title={value === null ? `${label}: no sample` : `${label}: ${Math.round(pct)}%`}>
      <span class={`minibar-fill ${level}`} style={{ width: `${pct}%` }} />
    </span>
  );
}

export function ApiErrors({ errors, only }: {
  errors: Partial<Record<Source, ApiError>>;
  only?: Source[];
}) {
  const shown = (Object.entries(errors) as [Source, ApiError][])
    .filter(([k]) => !only || only.includes(k));
  if (shown.length === 0) return null;
  return (
    <div class="errors" role="alert">
      {shown.map(([k, e]) => (
        <p class="error" key={k} data-testid="api-error">
          <strong>{SOURCE_LABEL[k]}</strong>: {e.describe()}
        </p>
      ))}
    </div>
  );
}
