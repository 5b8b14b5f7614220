// Writes .br and .gz beside every text asset of dist/ (meshai-server serves them when the browser accepts them), then
// prints the first-load size of each page: the page's HTML plus the JS and CSS it loads before any user action
// (entry chunk, its static imports, its stylesheets), raw and gzipped. Lazy chunks (import()) are listed apart.
import { brotliCompressSync, constants, gzipSync } from "node:zlib";
import { readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const dist = resolve(fileURLToPath(new URL("../dist", import.meta.url)));
const walk = (dir) => readdirSync(dir).flatMap((name) => (statSync(join(dir, name)).isDirectory() ? walk(join(dir, name)) : [join(dir, name)]));

for (const file of walk(dist)) {
  if (!/\.(js|css|html|svg|json|webmanifest|txt|wasm|mjs)$/.test(file)) continue;
  const data = readFileSync(file);
  if (data.length < 512) continue;
  writeFileSync(file + ".gz", gzipSync(data, { level: 9 }));
  writeFileSync(file + ".br", brotliCompressSync(data, { params: { [constants.BROTLI_PARAM_QUALITY]: 11 } }));
}

const size = (file) => {
  const data = readFileSync(join(dist, file));
  return { raw: data.length, gzip: gzipSync(data, { level: 9 }).length };
};
const report = {};
for (const html of readdirSync(dist).filter((f) => f.endsWith(".html"))) {
  const text = readFileSync(join(dist, html), "utf8");
  const refs = [...text.matchAll(/(?:src|href)="\/(assets\/[^"]+\.(?:js|css))"/g)].map((m) => m[1]);
  const files = [html, ...new Set(refs)];
  const total = files.map(size).reduce((a, b) => ({ raw: a.raw + b.raw, gzip: a.gzip + b.gzip }), { raw: 0, gzip: 0 });
  const js = files.filter((f) => f.endsWith(".js")).map(size).reduce((a, b) => ({ raw: a.raw + b.raw, gzip: a.gzip + b.gzip }), { raw: 0, gzip: 0 });
  report[html] = { files, totalRaw: total.raw, totalGzip: total.gzip, jsRaw: js.raw, jsGzip: js.gzip };
}
const lazy = walk(join(dist, "assets"))
  .filter((f) => f.endsWith(".js") && !Object.values(report).some((r) => r.files.includes(relative(dist, f))))
  .map((f) => ({ file: relative(dist, f), ...size(relative(dist, f)) }));
writeFileSync(join(dist, "size-report.json"), JSON.stringify({ pages: report, lazy }, null, 2));
for (const [page, r] of Object.entries(report)) {
  console.log(`first load of ${page}: JS ${(r.jsGzip / 1024).toFixed(1)} KiB gzipped (${(r.jsRaw / 1024).toFixed(1)} KiB raw); with HTML+CSS ${(r.totalGzip / 1024).toFixed(1)} KiB gzipped`);
}
for (const l of lazy) console.log(`  lazy ${l.file}: ${(l.gzip / 1024).toFixed(1)} KiB gzipped`);
