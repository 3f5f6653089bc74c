// Light or dark: the system's preference until the operator picks one with the toggle.

export type Theme = "light" | "dark";
const KEY = "corral.theme";

function systemTheme(): Theme {
  return window.matchMedia("(prefers-color-scheme: dark)").matches ? "dark" : "light";
}

function pickedTheme(): Theme | null {
  const picked = localStorage.getItem(KEY);
  return picked === "light" || picked === "dark" ? picked : null;
}

export function currentTheme(): Theme {
  return pickedTheme() ?? systemTheme();
}

/** Sets the attribute the stylesheet keys on; without a pick the system's preference rules. */
export function applyTheme(theme: Theme): void {
  document.documentElement.dataset.theme = theme;
}

export function applyPickedTheme(): void {
  const picked = pickedTheme();
  if (picked) applyTheme(picked);
}

export function toggleTheme(): Theme {
  const next: Theme = currentTheme() === "dark" ? "light" : "dark";
  localStorage.setItem(KEY, next);
  applyTheme(next);
  return next;
}
