// The HA page (#/ha): hosts' HA states, HA VMs with their state, the placement rules, and the
// cluster's shutdown policy; HA resources and rules are added and removed here. The report
// (GET /ha/status) follows the events stream; the rules are read again after each change.

import { useEffect, useState } from "preact/hooks";

import { type ApiError, asApiError } from "../api";
import { parseRule, type RuleForm } from "../haRules";
import { href } from "../route";
import { useClusterState, useStore } from "../store";
import type { HARuleKind } from "../types";
import { ApiErrors, StateIcon } from "./bits";
import { ConfirmDialog, ErrorLine, useRequest } from "./Dialog";
import { describeRule, HASettingsForm, useHARules } from "./HAParts";

const POLICIES = ["conditional", "freeze", "failover", "migrate"];
const KINDS: HARuleKind[] = ["anti-affinity", "affinity", "node-preference"];

function when(ts: number | null): string {
  return ts ? new Date(ts * 1000).toLocaleTimeString() : "";
}

function AddResource() {
  const store = useStore();
  const { vms, ha } = useClusterState();
  const managed = new Set((ha?.vms ?? []).map((r) => r.vmid));
  const free = (vms ?? []).filter((v) => !managed.has(v.vmid));
  const [vmid, setVmid] = useState("");
  const chosen = vmid || String(free[0]?.vmid ?? "");
  return (
    <div class="add-box" data-testid="ha-add-resource">
      <h4>Add a VM</h4>
      {free.length === 0 ? <p class="muted small">Every VM is managed by HA.</p> : (
        <>
          <label class="inline">
            VM{" "}
            <select value={chosen} aria-label="VM to add"
                    onChange={(e) => setVmid((e.target as HTMLSelectElement).value)}>
              {free.map((v) => <option key={v.vmid} value={v.vmid}>{v.vmid} {v.name}</option>)}
            </select>
          </label>
          <HASettingsForm
            testid="ha-add-form"
            initial={{ state: "started", max_restart: 1, max_relocate: 1 }}
            submitLabel="Add to HA"
            onSubmit={async (s) => {
              await store.send("POST", "/ha/resources", { vmid: Number(chosen), ...s });
              setVmid("");
            }}
          />
        </>
      )}
    </div>
  );
}

const EMPTY_RULE: RuleForm = {
  name: "", kind: "anti-affinity", vms: "", nodes: "", strict: false, failback: true,
};

function AddRule({ onAdded }: { onAdded: () => void }) {
  const store = useStore();
  const [form, setForm] = useState<RuleForm>(EMPTY_RULE);
  const [typo, setTypo] = useState<string | null>(null);
  const req = useRequest();
  const set = (change: Partial<RuleForm>) => setForm({ ...form, ...change });
  const text = (key: "name" | "vms" | "nodes") =>
    (e: Event) => set({ [key]: (e.target as HTMLInputElement).value });
  return (
    <form
      class="add-box"
      data-testid="ha-add-rule"
      onSubmit={async (e) => {
        e.preventDefault();
        const parsed = parseRule(form);
        if ("error" in parsed) {
          setTypo(parsed.error);
          return;
        }
        setTypo(null);
        if (await req.run(() => store.send("POST", "/ha/rules", parsed.rule))) {
          setForm(EMPTY_RULE);
          onAdded();
        }
      }}
    >
      <h4>Add a rule</h4>
      <label class="inline">Name <input value={form.name} aria-label="rule name" size={14}
                                        onInput={text("name")} /></label>
      <label class="inline">
        Kind{" "}
        <select value={form.kind} aria-label="rule kind"
                onChange={(e) => set({ kind: (e.target as HTMLSelectElement).value as HARuleKind })}>
          {KINDS.map((k) => <option key={k} value={k}>{k}</option>)}
        </select>
      </label>
      <label class="inline">VMs <input value={form.vms} aria-label="rule VMs" size={14}
                                       placeholder="100, 101" onInput={text("vms")} /></label>
      {form.kind === "node-preference" && (
        <>
          <label class="inline">Hosts <input value={form.nodes} aria-label="rule hosts" size={14}
                                             placeholder="n1:2, n2:1" onInput={text("nodes")} />
          </label>
          <label class="check">
            <input type="checkbox" checked={form.strict}
                   onChange={(e) => set({ strict: (e.target as HTMLInputElement).checked })} />
            strict (no other host)
          </label>
          <label class="check">
            <input type="checkbox" checked={form.failback}
                   onChange={(e) => set({ failback: (e.target as HTMLInputElement).checked })} />
            fail back
          </label>
        </>
      )}
      <button type="submit" disabled={req.busy}>Add rule</button>
      {typo && <p class="error" role="alert" data-testid="action-error">{typo}</p>}
      <ErrorLine error={req.error} />
    </form>
  );
}

function ShutdownPolicy() {
  const store = useStore();
  const [policy, setPolicy] = useState<string | null>(null);
  const [error, setError] = useState<ApiError | null>(null);
  const req = useRequest();
  useEffect(() => {
    store.get<{ shutdown_policy: string }>("/ha/config").then(
      (c) => setPolicy(c.shutdown_policy), (e) => setError(asApiError(e)));
  }, [store]);
  return (
    <p class="small" data-testid="ha-policy">
      When a host shuts down cleanly, its VMs:{" "}
      <select value={policy ?? ""} disabled={policy === null || req.busy}
              aria-label="shutdown policy"
              onChange={(e) => {
                const next = (e.target as HTMLSelectElement).value;
                void req.run(async () => {
                  const c = await store.send<{ shutdown_policy: string }>(
                    "PUT", "/ha/config", { shutdown_policy: next });
                  setPolicy(c!.shutdown_policy);
                });
              }}>
        {POLICIES.map((p) => <option key={p} value={p}>{p}</option>)}
      </select>
      <span class="muted"> (conditional: freeze on a reboot, fail over on a power-off)</span>
      <ErrorLine error={error ?? req.error} testid="api-error" />
    </p>
  );
}

type Removal = { kind: "resource"; vmid: number } | { kind: "rule"; name: string } | null;

export function HAPage() {
  const store = useStore();
  const { ha, errors } = useClusterState();
  const { rules, error: rulesError, reload } = useHARules();
  const [removal, setRemoval] = useState<Removal>(null);

  return (
    <div class="record-page" data-testid="ha-page">
      <h2>High availability</h2>
      <ApiErrors errors={errors} only={["ha"]} />
      <ShutdownPolicy />
      {ha === null ? <p class="muted">loading…</p> : (
        <div class="cards">
          <section class="card wide" data-testid="ha-hosts">
            <h3>Hosts</h3>
            <table class="table">
              <thead><tr><th>Host</th><th>HA state</th><th>Fence time</th><th>Reason</th></tr></thead>
              <tbody>
                {ha.nodes.map((n) => (
                  <tr key={n.node} data-testid="ha-host" data-node={n.node} data-status={n.status}>
                    <td><a href={href({ page: "node", name: n.node })}>{n.node}</a></td>
                    <td><StateIcon state={n.status} /> {n.status}
                      {n.lost_at ? <span class="muted"> since {when(n.lost_at)}</span> : ""}
                      {n.fenced_at ? <span class="muted"> fenced {when(n.fenced_at)}</span> : ""}
                    </td>
                    <td>{n.fence_time === null ? "—" : n.fence_time === 0 ? "none"
                      : `${n.fence_time} s`}</td>
                    <td class="task-state">{n.reason}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          </section>

          <section class="card wide" data-testid="ha-vms">
            <h3>HA VMs</h3>
            {ha.vms.length === 0 ? <p class="muted">No VM is managed by HA.</p> : (
              <div class="table-wrap">
                <table class="table">
                  <thead>
                    <tr><th>VM</th><th>Requested</th><th>HA state</th><th>Host</th>
                      <th>Restarts</th><th>Relocations</th><th>Reason</th><th /></tr>
                  </thead>
                  <tbody>
                    {ha.vms.map((r) => (
                      <tr key={r.vmid} data-testid="ha-vm" data-vmid={r.vmid} data-status={r.status}>
                        <td><a href={href({ page: "vm", vmid: r.vmid })}>{r.vmid} {r.name ?? ""}</a></td>
                        <td>{r.requested}</td>
                        <td><StateIcon state={r.status} /> {r.status}</td>
                        <td>{r.node ?? "—"}</td>
                        <td>{r.restarts}/{r.max_restart}</td>
                        <td>{r.relocates}/{r.max_relocate}</td>
                        <td class="task-state">{r.reason}</td>
                        <td>
                          <button type="button" class="danger-outline small"
                                  onClick={() => setRemoval({ kind: "resource", vmid: r.vmid })}>
                            Remove
                          </button>
                        </td>
                      </tr>
                    ))}
                  </tbody>
                </table>
              </div>
            )}
            <AddResource />
          </section>

          <section class="card wide" data-testid="ha-rules">
            <h3>Rules</h3>
            <ErrorLine error={rulesError} testid="api-error" />
            {rules === null ? <p class="muted">loading…</p> : rules.length === 0 ? (
              <p class="muted">No rules.</p>
            ) : (
              <table class="table">
                <thead><tr><th>Name</th><th>Kind</th><th>What it keeps</th><th /></tr></thead>
                <tbody>
                  {rules.map((r) => (
                    <tr key={r.name} data-testid="ha-rule" data-name={r.name}>
                      <td>{r.name}</td>
                      <td>{r.kind}</td>
                      <td class="task-state">{describeRule(r)}</td>
                      <td>
                        <button type="button" class="danger-outline small"
                                onClick={() => setRemoval({ kind: "rule", name: r.name })}>
                          Remove
                        </button>
                      </td>
                    </tr>
                  ))}
                </tbody>
              </table>
            )}
            <AddRule onAdded={reload} />
          </section>

          {(ha.unprotected.length > 0 || ha.skipped.length > 0) && (
            <section class="card wide" data-testid="ha-unprotected">
              <h3>Not protected</h3>
              {ha.unprotected.length > 0 && (
                <p>VMs without HA on hosts that are not online (they stay there):{" "}
                  {ha.unprotected.map((u) => `${u.vmid} on ${u.node} (${u.status})`).join(", ")}
                </p>
              )}
              {ha.skipped.length > 0 && (
                <ul class="plain">
                  {ha.skipped.map((s) => <li key={s.key}><code>{s.key}</code>: {s.problem}</li>)}
                </ul>
              )}
            </section>
          )}
        </div>
      )}

      {removal?.kind === "resource" && (
        <ConfirmDialog
          title={`Remove VM ${removal.vmid} from HA?`}
          confirmLabel="Remove from HA"
          onClose={() => setRemoval(null)}
          onConfirm={() => store.send("DELETE", `/ha/resources/${removal.vmid}`)}
        >
          <p>Nothing will restart it, or recover it when its host fails. Its rules stay.</p>
        </ConfirmDialog>
      )}
      {removal?.kind === "rule" && (
        <ConfirmDialog
          title={`Remove rule ${removal.name}?`}
          confirmLabel="Remove rule"
          onClose={() => setRemoval(null)}
          onConfirm={async () => {
            await store.send("DELETE", `/ha/rules/${encodeURIComponent(removal.name)}`);
            reload();
          }}
        >
          <p>HA no longer keeps its VMs together, apart or on its hosts.</p>
        </ConfirmDialog>
      )}
    </div>
  );
}
