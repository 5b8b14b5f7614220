// Installs @meshai/client into this project AS A PACKAGE: builds clients/typescript when its dist/ is older than its
// sources or the protos, runs `npm pack` there (the versioned tarball with types that would be published) and installs
// that tarball with `npm install --no-save`. The dashboard imports only "@meshai/client", never ../typescript/src.
// The tarball is not in package.json/package-lock.json on purpose: it is rebuilt from the protos, so a lockfile hash of it
// would go stale with every proto change; its own dependencies are pinned in both package.json files instead.
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const here = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const client = resolve(here, "..", "typescript");
const protos = resolve(here, "..", "..", "protos");
const packDir = join(here, ".client");
const npm = process.platform === "win32" ? "npm.cmd" : "npm";
const run = (args, cwd) => execFileSync(npm, args, { cwd, stdio: ["ignore", "pipe", "inherit"], encoding: "utf8" });

const newest = (dir, filter) => {
  let latest = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) {
      if (entry.name !== "gen" && entry.name !== "node_modules") latest = Math.max(latest, newest(path, filter));
    } else if (filter(entry.name)) {
      latest = Math.max(latest, statSync(path).mtimeMs);
    }
  }
  return latest;
};

const built = join(client, "dist", "index.js");
const sources = Math.max(newest(join(client, "src"), (n) => n.endsWith(".ts")), newest(protos, (n) => n.endsWith(".proto")), statSync(join(client, "package.json")).mtimeMs);
if (!existsSync(built) || statSync(built).mtimeMs < sources) {
  if (!existsSync(join(client, "node_modules", "@bufbuild", "protoc-gen-es"))) {
    console.log("install-client: npm ci in clients/typescript");
    run(["ci", "--no-audit", "--no-fund", "--loglevel=error"], client);
  }
  console.log("install-client: building clients/typescript");
  run(["run", "build"], client);
}

rmSync(packDir, { recursive: true, force: true });
mkdirSync(packDir, { recursive: true });
const packed = JSON.parse(run(["pack", "--json", "--pack-destination", packDir], client))[0];
const tarball = join(packDir, packed.filename);
const digest = createHash("sha256").update(readFileSync(tarball)).digest("hex");
const stamp = join(here, "node_modules", "@meshai", "client", ".packed-sha256");
if (existsSync(stamp) && readFileSync(stamp, "utf8") === digest) {
  console.log(`install-client: ${packed.name}@${packed.version} already installed (${packed.entryCount} files)`);
} else {
  run(["install", "--no-save", "--no-audit", "--no-fund", "--loglevel=error", tarball], here);
  writeFileSync(stamp, digest);
  console.log(`install-client: installed ${packed.name}@${packed.version} from ${packed.filename} (${packed.entryCount} files, ${packed.size} bytes)`);
}
