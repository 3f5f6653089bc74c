import { useState } from "preact/hooks";

import { ApiError, apiGet, asApiError } from "../api";

interface Props {
  refusal: ApiError | null; // why the last session ended, if the API ended it
  onLogin: (token: string) => void;
}

export function Login({ refusal, onLogin }: Props) {
  const [token, setToken] = useState("");
  const [error, setError] = useState<ApiError | null>(refusal);
  const [busy, setBusy] = useState(false);

  const submit = async (e: Event) => {
    e.preventDefault();
    const t = token.trim();
    if (!t) {
      setError(new ApiError(0, "invalid", "paste an API token first", "token"));
      return;
    }
    setBusy(true);
    try {
      await apiGet("/nodes?limit=1", t); // a guarded read: does the API take the token?
      onLogin(t);
    } catch (err) {
      setError(asApiError(err));
      setBusy(false);
    }
  };

  return (
    <main class="login">
      <form class="card login-card" onSubmit={submit}>
        <h1>Corral</h1>
        <p class="muted">
          Sign in with an API token: <code>token</code> in
          <code> ~/.config/corral/client.json</code> (written by <code>corral cluster create</code>
          and <code>join</code>; a lab's is also in <code>/var/lib/corral/lab/token</code>).
        </p>
        <label for="token">API token</label>
        <input
          id="token"
          name="token"
          type="password"
          autocomplete="off"
          spellcheck={false}
          value={token}
          onInput={(e) => setToken((e.target as HTMLInputElement).value)}
          autofocus
        />
        {error && (
          <p class="error" role="alert" data-testid="login-error">
            {error.status === 401 ? "Refused: " : ""}
            {error.message} <span class="muted">({error.code})</span>
          </p>
        )}
        <button type="submit" class="primary" disabled={busy}>
          {busy ? "Checking…" : "Sign in"}
        </button>
      </form>
    </main>
  );
}
