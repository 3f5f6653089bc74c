// A VM's interactive serial console: xterm.js over the API's websocket. Output streams in
// (the recent tail first), keystrokes go to the guest. It connects again on its own when
// the QEMU it watched went away while the VM still runs (a migration, a restart).

import type { Terminal } from "@xterm/xterm";
import { useEffect, useRef, useState } from "preact/hooks";

import { asApiError } from "../api";
import { savedToken } from "../session";
import { describeClose, openConsole, RETRY_DELAYS_MS, shouldRetry } from "../serialLink";
import "./SerialConsole.css";

type Phase = "idle" | "connecting" | "open" | "closed";

interface Props {
  vmid: number;
  status: string; // the VM's status as the API gives it: a stopped VM has no console
}

export function SerialConsole({ vmid, status }: Props) {
  const box = useRef<HTMLDivElement>(null);
  const term = useRef<Terminal | null>(null);
  const [ready, setReady] = useState(false); // xterm.js loaded and drawn
  const [phase, setPhase] = useState<Phase>("idle");
  const [note, setNote] = useState("");
  const [generation, setGeneration] = useState(0); // bumped by "Reconnect"
  const active = status !== "stopped";
  const activeRef = useRef(active);
  activeRef.current = active;

  // The terminal lives as long as the page shows this VM.
  useEffect(() => {
    let dispose: (() => void) | null = null;
    let gone = false;
    void import("./terminal").then(({ mountTerminal }) => {
      if (gone || !box.current) return;
      const mounted = mountTerminal(box.current);
      term.current = mounted.term;
      dispose = mounted.dispose;
      setReady(true);
    }, (e: unknown) => {
      setPhase("closed");
      setNote(`the terminal did not load: ${String(e)}`);
    });
    return () => {
      gone = true;
      dispose?.();
      term.current = null;
      setReady(false);
    };
  }, [vmid]);

  // One websocket at a time, again after a close the API marks as passing, while it runs.
  useEffect(() => {
    const t = term.current;
    if (!ready || !t) return;
    if (!active) {
      setPhase("idle");
      setNote("The VM is stopped: start it to use its console.");
      return;
    }
    let ws: WebSocket | null = null;
    let retry: number | undefined;
    let attempt = 0;
    let gone = false;
    // The first frame is the recent output replayed: the terminal must not answer the old
    // queries in it (the shell's cursor-position requests) as if the guest asked them now.
    let replaying = false;
    const typed = t.onData((data) => {
      if (!replaying && ws?.readyState === WebSocket.OPEN) ws.send(data);
    });
    const typedBinary = t.onBinary((data) => {
      if (replaying || ws?.readyState !== WebSocket.OPEN) return;
      ws.send(Uint8Array.from(data, (c) => c.charCodeAt(0)));
    });

    const connect = async () => {
      setPhase("connecting");
      setNote("");
      let sock: WebSocket;
      try {
        sock = await openConsole(vmid, savedToken() ?? "");
      } catch (e) {
        if (gone) return;
        setPhase("closed");
        setNote(asApiError(e).describe());
        return;
      }
      if (gone) {
        sock.close();
        return;
      }
      ws = sock;
      let first = true;
      sock.onopen = () => {
        attempt = 0;
        t.reset(); // the tail the agent sends first redraws the screen
        setPhase("open");
      };
      sock.onmessage = (ev: MessageEvent<ArrayBuffer | string>) => {
        const data = typeof ev.data === "string" ? ev.data : new Uint8Array(ev.data);
        if (!first) {
          t.write(data);
          return;
        }
        first = false;
        replaying = true;
        t.write(data, () => { replaying = false; });
      };
      sock.onclose = (ev) => {
        if (gone || ws !== sock) return;
        ws = null;
        setPhase("closed");
        setNote(describeClose(ev.code, ev.reason));
        if (shouldRetry(ev.code, attempt, activeRef.current)) {
          retry = window.setTimeout(connect, RETRY_DELAYS_MS[attempt] ?? 8000);
          attempt += 1;
        }
      };
    };
    void connect();
    return () => {
      gone = true;
      window.clearTimeout(retry);
      typed.dispose();
      typedBinary.dispose();
      ws?.close(1000, "page left");
    };
  }, [ready, vmid, active, generation]);

  return (
    <section class="card wide serial-console" data-testid="serial-console">
      <h3>
        Console <span class="muted small" data-testid="serial-status" data-phase={phase}>
          {phase === "open" ? "connected" : phase === "connecting" ? "connecting…" : phase === "closed" ? "closed" : ""}
          {note ? ` · ${note}` : ""}
        </span>
        {phase === "closed" && active && (
          <button type="button" class="small" onClick={() => setGeneration((g) => g + 1)}>
            Reconnect
          </button>
        )}
      </h3>
      <div class="serial-screen" ref={box} onClick={() => term.current?.focus()} />
    </section>
  );
}
