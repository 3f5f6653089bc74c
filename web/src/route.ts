// Hash routes (#/, #/node/n1, #/vm/101, #/ha, #/balance): the API serves one page at "/" and needs no
// fallback for the console's paths.

import { useEffect, useState } from "preact/hooks";

export type Route =
  | { page: "dashboard" }
  | { page: "node"; name: string }
  | { page: "vm"; vmid: number }
  | { page: "ha" }
  | { page: "balance" };

export function parseRoute(hash: string): Route {
  const [, page, arg] = hash.replace(/^#/, "").split("/");
  if (page === "node" && arg) return { page: "node", name: decodeURIComponent(arg) };
  if (page === "vm" && arg && /^\d+$/.test(arg)) return { page: "vm", vmid: Number(arg) };
  if (page === "ha") return { page: "ha" };
  if (page === "balance") return { page: "balance" };
  return { page: "dashboard" };
}

export function href(route: Route): string {
  switch (route.page) {
    case "node":
      return `#/node/${encodeURIComponent(route.name)}`;
    case "vm":
      return `#/vm/${route.vmid}`;
    case "ha":
      return "#/ha";
    case "balance":
      return "#/balance";
    default:
      return "#/";
  }
}

export function useRoute(): Route {
  const [route, setRoute] = useState(() => parseRoute(location.hash));
  useEffect(() => {
    const onChange = () => setRoute(parseRoute(location.hash));
    window.addEventListener("hashchange", onChange);
    return () => window.removeEventListener("hashchange", onChange);
  }, []);
  return route;
}
