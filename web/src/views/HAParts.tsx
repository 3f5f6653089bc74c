// HA pieces the VM page and the HA page share: a VM's HA settings form, the rules list (read
// from GET /ha/rules, which no event carries: read again after a change made here and after
// the store reads its lists again), and a rule's description.

import { useEffect, useState } from "preact/hooks";

import { type ApiError, asApiError } from "../api";
import { useStore } from "../store";
import { HA_REQUESTS, type HARequest, type HARule, type HASettings } from "../types";
import { ErrorLine, useRequest } from "./Dialog";

export function useHARules(): {
  rules: HARule[] | null;
  error: ApiError | null;
  reload: () => void;
} {
  const store = useStore();
  const [rules, setRules] = useState<HARule[] | null>(null);
  const [error, setError] = useState<ApiError | null>(null);
  const [round, setRound] = useState(0);
  useEffect(() => {
    let alive = true;
    const read = () => store.get<HARule[]>("/ha/rules").then(
      (r) => {
        if (!alive) return;
        setRules(r);
        setError(null);
      },
      (e) => alive && setError(asApiError(e)),
    );
    void read();
    const off = store.listen((n) => n.kind === "reread" && void read());
    return () => {
      alive = false;
      off();
    };
  }, [store, round]);
  return { rules, error, reload: () => setRound((r) => r + 1) };
}

/** "web-apart: anti-affinity of VMs 100, 101", as the rules list shows one. */
export function describeRule(r: HARule): string {
  const vms = `VM${r.vms.length > 1 ? "s" : ""} ${r.vms.join(", ")}`;
  switch (r.kind) {
    case "anti-affinity":
      return `${vms} never share a host`;
    case "affinity":
      return `${vms} run on one host together`;
    default: {
      const nodes = Object.entries(r.nodes).sort((a, b) => b[1] - a[1])
        .map(([n, p]) => `${n} (${p})`).join(", ");
      return `${vms} prefer ${nodes}${r.strict ? ", and no other host" : ""}` +
        `${r.failback ? "; back when a preferred host returns" : ""}`;
    }
  }
}

const STATE_HELP: Record<HARequest, string> = {
  started: "kept running: restarted, relocated, recovered when its host fails",
  stopped: "kept stopped, but moved off a failed host",
  disabled: "stopped, and left on a failed host",
  ignored: "HA looks away (manual work on the VM)",
};

/** The fields of an HA resource (POST /ha/resources, PUT /ha/resources/{vmid}). */
export function HASettingsForm({ initial, submitLabel, onSubmit, testid }: {
  initial: Omit<HASettings, "vmid">;
  submitLabel: string;
  onSubmit: (s: Omit<HASettings, "vmid">) => Promise<unknown>;
  testid?: string;
}) {
  const [state, setState] = useState<HARequest>(initial.state);
  const [maxRestart, setMaxRestart] = useState(String(initial.max_restart));
  const [maxRelocate, setMaxRelocate] = useState(String(initial.max_relocate));
  const req = useRequest();
  return (
    <form
      class="ha-form"
      data-testid={testid ?? "ha-form"}
      onSubmit={(e) => {
        e.preventDefault();
        // Sent as typed: the API checks the range and names the field it refuses.
        void req.run(() => onSubmit({ state, max_restart: Number(maxRestart),
                                      max_relocate: Number(maxRelocate) }));
      }}
    >
      <label class="inline">
        Requested state{" "}
        <select value={state} aria-label="HA requested state"
                onChange={(e) => setState((e.target as HTMLSelectElement).value as HARequest)}>
          {HA_REQUESTS.map((s) => <option key={s} value={s}>{s}</option>)}
        </select>
      </label>
      <label class="inline">
        Max restarts <input type="number" value={maxRestart} size={3} aria-label="max restarts"
                            onInput={(e) => setMaxRestart((e.target as HTMLInputElement).value)} />
      </label>
      <label class="inline">
        Max relocations <input type="number" value={maxRelocate} size={3}
                               aria-label="max relocations"
                               onInput={(e) => setMaxRelocate((e.target as HTMLInputElement).value)} />
      </label>
      <button type="submit" disabled={req.busy}>{submitLabel}</button>
      <p class="muted small">{state}: {STATE_HELP[state]}</p>
      <ErrorLine error={req.error} />
    </form>
  );
}
