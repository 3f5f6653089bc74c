// The balancer's page (#/balance): on or off, its last round, and a plan on the cluster as it
// is now, every move with its reason and every VM it leaves with why, to read before it runs
// (applied from here after a confirmation). The plan is computed when asked: on opening the
// page and on "Plan again"; the overview is read again every 15 s (a round runs each minute).

import { useCallback, useEffect, useState } from "preact/hooks";

import { type ApiError, asApiError } from "../api";
import { href } from "../route";
import { useStore } from "../store";
import type { BalanceMove, BalanceOverview, BalancePlan } from "../types";
import { ConfirmDialog, ErrorLine, useRequest } from "./Dialog";

const OVERVIEW_EVERY_MS = 15_000;

const movesText = (n: number) => (n === 0 ? "no move." : n === 1 ? "1 move:" : `${n} moves:`);
const seconds = (s: number) => (s < 1 ? "under 1 s" : `about ${Math.round(s)} s`);

function MovesTable({ moves, testid }: { moves: BalanceMove[]; testid: string }) {
  return (
    <table class="table">
      <thead><tr><th>VM</th><th>From</th><th>To</th><th>Why</th><th>Migration</th><th>Task</th></tr></thead>
      <tbody>
        {moves.map((m) => (
          <tr key={m.vmid} data-testid={testid} data-vmid={m.vmid} data-target={m.target}>
            <td><a href={href({ page: "vm", vmid: m.vmid })}>{m.vmid}</a></td>
            <td>{m.source}</td>
            <td>{m.target}</td>
            <td class="task-state">{m.reason}</td>
            <td>{seconds(m.cost_s)}</td>
            <td>{m.task ? <code>{m.task}</code> : "—"}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

function Held({ held }: { held: Record<string, string> }) {
  const rows = Object.entries(held).sort(([a], [b]) => Number(a) - Number(b));
  if (rows.length === 0) return null;
  return (
    <details data-testid="balance-held">
      <summary>VMs it leaves where they are ({rows.length})</summary>
      <ul class="plain">
        {rows.map(([vmid, why]) => (
          <li key={vmid} data-testid="balance-held-vm" data-vmid={vmid}>
            <a href={href({ page: "vm", vmid: Number(vmid) })}>{vmid}</a>: {why}
          </li>
        ))}
      </ul>
    </details>
  );
}

export function BalancePage() {
  const store = useStore();
  const [overview, setOverview] = useState<BalanceOverview | null>(null);
  const [plan, setPlan] = useState<BalancePlan | null>(null);
  const [error, setError] = useState<ApiError | null>(null);
  const [confirming, setConfirming] = useState(false);
  const toggle = useRequest();
  const planning = useRequest();

  const readOverview = useCallback(() => {
    store.get<BalanceOverview>("/balance").then(setOverview, (e) => setError(asApiError(e)));
  }, [store]);
  const replan = () => planning.run(async () => setPlan(await store.get<BalancePlan>("/balance/plan")));

  useEffect(() => {
    readOverview();
    const timer = setInterval(readOverview, OVERVIEW_EVERY_MS);
    return () => clearInterval(timer);
  }, [readOverview]);
  useEffect(() => void replan(), []); // once on opening; then when asked

  const on = overview?.config.enabled ?? false;
  const last = overview?.last_round ?? null;
  return (
    <div class="record-page" data-testid="balance-page">
      <h2>Load balancing</h2>
      <ErrorLine error={error} testid="api-error" />
      {overview === null ? <p class="muted">loading…</p> : (
        <div class="cards">
          <section class="card wide" data-testid="balance-status" data-enabled={String(on)}>
            <h3>Automatic balancing: {on ? "on" : "off"}</h3>
            {overview.config_problem && (
              <p class="error" role="alert">The settings do not decode, so it is off:{" "}
                {overview.config_problem}</p>
            )}
            <p class="small">
              A round every {overview.config.interval_s} s when the imbalance is above{" "}
              {overview.config.threshold}; at most {overview.config.max_moves_per_round} moves a
              round and {overview.config.max_concurrent} migrations at once.
            </p>
            <button type="button" disabled={toggle.busy}
                    onClick={() => void toggle.run(async () => {
                      await store.send("POST", on ? "/balance/disable" : "/balance/enable");
                      readOverview();
                    })}>
              {on ? "Turn off" : "Turn on"}
            </button>
            <ErrorLine error={toggle.error} />
            {last && (
              <div data-testid="balance-last-round">
                <h4>Last round, {new Date(last.at * 1000).toLocaleTimeString()}</h4>
                <p class="small">Imbalance {last.imbalance.toFixed(3)};{" "}
                  {movesText(last.moves.length)}</p>
                {last.moves.length > 0 && <MovesTable moves={last.moves} testid="balance-done" />}
                {last.notes.map((n) => <p key={n} class="muted small">{n}</p>)}
              </div>
            )}
          </section>

          <section class="card wide" data-testid="balance-plan">
            <h3>Plan on the cluster as it is now</h3>
            <ErrorLine error={planning.error} />
            {plan === null ? <p class="muted">planning…</p> : (
              <>
                <p class="small">Imbalance {plan.imbalance.toFixed(3)};{" "}
                  {movesText(plan.moves.length)}</p>
                {plan.moves.length > 0 && <MovesTable moves={plan.moves} testid="balance-move" />}
                {plan.notes.map((n) => <p key={n} class="muted small">{n}</p>)}
                <Held held={plan.held} />
              </>
            )}
            <div class="button-row">
              <button type="button" disabled={planning.busy} onClick={() => void replan()}>
                Plan again
              </button>
              <button type="button" class="danger-outline"
                      disabled={planning.busy || !plan || plan.moves.length === 0}
                      onClick={() => setConfirming(true)}>
                Apply this plan
              </button>
            </div>
          </section>
        </div>
      )}
      {confirming && plan && (
        <ConfirmDialog
          title={`Start ${plan.moves.length} live migration${plan.moves.length === 1 ? "" : "s"}?`}
          confirmLabel="Migrate"
          onClose={() => setConfirming(false)}
          onConfirm={async () => {
            // The API plans again on the cluster as it is then, and queues that plan.
            const done = await store.send<BalancePlan>("POST", "/balance/apply", {});
            setPlan(done);
          }}
        >
          <p>
            {plan.moves.map((m) => `VM ${m.vmid} ${m.source} → ${m.target}`).join(", ")}. The
            plan is made again when you confirm, so it may differ if the cluster changed.
          </p>
        </ConfirmDialog>
      )}
    </div>
  );
}
