#!/usr/bin/env bash
# buf lint + buf breaking (against the previous commit, HEAD~1) for protos/.
# Uses the buf pinned in the root package.json (run `npm ci` at the repo root first; ./test.sh does).
# Exit 0 when clean (or when there is nothing to compare against), non-zero on any lint/breaking finding.
set -uo pipefail
cd "$(dirname "$0")/.."

BUF="node_modules/.bin/buf"
if [ ! -x "$BUF" ]; then
  echo "buf-check: $BUF missing; run 'npm ci' at the repository root" >&2
  exit 2
fi

status=0
echo "buf-check: buf $("$BUF" --version) lint"
if "$BUF" lint; then
  echo "buf-check: lint clean"
else
  echo "buf-check: LINT FAILED" >&2
  status=1
fi

against=""
if ! git rev-parse --git-dir >/dev/null 2>&1; then
  echo "buf-check: not a git checkout; skipping buf breaking"
else
  if [ "$(git rev-parse --is-shallow-repository 2>/dev/null)" = "true" ] && ! git rev-parse -q --verify 'HEAD~1^{commit}' >/dev/null; then
    echo "buf-check: shallow clone; fetching one more commit for buf breaking"
    git fetch -q --deepen=1 2>/dev/null || echo "buf-check: could not deepen the shallow clone"
  fi
  if ! git rev-parse -q --verify 'HEAD~1^{commit}' >/dev/null; then
    echo "buf-check: no previous commit (HEAD~1) available; skipping buf breaking (first commit or shallow clone)"
  elif ! git cat-file -e 'HEAD~1:protos' 2>/dev/null || ! git cat-file -e 'HEAD~1:buf.yaml' 2>/dev/null; then
    echo "buf-check: HEAD~1 has no protos/ or buf.yaml; skipping buf breaking"
  else
    against=".git#ref=HEAD~1"
  fi
fi

if [ -n "$against" ]; then
  echo "buf-check: breaking against $against ($(git rev-parse --short HEAD~1))"
  if "$BUF" breaking --against "$against"; then
    echo "buf-check: no breaking changes"
  else
    echo "buf-check: BREAKING CHANGES against HEAD~1" >&2
    status=1
  fi
fi

exit $status
