#!/usr/bin/env bash
# Builds the installable meshai-agent bundle for another Linux machine, which needs neither this repository nor .NET:
#
#   scripts/package-agent.sh [--rid linux-x64] [--out dist]
#
# → dist/meshai-agent-<rid>.tar.gz holding meshai-agent/bin/ (a self-contained `dotnet publish`: the agent, its .NET
# runtime and native libraries) and meshai-agent/install.sh (install, join, systemd service). On the other machine:
#   tar xzf meshai-agent-linux-x64.tar.gz && sudo meshai-agent/install.sh 'meshai://join?…'
set -euo pipefail
cd "$(dirname "$0")/.."
RID=linux-x64
OUT=dist
while (($#)); do
  case $1 in
    --rid) RID=$2; shift 2 ;;
    --out) OUT=$2; shift 2 ;;
    *) echo "error: unknown argument '$1'. Usage: scripts/package-agent.sh [--rid linux-x64] [--out DIR]" >&2; exit 2 ;;
  esac
done
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
echo "==> Publishing meshai-agent for $RID (self-contained; log: $stage/publish.log)"
started=$SECONDS
if ! dotnet publish agent/MeshAI.Agent/MeshAI.Agent.csproj -c Release -r "$RID" --self-contained true \
     -p:DebugType=none -p:GenerateDocumentationFile=false -o "$stage/meshai-agent/bin" -nologo -v:minimal > "$stage/publish.log" 2>&1; then
  grep -E ': (error|warning) ' "$stage/publish.log" | sort -u | head -20 >&2 || tail -20 "$stage/publish.log" >&2
  echo "error: dotnet publish failed" >&2
  exit 1
fi
cp scripts/agent-bundle/install.sh "$stage/meshai-agent/install.sh"
chmod 755 "$stage/meshai-agent/install.sh" "$stage/meshai-agent/bin/meshai-agent"
tar -C "$stage" -czf "$OUT/meshai-agent-$RID.tar.gz" meshai-agent
size=$(du -m "$OUT/meshai-agent-$RID.tar.gz" | cut -f1)
echo "    published in $((SECONDS - started)) s"
echo "==> Wrote $OUT/meshai-agent-$RID.tar.gz ($size MB)"
echo "    On the other machine: tar xzf meshai-agent-$RID.tar.gz && sudo meshai-agent/install.sh 'meshai://join?…'"
