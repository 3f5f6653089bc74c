// A read a view needs beside the store's (one task, a host's maintenance status): fetched when
// the view opens it and again each time the store has news (a poll round now, an event once
// the store listens to the events stream), never on a timer of its own, one request at a time.

import { useContext, useEffect, useRef, useState } from "preact/hooks";

import { ApiError, apiGet, asApiError } from "./api";
import { savedToken } from "./session";
import { StoreContext } from "./store";

export interface Followed<T> {
  data: T | null; // the last answer that loaded (kept while a later read fails)
  error: ApiError | null; // the last read's failure, if it failed
  loaded: boolean; // a first read has answered (well or not)
  reload: () => void;
}

/** path null: nothing to follow (the data is dropped). `minGapMs`: read at most this often. */
export function useFollow<T>(path: string | null, minGapMs = 0): Followed<T> {
  const store = useContext(StoreContext);
  const [data, setData] = useState<T | null>(null);
  const [error, setError] = useState<ApiError | null>(null);
  const [loaded, setLoaded] = useState(false);
  const reloadRef = useRef<() => void>(() => undefined);

  useEffect(() => {
    setData(null);
    setError(null);
    setLoaded(false);
    if (path === null) return;
    const abort = new AbortController();
    let busy = false;
    let again = false;
    let last = 0;
    const read = async (force: boolean): Promise<void> => {
      if (busy) {
        again = again || force;
        return;
      }
      if (!force && Date.now() - last < minGapMs) return;
      busy = true;
      last = Date.now();
      try {
        setData(await apiGet<T>(path, savedToken() ?? "", abort.signal));
        setError(null);
      } catch (e) {
        if (abort.signal.aborted) return;
        setError(asApiError(e));
      } finally {
        busy = false;
        if (!abort.signal.aborted) setLoaded(true);
      }
      if (again && !abort.signal.aborted) {
        again = false;
        void read(true);
      }
    };
    reloadRef.current = () => void read(true);
    void read(true);
    const unsubscribe = store?.subscribe(() => void read(false));
    return () => {
      abort.abort();
      unsubscribe?.();
    };
  }, [path, store, minGapMs]);

  return { data, error, loaded, reload: () => reloadRef.current() };
}
