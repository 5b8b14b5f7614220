#!/bin/sh
# Installs the MeshAI Net agent from this bundle, joins this machine to a network and keeps it running with systemd.
# Nothing else is needed on this machine: the bundle carries its own .NET runtime.
#
#   sudo ./install.sh 'meshai://join?server=…&token=…&fp=…'     system service (starts at boot); program in
#                                                                /opt/meshai-agent, state in /var/lib/meshai-agent
#   ./install.sh --user 'meshai://join?…'                        user service; program in ~/.local/share/meshai-agent,
#                                                                state in $MESHAI_HOME/agent (~/.meshai/agent)
#   ./install.sh --no-service 'meshai://join?…'                  install and join only (start with: meshai-agent run)
#
# The join link comes from `meshnet device join` on a machine that is signed in to the network.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
mode=system
[ "$(id -u)" = 0 ] || mode=user
service=yes
link=''
for arg in "$@"; do
  case $arg in
    --user) mode=user ;;
    --system) mode=system ;;
    --no-service) service=no ;;
    meshai://*) link=$arg ;;
    *) echo "error: unknown argument '$arg'. Usage: ./install.sh [--user | --system] [--no-service] 'meshai://join?…'" >&2; exit 2 ;;
  esac
done
[ -n "$link" ] || { echo "error: give the join link printed by \`meshnet device join\`: ./install.sh 'meshai://join?…'" >&2; exit 2; }
if [ "$mode" = system ] && [ "$(id -u)" != 0 ]; then
  echo "error: a system service needs root: sudo ./install.sh '…' (or ./install.sh --user '…')" >&2; exit 2
fi

if [ "$mode" = system ]; then
  prefix=${MESHAI_AGENT_PREFIX:-/opt/meshai-agent}; bindir=${MESHAI_BIN_DIR:-/usr/local/bin}; state=${MESHAI_AGENT_STATE:-/var/lib/meshai-agent}
else
  prefix=${MESHAI_AGENT_PREFIX:-$HOME/.local/share/meshai-agent}; bindir=${MESHAI_BIN_DIR:-$HOME/.local/bin}
  state=${MESHAI_AGENT_STATE:-${MESHAI_HOME:-$HOME/.meshai}/agent}
fi

echo "==> Installing meshai-agent in $prefix"
rm -rf "$prefix.new"
mkdir -p "$prefix.new" "$bindir"
cp -R "$here/bin/." "$prefix.new/"
rm -rf "$prefix"
mv "$prefix.new" "$prefix"
ln -sf "$prefix/meshai-agent" "$bindir/meshai-agent"
echo "    $bindir/meshai-agent → $prefix/meshai-agent"

echo "==> Joining this machine ($(hostname))"
"$prefix/meshai-agent" join "$link" --state-dir "$state" --name "$(hostname)"

if [ "$service" = yes ]; then
  echo "==> Installing the $mode service"
  "$prefix/meshai-agent" service install "--$mode" --state-dir "$state"
else
  echo "==> Start it with: meshai-agent run --state-dir $state"
fi
