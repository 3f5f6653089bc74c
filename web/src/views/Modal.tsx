// A modal dialog on the browser's own <dialog> (focus kept inside, Escape closes it, the page
// behind is inert), and a confirmation every destructive action goes through.

import type { ComponentChildren, JSX } from "preact";
import { useEffect, useRef, useState } from "preact/hooks";

export function Modal({ title, onClose, children, testid, wide }: {
  title: string;
  onClose: () => void;
  children: ComponentChildren;
  testid?: string;
  wide?: boolean;
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
      class={`modal${wide ? " wide" : ""}`}
      data-testid={testid}
      aria-label={title}
      onCancel={(e) => {
        e.preventDefault(); // the page decides: it unmounts the dialog
        onClose();
      }}
    >
      <header class="modal-head">
        <h2>{title}</h2>
        <button type="button" class="ghost" aria-label="close" onClick={onClose}>✕</button>
      </header>
      <div class="modal-body">{children}</div>
    </dialog>
  );
}

interface Question {
  message: string;
  ok: string;
  resolve: (yes: boolean) => void;
}

/** `ask(message, ok)` shows a confirmation and resolves true only on the `ok` button; render
 * `dialog` where the asking view is. */
export function useConfirm(): {
  dialog: JSX.Element | null;
  ask: (message: string, ok: string) => Promise<boolean>;
} {
  const [q, setQ] = useState<Question | null>(null);
  const answer = (yes: boolean) => {
    q?.resolve(yes);
    setQ(null);
  };
  const dialog = q ? (
    <Modal title="Are you sure?" onClose={() => answer(false)} testid="confirm">
      <p data-testid="confirm-message">{q.message}</p>
      <div class="modal-actions">
        <button type="button" onClick={() => answer(false)}>Cancel</button>
        <button type="button" class="danger" data-testid="confirm-ok" onClick={() => answer(true)}>
          {q.ok}
        </button>
      </div>
    </Modal>
  ) : null;
  return {
    dialog,
    ask: (message, ok) => new Promise<boolean>((resolve) => setQ({ message, ok, resolve })),
  };
}

/** An API failure as the operator reads it: what was asked, and the API's reason. */
export function ActionError({ what, error }: { what: string; error: { describe(): string } | null }) {
  if (!error) return null;
  return (
    <p class="error action-error" role="alert" data-testid="action-error">
      <strong>{what}</strong>: {error.describe()}
    </p>
  );
}
