#!/usr/bin/env bash
# A tour of the bridge with bridge.example.toml: starts nats-server and rabbitmq-server on
# loopback (installing them if needed), prepares the streams, queues and the store, runs the
# bridge for a few seconds, then shows where the messages went.
# Ports: MQLITE_NATS_PORT (default 14222), MQLITE_AMQP_PORT (15699) and MQLITE_EPMD_PORT (14369)
# as for servers.sh; set them on a shared machine. It stops only what it started.
# It runs the README's build line, `cargo build --release -p mqlite-cli -p mqlite-bridge --bins
# --example demo_setup`, word for word (review r8 #5: an `--example` brings in the
# dev-dependencies, whose features unify differently, so a build without it was compiled again
# here): after the README's build nothing is compiled again; a first run compiles it all,
# which takes minutes. The store, config and stats live in a fresh `mktemp -d` directory,
# removed at the end (review r7 #6: a fixed /tmp path was removed and shared by every user).
set -euo pipefail
cd "$(dirname "$0")/../.."
srv=bindings/bridge/tests/servers.sh
export MQLITE_BRIDGE_SERVERS="$PWD/target/bridge-demo-servers"
nats_port="${MQLITE_NATS_PORT:-14222}"
amqp_port="${MQLITE_AMQP_PORT:-15699}"
epmd_port="${MQLITE_EPMD_PORT:-14369}"
listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
for p in "$nats_port" "$amqp_port"; do
  if listening "$p"; then
    echo "try.sh: port $p is in use (another broker?); set MQLITE_NATS_PORT/MQLITE_AMQP_PORT" >&2
    exit 1
  fi
done
# rabbitmq-server starts an epmd on the EPMD port unless one runs there already: stop it at the
# end only if this run started it.
epmd_ours=1
if listening "$epmd_port"; then epmd_ours=0; fi
bash "$srv" install
# Fresh brokers each time: the demo store is recreated too, and its message ids restart.
rm -rf "$MQLITE_BRIDGE_SERVERS/nats" "$MQLITE_BRIDGE_SERVERS/rabbitmq"
stop() {
  bash "$srv" stop nats
  bash "$srv" stop rabbitmq
  if [ "$epmd_ours" = 1 ]; then bash "$srv" stop-all; fi
}
demo="$(mktemp -d "${TMPDIR:-/tmp}/mqlite-bridge-demo.XXXXXX")"
trap 'stop; rm -rf "$demo"' EXIT
echo "try.sh: building (cargo build --release -p mqlite-cli -p mqlite-bridge --bins --example demo_setup)"
cargo build --release -p mqlite-cli -p mqlite-bridge --bins --example demo_setup
bash "$srv" start nats
bash "$srv" start rabbitmq
# The example config with this run's ports and directory.
sed -e "s/127.0.0.1:14222/127.0.0.1:$nats_port/" -e "s/127.0.0.1:15699/127.0.0.1:$amqp_port/" \
  -e "s#/tmp/mqlite-bridge-demo#$demo#g" \
  bindings/bridge/bridge.example.toml > "$demo/bridge.toml"
export MQLITE_DEMO_STORE="$demo/store"
target/release/examples/demo_setup
target/release/mqlite-bridge --config "$demo/bridge.toml" &
bridge=$!
sleep 3
kill -TERM "$bridge" && wait "$bridge"
target/release/examples/demo_setup show
cat "$demo/stats.json"
