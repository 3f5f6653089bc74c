import { useState } from "preact/hooks";

import { href, useRoute } from "../route";
import { useClusterState } from "../store";
import { currentTheme, toggleTheme } from "../theme";
import { Dashboard } from "./Dashboard";
import { HostPage } from "./HostPage";
import { VMPage } from "./RecordPages";
import { TasksDock } from "./TasksDock";
import { Tree } from "./Tree";

export function Shell({ onLogout }: { onLogout: () => void }) {
  const route = useRoute();
  const { updatedAt, errors } = useClusterState();
  const [theme, setTheme] = useState(currentTheme);
  const failing = Object.keys(errors).length;

  return (
    <div class="shell">
      <header class="topbar">
        <a class="brand" href={href({ page: "dashboard" })}>Corral</a>
        <span class="live muted" data-testid="updated" title="refreshed every 2 s while visible">
          <span class={`dot ${failing ? "bad" : updatedAt ? "ok" : "idle"}`} />
          {updatedAt ? `updated ${new Date(updatedAt).toLocaleTimeString()}` : "loading…"}
        </span>
        <span class="spacer" />
        <button
          type="button"
          class="ghost"
          data-testid="theme-toggle"
          aria-label={`switch to ${theme === "dark" ? "light" : "dark"} theme`}
          onClick={() => setTheme(toggleTheme())}
        >
          {theme === "dark" ? "☀ Light" : "☾ Dark"}
        </button>
        <button type="button" class="ghost" onClick={onLogout}>Sign out</button>
      </header>
      <Tree route={route} />
      <main class="content">
        {route.page === "node" ? (
          <HostPage name={route.name} />
        ) : route.page === "vm" ? (
          <VMPage vmid={route.vmid} />
        ) : (
          <Dashboard />
        )}
      </main>
      <TasksDock />
    </div>
  );
}
