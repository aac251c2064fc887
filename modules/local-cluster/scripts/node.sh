#!/bin/sh
# One local node: an OpenSSH sshd on its own loopback address.
#   node.sh start   needs NODE_RUN_ID NODE_RANK NODE_ADDRESS NODE_PORT NODE_DIR NODE_SSHD
#                   NODE_AUTHORIZED_KEY NODE_SESSION_ENV (NAME=value lines)
#   node.sh stop    needs NODE_DIR; stops the node's sshd and removes its files
# The host key NODE_DIR/ssh_host_ed25519_key is generated and pinned by the caller.
set -eu

# A process counts as alive until it has exited; a zombie waiting to be reaped
# by init has.
alive() {
  state=$(sed -n 's/^State:[[:space:]]*\(.\).*/\1/p' "/proc/$1/status" 2>/dev/null)
  [ -n "$state" ] && [ "$state" != Z ]
}

stop_node() {
  pidfile="$NODE_DIR/sshd.pid"
  if [ -f "$pidfile" ]; then
    pid=$(cat "$pidfile")
    if alive "$pid" && grep -q "$NODE_DIR/sshd_config" "/proc/$pid/cmdline" 2>/dev/null; then
      # Open sessions first, so every connection to the node drops with it:
      # a moment to exit cleanly, then killed.
      if pkill -TERM -P "$pid" 2>/dev/null; then
        i=0
        while pgrep -P "$pid" >/dev/null 2>&1 && [ "$i" -lt 10 ]; do
          sleep 0.05
          i=$((i + 1))
        done
        pkill -KILL -P "$pid" 2>/dev/null || true
      fi
      kill -TERM "$pid" 2>/dev/null || true
      i=0
      while alive "$pid" && [ "$i" -lt 100 ]; do
        sleep 0.05
        i=$((i + 1))
      done
      alive "$pid" && kill -KILL "$pid" 2>/dev/null
    fi
  fi
  # Processes started through the node's sessions (the workload) go with it.
  for env in $(grep -lzsx "COMPOSER_NODE_DIR=$NODE_DIR" /proc/[0-9]*/environ); do
    pid=${env#/proc/}
    kill -KILL "${pid%/environ}" 2>/dev/null || true
  done
  rm -rf "$NODE_DIR"
}

start_node() {
  test -x "$NODE_SSHD" || { echo "sshd not found at $NODE_SSHD" >&2; exit 1; }
  test -f "$NODE_DIR/ssh_host_ed25519_key" || { echo "host key missing in $NODE_DIR" >&2; exit 1; }
  mkdir -p "$NODE_DIR/work"
  [ "$(id -u)" = 0 ] && mkdir -p /run/sshd && chmod 0755 /run/sshd
  printf '%s\n' "$NODE_AUTHORIZED_KEY" > "$NODE_DIR/authorized_keys"
  chmod 600 "$NODE_DIR/authorized_keys" "$NODE_DIR/ssh_host_ed25519_key"
  cfg="$NODE_DIR/sshd_config"
  {
    echo "# composer node $NODE_RANK of run $NODE_RUN_ID"
    echo "ListenAddress $NODE_ADDRESS:$NODE_PORT"
    echo "HostKey $NODE_DIR/ssh_host_ed25519_key"
    echo "PidFile $NODE_DIR/sshd.pid"
    echo "AuthorizedKeysFile $NODE_DIR/authorized_keys"
    echo "PubkeyAuthentication yes"
    echo "PasswordAuthentication no"
    echo "KbdInteractiveAuthentication no"
    echo "PermitRootLogin prohibit-password"
    echo "UsePAM no"
    echo "StrictModes no"
    echo "PrintMotd no"
    echo "AllowTcpForwarding no"
    echo "X11Forwarding no"
    echo "MaxStartups 256:30:512"
    echo "MaxSessions 256"
    echo "LogLevel ERROR"
    echo "Subsystem sftp internal-sftp"
    # sshd honours only the first SetEnv line: every variable goes on that one.
    printf 'SetEnv "COMPOSER_NODE_ADDR=%s" "COMPOSER_NODE_RANK=%s" "COMPOSER_NODE_DIR=%s" "COMPOSER_WORK_DIR=%s"' \
      "$NODE_ADDRESS" "$NODE_RANK" "$NODE_DIR" "$NODE_DIR/work"
    printf '%s\n' "$NODE_SESSION_ENV" | while IFS= read -r kv; do
      [ -n "$kv" ] && printf ' "%s"' "$kv"
    done
    echo
  } > "$cfg"
  rm -f "$NODE_DIR/sshd.pid"
  if ! "$NODE_SSHD" -f "$cfg" -E "$NODE_DIR/sshd.log"; then
    cat "$NODE_DIR/sshd.log" >&2 2>/dev/null || true
    echo "node $NODE_RANK: sshd failed to start on $NODE_ADDRESS:$NODE_PORT" >&2
    exit 1
  fi
  i=0
  while [ ! -s "$NODE_DIR/sshd.pid" ]; do
    i=$((i + 1))
    if [ "$i" -gt 100 ]; then
      cat "$NODE_DIR/sshd.log" >&2 2>/dev/null || true
      echo "node $NODE_RANK: sshd on $NODE_ADDRESS:$NODE_PORT did not come up" >&2
      stop_node
      exit 1
    fi
    sleep 0.05
  done
}

case "${1:-}" in
  start) start_node ;;
  stop) stop_node ;;
  *) echo "usage: node.sh start|stop" >&2; exit 2 ;;
esac
