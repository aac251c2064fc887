#!/usr/bin/env bash
# A private Docker daemon for the tests and CI: its own data root, exec root, socket and
# pid file, no iptables, no bridge (containers use --network host). Needs root and
# dockerd (Debian's docker.io). The data root persists under DIR (default .cache/dockerd),
# so an image loaded once stays there; the socket, pid file and exec root live in a short
# directory under /tmp (unix socket paths are limited to 108 bytes).
#
#   images/dockerd.sh start [DIR]        start (or reuse) it; prints DOCKER_HOST=unix://...
#   images/dockerd.sh stop [DIR]         stop it by its pid, unmount and remove its exec root
#   images/dockerd.sh status [DIR]       exit 0 when it answers, printing DOCKER_HOST=...
#   images/dockerd.sh load IMAGE [DIR]   move IMAGE from podman's store into the daemon at
#                                        DOCKER_HOST (unset: the private one); skipped when it
#                                        already holds the same image Id
set -euo pipefail
cd "$(dirname "$0")/.."

cmd=${1:-}
if [ "$cmd" = load ]; then
  image=${2:?usage: $0 load IMAGE [DIR]}
  dir=${3:-.cache/dockerd}
else
  dir=${2:-.cache/dockerd}
fi
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
run=/tmp/composer-dockerd-$(printf '%s' "$dir" | sha256sum | cut -c1-12)
sock=$run/docker.sock
pidfile=$run/dockerd.pid
private=unix://$sock
# load: into the daemon DOCKER_HOST names, else the private one; the rest: the private one.
if [ "$cmd" != load ] || [ -z "${DOCKER_HOST:-}" ]; then export DOCKER_HOST=$private; fi

answers() { docker version --format '{{.Server.Version}}' >/dev/null 2>&1; }
running_pid() {
  local pid
  pid=$(cat "$pidfile" 2>/dev/null) || return 1
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null && echo "$pid"
}

start() {
  command -v dockerd >/dev/null || {
    echo "dockerd is not installed: apt-get install docker.io" >&2; exit 1; }
  command -v docker >/dev/null || {
    echo "the docker client is not installed: apt-get install docker.io" >&2; exit 1; }
  [ "$(id -u)" = 0 ] || { echo "a private dockerd needs root" >&2; exit 1; }
  if running_pid >/dev/null && answers; then
    echo "dockerd already running (pid $(running_pid)) at $DOCKER_HOST" >&2
    echo "DOCKER_HOST=$DOCKER_HOST"
    return
  fi
  mkdir -p "$run/exec" "$dir/data"
  rm -f "$sock" "$pidfile"
  dockerd --iptables=false --ip6tables=false --bridge=none \
    --data-root "$dir/data" --exec-root "$run/exec" -H "$DOCKER_HOST" \
    --pidfile "$pidfile" >"$dir/dockerd.log" 2>&1 </dev/null &
  local pid=$! i
  for i in $(seq 1 120); do
    if answers; then
      echo "dockerd started (pid $pid) at $DOCKER_HOST; log $dir/dockerd.log" >&2
      echo "DOCKER_HOST=$DOCKER_HOST"
      return
    fi
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.25
  done
  echo "dockerd did not answer at $DOCKER_HOST; last lines of $dir/dockerd.log:" >&2
  tail -n 5 "$dir/dockerd.log" >&2 || true
  kill "$pid" 2>/dev/null || true
  cleanup
  exit 1
}

cleanup() {
  # dockerd leaves its default network namespace mounted in the exec root.
  umount "$run/exec/netns/default" 2>/dev/null || true
  rm -rf "$run"
}

stop() {
  local pid i
  if ! pid=$(running_pid); then
    cleanup
    echo "no dockerd running for $dir" >&2
    return
  fi
  kill -TERM "$pid"
  for i in $(seq 1 120); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.25
  done
  if kill -0 "$pid" 2>/dev/null; then
    echo "dockerd (pid $pid) still up after 30s: killing it" >&2
    kill -KILL "$pid" 2>/dev/null || true
  fi
  cleanup
  echo "dockerd (pid $pid) stopped" >&2
}

load() {
  answers || { echo "no dockerd answers at $DOCKER_HOST: run $0 start first" >&2; exit 1; }
  local want have
  want=$(podman image inspect --format '{{.Id}}' "$image")
  have=$(docker image inspect --format '{{.Id}}' "$image" 2>/dev/null || true)
  if [ "${have#sha256:}" = "${want#sha256:}" ]; then
    echo "docker already holds $image (sha256:${want#sha256:})" >&2
    return
  fi
  podman save "$image" | docker load >&2
}

case "$cmd" in
  start) start ;;
  stop) stop ;;
  status) answers && echo "DOCKER_HOST=$DOCKER_HOST" ;;
  load) load ;;
  *) echo "usage: $0 start|stop|status [DIR] | load IMAGE [DIR]" >&2; exit 2 ;;
esac
