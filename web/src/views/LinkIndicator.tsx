// The top bar's mark of the events stream: live, or being opened again (and why it broke).

import type { State } from "../store";

const LABEL = { connecting: "connecting…", live: "live", reconnecting: "reconnecting…" };

export function LinkIndicator({ state }: { state: State }) {
  const { link, linkError, updatedAt } = state;
  const tone = link === "live" ? "ok" : link === "reconnecting" ? "warn" : "idle";
  const last = updatedAt ? `last change ${new Date(updatedAt).toLocaleTimeString()}` : "";
  const title = link === "live"
    ? `changes arrive as they happen (events stream)${last ? `; ${last}` : ""}`
    : `${linkError ?? "opening the events stream"}; the lists are read every 15 s meanwhile`;
  return (
    <span class="live muted" data-testid="link" data-state={link} title={title} role="status">
      <span class={`dot ${tone}`} />
      {LABEL[link]}
    </span>
  );
}
