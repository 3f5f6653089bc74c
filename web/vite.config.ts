import { defineConfig } from "vite";

// The console is served by the API at "/", its files under "/assets/" (corral.api.console).
// JSX is compiled for Preact by Vite's own transformer (tsconfig's jsxImportSource): no Babel.
export default defineConfig({
  base: "/",
  build: {
    outDir: "dist",
    assetsDir: "assets",
    emptyOutDir: true,
    target: "es2022",
  },
  server: {
    // `npm run dev` against a plain API on this machine (`corral api serve`, port 8470):
    // the app calls /api/v1 on its own origin.
    proxy: { "/api": "http://127.0.0.1:8470" },
  },
});
