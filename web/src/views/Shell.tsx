import { useState } from "preact/hooks";

import { href, useRoute } from "../route";
import { useClusterState } from "../store";
import { currentTheme, toggleTheme } from "../theme";
import { BalancePage } from "./BalancePage";
import { Dashboard } from "./Dashboard";
import { HAPage } from "./HAPage";
import { HostPage } from "./HostPage";
import { LinkIndicator } from "./LinkIndicator";
import { TasksDock } from "./TasksDock";
import { Tree } from "./Tree";
import { VMPage } from "./VmPage";

export function Shell({ onLogout }: { onLogout: () => void }) {
  const route = useRoute();
  const state = useClusterState();
  const [theme, setTheme] = useState(currentTheme);

  return (
    <div class="shell">
      <header class="topbar">
        <a class="brand" href={href({ page: "dashboard" })}>Corral</a>
        <LinkIndicator state={state} />
        <nav class="topnav">
          <a href={href({ page: "ha" })} class={route.page === "ha" ? "active" : ""}>HA</a>
          <a href={href({ page: "balance" })} class={route.page === "balance" ? "active" : ""}>
            Balance
          </a>
        </nav>
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
        ) : route.page === "ha" ? (
          <HAPage />
        ) : route.page === "balance" ? (
          <BalancePage />
        ) : (
          <Dashboard />
        )}
      </main>
      <TasksDock />
    </div>
  );
}
