// One Vite project, several pages: every entry of `pages` becomes <name>.html in dist/, served by meshai-server at
// /<name> ("index" at "/"). Shared code lives in src/shared and is split into common chunks by the bundler.
import { resolve } from "node:path";
import { defineConfig } from "vite";

const pages: Record<string, string> = {
  index: "index.html",
};

// `npm run dev` proxies the API to a running meshai-server (self-signed TLS): MESHAI_DEV_SERVER=https://127.0.0.1:7443.
const devServer = process.env.MESHAI_DEV_SERVER ?? "https://127.0.0.1:7443";
const apiPrefixes = ["/meshai.", "/auth/", "/healthz"];

export default defineConfig({
  build: {
    target: "es2022",
    outDir: "dist",
    emptyOutDir: true,
    assetsDir: "assets",
    sourcemap: false,
    chunkSizeWarningLimit: 400,
    rollupOptions: {
      input: Object.fromEntries(Object.entries(pages).map(([name, file]) => [name, resolve(import.meta.dirname, file)])),
    },
  },
  server: {
    proxy: Object.fromEntries(apiPrefixes.map((prefix) => [prefix, { target: devServer, secure: false, changeOrigin: false }])),
  },
});
