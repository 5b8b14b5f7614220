import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";

import { CLIENT_VERSION } from "../index.js";

const root = join(dirname(fileURLToPath(import.meta.url)), "..", "..");

test("npm pack gives the versioned package with code and types for every module the dashboard imports", () => {
  const pkg = JSON.parse(readFileSync(join(root, "package.json"), "utf8")) as { name: string; version: string };
  assert.equal(CLIENT_VERSION, pkg.version, "CLIENT_VERSION follows package.json");
  const [packed] = JSON.parse(execFileSync("npm", ["pack", "--dry-run", "--json", "--ignore-scripts"], { cwd: root, encoding: "utf8" })) as { name: string; version: string; files: { path: string }[] }[];
  assert.equal(packed!.name, "@meshai/client");
  assert.equal(packed!.version, pkg.version);
  const files = new Set(packed!.files.map((f) => f.path));
  for (const file of ["dist/index.js", "dist/index.d.ts", "dist/crypto.js", "dist/crypto.d.ts", "dist/errors.js", "dist/errors.d.ts", "dist/gen/meshai/job/v1/job_pb.d.ts", "package.json"]) {
    assert.ok(files.has(file), `${file} is in the package`);
  }
  assert.ok(![...files].some((f) => f.startsWith("dist/test") || f.startsWith("src/")), "no tests or sources in the package");
});
