import { defineConfig } from "vite";

// Tauri expects a fixed dev port and serves ui/dist in builds.
export default defineConfig({
  clearScreen: false,
  server: { port: 5173, strictPort: true },
  build: { outDir: "dist", emptyOutDir: true, target: "safari15", sourcemap: false },
});
