#!/usr/bin/env bash
# W12: the bridge's forwarding rate to NATS JetStream beside JetStream's own async publish rate.
# Installs and starts nats-server (fsync on every write) on loopback, runs the benchmark, stops it.
#   bash benches/bridge/run.sh                       # full size: 200,000 messages, 3 runs
#   MQLITE_BENCH_QUICK=1 bash benches/bridge/run.sh  # smoke run: 20,000 messages
set -euo pipefail
cd "$(dirname "$0")/../.."
srv=bindings/bridge/tests/servers.sh
export MQLITE_BRIDGE_SERVERS="${MQLITE_BRIDGE_SERVERS:-$PWD/target/bridge-bench-servers}"
export MQLITE_NATS_PORT="${MQLITE_NATS_PORT:-14322}"
bash "$srv" install
bash "$srv" stop nats
rm -rf "$MQLITE_BRIDGE_SERVERS/nats"
trap 'bash "$srv" stop nats' EXIT
bash "$srv" start nats
eval "$(bash "$srv" env | sed 's/^/export /')"
cargo bench -p mqlite-bridge --bench w12
