import { fileURLToPath } from "node:url";
import react from "@vitejs/plugin-react";
import { defineConfig } from "vite";

// Built by scripts/up (npm run portal:build); the proxy serves dist/ at /.
// Hashed files land in dist/assets/, which the proxy caches as immutable. No source maps: the
// production build ships none (and the proxy refuses to serve *.map).
export default defineConfig({
  root: fileURLToPath(new URL(".", import.meta.url)),
  plugins: [react()],
  build: { outDir: "dist", emptyOutDir: true, sourcemap: false },
});
