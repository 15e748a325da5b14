#!/usr/bin/env bash
# A tour of the bridge with bridge.example.toml: starts nats-server and rabbitmq-server on
# loopback (installing them if needed), prepares the streams, queues and the store, runs the
# bridge for a few seconds, then shows where the messages went.
set -euo pipefail
cd "$(dirname "$0")/../.."
srv=bindings/bridge/tests/servers.sh
export MQLITE_BRIDGE_SERVERS="$PWD/target/bridge-demo-servers"
bash "$srv" install
bash "$srv" stop-all
# Fresh brokers each time: the demo store is recreated too, and its message ids restart.
rm -rf "$MQLITE_BRIDGE_SERVERS/nats" "$MQLITE_BRIDGE_SERVERS/rabbitmq"
trap 'bash "$srv" stop-all' EXIT
bash "$srv" start nats
bash "$srv" start rabbitmq
rm -rf /tmp/mqlite-bridge-demo && mkdir -p /tmp/mqlite-bridge-demo
cargo run -q --release -p mqlite-bridge --example demo_setup
cargo build -q --release -p mqlite-bridge
target/release/mqlite-bridge --config bindings/bridge/bridge.example.toml &
bridge=$!
sleep 3
kill -TERM "$bridge" && wait "$bridge"
cargo run -q --release -p mqlite-bridge --example demo_setup show
cat /tmp/mqlite-bridge-demo/stats.json
