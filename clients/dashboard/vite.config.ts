// One Vite project, several pages: every entry of `pages` becomes <name>.html in dist/, served by meshai-server at
// /<name> ("index" at "/"). Shared code lives in src/shared and is split into common chunks by the bundler.
import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { defaultClientConditions, defineConfig } from "vite";
import type { Plugin } from "vite";

const pages: Record<string, string> = {
  index: "index.html",
  // The web contributor: a phone (or laptop) browser joins a network as a device and runs jobs (docs/contributor.md).
  contribute: "contribute.html",
};

// ONNX Runtime Web's WebAssembly build (the contributor's embeddings runtime) is loaded at run time from a versioned
// folder under /assets (served immutable), not bundled: the .wasm is 14 MB and its threaded glue spawns its own workers.
const ortDist = resolve(import.meta.dirname, "node_modules/onnxruntime-web/dist");
const ortVersion: string = JSON.parse(readFileSync(resolve(import.meta.dirname, "node_modules/onnxruntime-web/package.json"), "utf8")).version;
const ortBase = `/assets/ort-${ortVersion}/`;
const ortFiles = ["ort-wasm-simd-threaded.mjs", "ort-wasm-simd-threaded.wasm"];

function onnxRuntimeFiles(): Plugin {
  return {
    name: "meshai-onnxruntime-files",
    apply: "build",
    generateBundle() {
      for (const file of ortFiles) {
        this.emitFile({ type: "asset", fileName: `${ortBase.slice(1)}${file}`, source: readFileSync(resolve(ortDist, file)) });
      }
    },
  };
}

// `npm run dev` proxies the API to a running meshai-server (self-signed TLS): MESHAI_DEV_SERVER=https://127.0.0.1:7443.
const devServer = process.env.MESHAI_DEV_SERVER ?? "https://127.0.0.1:7443";
const apiPrefixes = ["/meshai.", "/auth/", "/healthz", "/models/"];

export default defineConfig(({ command }) => ({
  define: {
    // In development ONNX Runtime's files come straight from node_modules.
    __ORT_BASE__: JSON.stringify(command === "build" ? ortBase : "/node_modules/onnxruntime-web/dist/"),
  },
  resolve: {
    // onnxruntime-web's "wasm" entry without the inlined WebAssembly glue (the files above are loaded instead).
    conditions: ["onnxruntime-web-use-extern-wasm", ...defaultClientConditions],
  },
  plugins: [onnxRuntimeFiles()],
  worker: {
    format: "es",
  },
  build: {
    target: "es2022",
    outDir: "dist",
    emptyOutDir: true,
    assetsDir: "assets",
    sourcemap: false,
    chunkSizeWarningLimit: 400,
    rolldownOptions: {
      input: Object.fromEntries(Object.entries(pages).map(([name, file]) => [name, resolve(import.meta.dirname, file)])),
      // Rolldown's "[PLUGIN_TIMINGS] JavaScript callbacks ran for …" note is printed to stderr whenever the machine is busy
      // (the ONNX Runtime files plugin copies ~20 MiB): noise for someone running quickstart, and its "Learn more at …" line
      // tripped the quickstart test's no-stack-trace check (CI of 2026-12-03). The size budget (test.sh) still prints sizes.
      checks: { bundlerTimings: false },
    },
  },
  server: {
    proxy: Object.fromEntries(apiPrefixes.map((prefix) => [prefix, { target: devServer, secure: false, changeOrigin: false }])),
  },
}));
