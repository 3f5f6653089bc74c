// Modal dialogs: a frame, and the confirmation every destructive action goes through. A failed
// request keeps the dialog open with the API's reason.

import type { ComponentChildren } from "preact";
import { useEffect, useRef, useState } from "preact/hooks";

import { type ApiError, asApiError } from "../api";

export function Dialog({ title, onClose, children, wide, testid }: {
  title: string;
  onClose: () => void;
  children: ComponentChildren;
  wide?: boolean;
  testid?: string;
}) {
  const ref = useRef<HTMLDialogElement>(null);
  useEffect(() => {
    const d = ref.current;
    if (d && !d.open) d.showModal();
    return () => d?.close();
  }, []);
  return (
    <dialog
      ref={ref}
      class={`dialog ${wide ? "wide" : ""}`}
      aria-label={title}
      data-testid={testid ?? "dialog"}
      onCancel={(e) => {
        e.preventDefault(); // Escape: closed by its owner, which then draws without it
        onClose();
      }}
    >
      <h3 class="dialog-title">{title}</h3>
      {children}
    </dialog>
  );
}

/** "code: message (field)": the API's reason, as everywhere in the console. */
export function ErrorLine({ error, testid }: { error: ApiError | null; testid?: string }) {
  if (!error) return null;
  return <p class="error" role="alert" data-testid={testid ?? "action-error"}>{error.describe()}</p>;
}

/** Runs a request on a click: busy meanwhile, its error kept for ErrorLine. */
export function useRequest(): {
  busy: boolean;
  error: ApiError | null;
  run: (f: () => Promise<unknown>) => Promise<boolean>;
  clear: () => void;
} {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<ApiError | null>(null);
  const run = async (f: () => Promise<unknown>): Promise<boolean> => {
    setBusy(true);
    setError(null);
    try {
      await f();
      return true;
    } catch (e) {
      setError(asApiError(e));
      return false;
    } finally {
      setBusy(false);
    }
  };
  return { busy, error, run, clear: () => setError(null) };
}

/** Asks before a destructive action. With `typeToConfirm`, the action is offered only once
 *  that text was typed (a VM's name before its deletion). */
export function ConfirmDialog({ title, confirmLabel, onConfirm, onClose, typeToConfirm,
                                children }: {
  title: string;
  confirmLabel: string;
  onConfirm: () => Promise<unknown>;
  onClose: () => void;
  typeToConfirm?: string;
  children?: ComponentChildren;
}) {
  const req = useRequest();
  const [typed, setTyped] = useState("");
  const ready = typeToConfirm === undefined || typed === typeToConfirm;
  return (
    <Dialog title={title} onClose={onClose} testid="confirm-dialog">
      <form
        method="dialog"
        onSubmit={async (e) => {
          e.preventDefault();
          if (ready && (await req.run(onConfirm))) onClose();
        }}
      >
        <div class="dialog-body">{children}</div>
        {typeToConfirm !== undefined && (
          <label class="stack">
            <span>Type <strong>{typeToConfirm}</strong> to confirm</span>
            <input
              value={typed}
              autoFocus
              aria-label="confirmation"
              onInput={(e) => setTyped((e.target as HTMLInputElement).value)}
            />
          </label>
        )}
        <ErrorLine error={req.error} />
        <div class="dialog-buttons">
          <button type="button" onClick={onClose}>Cancel</button>
          <button type="submit" class="danger" disabled={!ready || req.busy}>
            {req.busy ? "…" : confirmLabel}
          </button>
        </div>
      </form>
    </Dialog>
  );
}
