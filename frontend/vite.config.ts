import { defineConfig } from "vitest/config";

// Django serves the built files under STATIC_URL = /static/ and django-vite
// reads dist/manifest.json to emit the <script>/<link> tags.
export default defineConfig({
  base: "/static/",
  esbuild: { jsx: "automatic", jsxImportSource: "preact" },
  build: {
    outDir: "dist",
    emptyOutDir: true,
    manifest: "manifest.json",
    target: "es2022",
    sourcemap: false,
    // One chat bundle (~180 kB gzip: KaTeX, highlight.js, markdown-it, DOMPurify, Preact).
    chunkSizeWarningLimit: 800,
    // KaTeX fonts are referenced from CSS; keep them as files, never data: URIs
    // (a strict CSP may forbid data: fonts).
    assetsInlineLimit: 0,
    rollupOptions: {
      input: {
        main: "src/main.tsx",
        login: "src/login.ts",
        dashboard: "src/dashboard.tsx",
        settings: "src/settings.tsx",
        campaigns: "src/campaigns.tsx",
        annotate: "src/annotate.tsx",
      },
    },
  },
  test: {
    environment: "jsdom",
    include: ["src/**/*.test.ts", "src/**/*.test.tsx"],
  },
});
