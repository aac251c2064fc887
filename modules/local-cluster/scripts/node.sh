#!/bin/sh
# One local node: an OpenSSH sshd on its own loopback address.
#   node.sh start   needs NODE_RUN_ID NODE_RANK NODE_ADDRESS NODE_PORT NODE_DIR NODE_SSHD
#                   NODE_AUTHORIZED_KEY NODE_SESSION_ENV (NAME=value lines), NODE_PYTHON
#   node.sh stop    needs NODE_DIR (and NODE_PYTHON); stops every process of the node and
#                   removes its files; exits 1, naming them, if any process outlived it
# The host key NODE_DIR/ssh_host_ed25519_key is generated and pinned by the caller.
# sshd runs under supervise.py, a child subreaper: whatever a session starts, even a
# daemon that leaves its session and sheds every variable, stays in the node's tree.
set -eu
umask 077

here=$(CDPATH='' cd -- "$(dirname -- "$0")" && pwd)
python=${NODE_PYTHON:-python3}

# A process counts as alive until it has exited; a zombie waiting to be reaped
# by init has.
alive() {
  state=$(sed -n 's/^State:[[:space:]]*\(.\).*/\1/p' "/proc/$1/status" 2>/dev/null)
  [ -n "$state" ] && [ "$state" != Z ]
}

# One sshd_config argument: double-quoted, with backslashes and double quotes escaped.
conf_arg() {
  printf '"%s"' "$(printf '%s' "$1" | sed 's/[\\"]/\\&/g')"
}

stop_node() {
  status=0
  "$python" -I -S "$here/supervise.py" stop "$NODE_DIR" || status=$?
  rm -rf "$NODE_DIR"
  return "$status"
}

start_node() {
  test -x "$NODE_SSHD" || { echo "sshd not found at $NODE_SSHD" >&2; exit 1; }
  test -f "$NODE_DIR/ssh_host_ed25519_key" || { echo "host key missing in $NODE_DIR" >&2; exit 1; }
  command -v "$python" >/dev/null 2>&1 || { echo "python not found: $python" >&2; exit 1; }
  mkdir -p "$NODE_DIR/work"
  chmod 700 "$NODE_DIR" "$NODE_DIR/work"
  [ "$(id -u)" = 0 ] && mkdir -p /run/sshd && chmod 0755 /run/sshd
  printf '%s\n' "$NODE_AUTHORIZED_KEY" > "$NODE_DIR/authorized_keys"
  chmod 600 "$NODE_DIR/authorized_keys" "$NODE_DIR/ssh_host_ed25519_key"
  cfg="$NODE_DIR/sshd_config"
  # AuthorizedKeysFile expands %-tokens: a literal % is written %%.
  keys=$(printf '%s' "$NODE_DIR/authorized_keys" | sed 's/%/%%/g')
  {
    echo "# composer node $NODE_RANK of run $NODE_RUN_ID"
    echo "ListenAddress $NODE_ADDRESS:$NODE_PORT"
    echo "HostKey $(conf_arg "$NODE_DIR/ssh_host_ed25519_key")"
    echo "PidFile $(conf_arg "$NODE_DIR/sshd.pid")"
    echo "AuthorizedKeysFile $(conf_arg "$keys")"
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
    printf 'SetEnv %s %s %s %s' "$(conf_arg "COMPOSER_NODE_ADDR=$NODE_ADDRESS")" \
      "$(conf_arg "COMPOSER_NODE_RANK=$NODE_RANK")" "$(conf_arg "COMPOSER_NODE_DIR=$NODE_DIR")" \
      "$(conf_arg "COMPOSER_WORK_DIR=$NODE_DIR/work")"
    printf '%s\n' "$NODE_SESSION_ENV" | while IFS= read -r kv; do
      [ -n "$kv" ] && printf ' %s' "$(conf_arg "$kv")"
    done
    echo
  } > "$cfg"
  if ! "$NODE_SSHD" -f "$cfg" -t 2>"$NODE_DIR/sshd.log"; then
    cat "$NODE_DIR/sshd.log" >&2
    echo "node $NODE_RANK: sshd refused its configuration $cfg" >&2
    exit 1
  fi
  rm -f "$NODE_DIR/sshd.pid" "$NODE_DIR/node.pid"
  # The supervisor holds the node's processes; none of the NODE_* variables go with it,
  # so nothing looking for this script (by NODE_DIR) mistakes it for a start in progress.
  env -u NODE_DIR -u NODE_RUN_ID -u NODE_RANK -u NODE_ADDRESS -u NODE_PORT \
    -u NODE_AUTHORIZED_KEY -u NODE_SESSION_ENV -u NODE_PYTHON \
    "$python" -I -S "$here/supervise.py" run "$NODE_DIR" \
    </dev/null >/dev/null 2>>"$NODE_DIR/supervise.log" &
  supervisor=$!
  i=0
  while [ ! -s "$NODE_DIR/sshd.pid" ]; do
    i=$((i + 1))
    if [ "$i" -gt 100 ] || ! alive "$supervisor"; then
      cat "$NODE_DIR/supervise.log" "$NODE_DIR/sshd.log" >&2 2>/dev/null || true
      echo "node $NODE_RANK: sshd on $NODE_ADDRESS:$NODE_PORT did not come up" >&2
      stop_node || true
      exit 1
    fi
    sleep 0.05
  done
}

case "${1:-}" in
  start) start_node ;;
  stop) stop_node || exit $? ;;
  *) echo "usage: node.sh start|stop" >&2; exit 2 ;;
esac
