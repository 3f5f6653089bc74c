import { useEffect, useMemo, useState } from "preact/hooks";

import type { ApiError } from "../api";
import { forgetToken, savedToken, saveToken } from "../session";
import { ClusterStore, StoreContext } from "../store";
import { Login } from "./Login";
import { Shell } from "./Shell";

export function App() {
  const [token, setToken] = useState(savedToken);
  const [refusal, setRefusal] = useState<ApiError | null>(null);

  const logout = (why: ApiError | null) => {
    forgetToken();
    setRefusal(why);
    setToken(null);
  };

  if (!token) {
    return (
      <Login
        refusal={refusal}
        onLogin={(t) => {
          saveToken(t);
          setRefusal(null);
          setToken(t);
        }}
      />
    );
  }
  return <Session token={token} onLogout={logout} />;
}

function Session({ token, onLogout }: { token: string; onLogout: (why: ApiError | null) => void }) {
  // A token refused later (revoked, expired) ends the session with the API's reason.
  const store = useMemo(() => new ClusterStore(token, onLogout), [token]);
  useEffect(() => {
    store.start();
    return () => store.stop();
  }, [store]);
  return (
    <StoreContext.Provider value={store}>
      <Shell onLogout={() => onLogout(null)} />
    </StoreContext.Provider>
  );
}
