// xterm.js and its fit addon, in a chunk of their own: the bundle's largest part, loaded only
// when a VM page shows a console (the dashboard does not wait for it).

import { FitAddon } from "@xterm/addon-fit";
import { Terminal } from "@xterm/xterm";
import "@xterm/xterm/css/xterm.css";

/** A terminal drawn in `box`, kept to the box's size; dispose() undoes it all. */
export function mountTerminal(box: HTMLElement): { term: Terminal; dispose: () => void } {
  const term = new Terminal({
    convertEol: false, // the guest's tty sends \r\n itself
    cursorBlink: true,
    fontSize: 13,
    scrollback: 5000,
    fontFamily: "ui-monospace, 'DejaVu Sans Mono', monospace",
  });
  const fit = new FitAddon();
  term.loadAddon(fit);
  term.open(box);
  fit.fit();
  const resized = new ResizeObserver(() => fit.fit());
  resized.observe(box);
  return {
    term,
    dispose: () => {
      resized.disconnect();
      term.dispose();
    },
  };
}
