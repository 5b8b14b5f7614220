#!/usr/bin/env bash
# Scale-out on this machine with real processes (docs/scale-out.md): PostgreSQL, Redis, nginx in front of two control
# instances, two relay instances, four agents; 200 jobs through the front door while control A and relay B are killed
# mid-run. The last line is exactly "scale-out: N/N jobs completed, 0 lost, 0 double-billed, ledger balanced" on success;
# the exit code is non-zero on any loss, duplicate or imbalance.
#
#   scripts/scale-out.sh [jobs] [agents]      (defaults 200 and 4; needs postgresql, redis-server and nginx: ./test.sh installs them)
set -euo pipefail
cd "$(dirname "$0")/.."
JOBS="${1:-200}"
AGENTS="${2:-4}"
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1 MESHAI_REPO_ROOT="$(pwd)"
for tool in nginx redis-server pg_ctlcluster; do
  command -v "$tool" >/dev/null 2>&1 || [ -x "/usr/sbin/$tool" ] || [ -x "/usr/bin/$tool" ] || { echo "scale-out: $tool is missing (./test.sh installs it)" >&2; exit 2; }
done
echo "scale-out: building server, agent and the harness (Release)" >&2
for project in services/MeshAI.Server agent/MeshAI.Agent bench/MeshAI.Bench; do
  dotnet build "$project" -c Release -nologo -v q -clp:NoSummary\;ErrorsOnly >&2
done
LOG="$(mktemp -t meshai-scale-out.XXXXXX.log)"
set +e
dotnet bench/MeshAI.Bench/bin/Release/net10.0/MeshAI.Bench.dll scale-out "$JOBS" "$AGENTS" 2>"$LOG" | tee -a "$LOG" >&2
rc=${PIPESTATUS[0]}
set -e
line="$(grep -E '^scale-out: ' "$LOG" | tail -n 1 || true)"
[ -n "$line" ] || { echo "scale-out: the harness printed no verdict (exit $rc); log: $LOG" >&2; tail -n 40 "$LOG" >&2; exit 1; }
rm -f "$LOG"
echo "$line"
exit "$rc"
