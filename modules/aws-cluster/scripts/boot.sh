#!/bin/sh
# composer's boot step on one AWS node, run as root by cloud-init (runcmd) after the
# node's host key and the run's client key are installed (modules/aws-cluster/BOOT.md):
#   1. the provider-side time limit: `shutdown -h +N`, N = the minutes from now until
#      --expires-at-epoch plus --grace-minutes, rounded up, at least 1 (none when the
#      epoch is 0); the instance's shutdown behaviour "terminate" then ends it even
#      when composer is gone;
#   2. itself, with these arguments, as a cloud-init per-boot script: runcmd runs once
#      per instance and a scheduled shutdown does not survive a reboot, so after a reboot
#      the limit is scheduled again (at least a minute away when it has passed);
#   3. the run's work dir, 0700, owned by the login user;
#   4. sshd serving the installed ed25519 host key (started, or restarted when the key
#      it serves is another one);
#   5. each --package the node lacks, with apt-get or dnf (once: not on later boots). A
#      package is skipped when what it provides is there already (an image's own
#      Docker: installing docker.io over docker-ce would conflict).
# Safe to run again. Logs to /var/log/composer-boot.log; never prints key material.
#
#   composer-boot --run-id ID --user USER --work-dir DIR --expires-at-epoch SECONDS
#                 [--grace-minutes MINUTES] [--package NAME]...
set -eu
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export PATH

LOG=/var/log/composer-boot.log
HOST_KEY=/etc/ssh/ssh_host_ed25519_key

log() {
  line="$(date -u +%Y-%m-%dT%H:%M:%SZ) composer-boot: $*"
  echo "$line" >> "$LOG"
  echo "$line" >&2
}

die() {
  log "error: $*"
  exit 1
}

is_count() {
  case "$1" in '' | *[!0-9]*) return 1 ;; *) return 0 ;; esac
}

run_id="" user="" work_dir="" expires="" grace=0 packages=""
while [ $# -gt 0 ]; do
  [ $# -ge 2 ] || die "$1 needs a value"
  case "$1" in
    --run-id) run_id=$2 ;;
    --user) user=$2 ;;
    --work-dir) work_dir=$2 ;;
    --expires-at-epoch) expires=$2 ;;
    --grace-minutes) grace=$2 ;;
    --package)
      case "$2" in
        '' | *[!A-Za-z0-9.+-]*) die "--package: not a package name: '$2'" ;;
      esac
      packages="$packages $2" ;;
    *) die "unknown argument: $1" ;;
  esac
  shift 2
done
[ -n "$run_id" ] && [ -n "$user" ] && [ -n "$work_dir" ] ||
  die "usage: composer-boot --run-id ID --user USER --work-dir DIR --expires-at-epoch S [--grace-minutes M]"
is_count "$expires" || die "--expires-at-epoch must be a whole number of seconds: '$expires'"
is_count "$grace" || die "--grace-minutes must be a whole number: '$grace'"
case "$work_dir" in /?*) ;; *) die "--work-dir must be an absolute path: '$work_dir'" ;; esac

umask 022
touch "$LOG" && chmod 0640 "$LOG"
log "run $run_id: boot step starts"

# 1. The time limit, first: whatever fails after it, the node still ends on time.
if [ "$expires" -gt 0 ]; then
  now=$(date +%s)
  seconds=$((expires - now + grace * 60))
  minutes=$(((seconds + 59) / 60))
  [ "$minutes" -ge 1 ] || minutes=1
  shutdown -h "+$minutes" "composer run $run_id: time limit reached" ||
    die "shutdown -h +$minutes failed"
  log "time limit: shutdown -h +$minutes (expires at epoch $expires, grace $grace min)"
else
  log "time limit: none (expires-at-epoch 0)"
fi

# 2. Again on every boot.
quote() {
  printf "'%s'" "$(printf '%s' "$1" | sed "s/'/'\\\\''/g")"
}
hook=/var/lib/cloud/scripts/per-boot/composer-boot
self=$(cd "$(dirname "$0")" && pwd)/$(basename "$0")
mkdir -p "${hook%/*}"
printf '%s\n' '#!/bin/sh' \
  '# composer: the boot step again on every boot (the time limit survives a reboot).' \
  "exec $(quote "$self") --run-id $(quote "$run_id") --user $(quote "$user") \\" \
  "  --work-dir $(quote "$work_dir") --expires-at-epoch $expires --grace-minutes $grace" \
  > "$hook.tmp"
chmod 0755 "$hook.tmp"
mv -f "$hook.tmp" "$hook"
log "per-boot: $hook"

# 3. The work dir.
id "$user" >/dev/null 2>&1 || die "login user '$user' does not exist"
group=$(id -gn "$user")
mkdir -p "$work_dir"
chown "$user:$group" "$work_dir"
chmod 0700 "$work_dir"
log "work dir $work_dir (0700, $user:$group)"

# 4. sshd on the installed host key.
[ -s "$HOST_KEY" ] && [ -s "$HOST_KEY.pub" ] || die "no host key at $HOST_KEY"
chmod 0600 "$HOST_KEY"
mkdir -p /run/sshd  # sshd -t and sshd itself need it; systemd makes it only while sshd runs
want=$(ssh-keygen -lf "$HOST_KEY.pub" | awk '{print $2}')
log "host key $HOST_KEY: $want"

served() {
  for port in $(sshd -T 2>/dev/null | awk '$1 == "port" {print $2}'); do
    ssh-keyscan -T 5 -t ed25519 -p "$port" 127.0.0.1 2>/dev/null
  done | ssh-keygen -lf - 2>/dev/null | awk '{print $2}' | sort -u
}

systemd_unit() {
  for unit in ssh sshd; do
    if systemctl cat "$unit.service" >/dev/null 2>&1; then
      echo "$unit"
      return 0
    fi
  done
  return 1
}

running() {
  # A process that has not exited (a zombie nobody reaped yet has).
  [ -r "/proc/$1/status" ] && ! grep -q '^State:[[:space:]]*Z' "/proc/$1/status"
}

start_sshd() {
  # $1: "start" or "restart".
  sshd -t || die "sshd -t: the sshd configuration does not load"
  if [ -d /run/systemd/system ] && unit=$(systemd_unit); then
    systemctl "$1" "$unit.service"
    log "sshd: systemctl $1 $unit.service"
    return 0
  fi
  # No service manager (a container): stop the sshd that runs, start one on the key.
  pid=$(cat /run/sshd.pid 2>/dev/null || true)
  if [ -n "$pid" ] && kill "$pid" 2>/dev/null; then
    waited=0
    while running "$pid" && [ "$waited" -lt 10 ]; do
      sleep 1
      waited=$((waited + 1))
    done
    log "sshd: no service manager; stopped sshd $pid"
  fi
  "$(command -v sshd)"
  log "sshd: no service manager; started $(command -v sshd)"
}

have=$(served)
if [ -z "$have" ]; then
  start_sshd start
elif [ "$have" != "$want" ]; then
  log "sshd serves another host key: restarting it"
  start_sshd restart
fi
tries=0
while [ "$(served)" != "$want" ]; do
  tries=$((tries + 1))
  [ "$tries" -lt 30 ] || die "sshd does not serve $HOST_KEY after 30 s"
  sleep 1
done
log "sshd serves $want"

# 5. Packages the node lacks.
present() {
  case "$1" in
    docker.io | docker) command -v docker ;;
    python3-venv) python3 -c 'import ensurepip' ;;
    *) command -v "$1" || dpkg -s "$1" || rpm -q "$1" ;;
  esac >/dev/null 2>&1
}

install_package() {
  if command -v apt-get >/dev/null 2>&1; then
    [ -n "${apt_updated:-}" ] || { apt-get update -q >/dev/null && apt_updated=1; } ||
      die "apt-get update failed"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$1" >/dev/null ||
      die "apt-get install $1 failed"
  elif command -v dnf >/dev/null 2>&1; then
    case "$1" in docker.io) name=docker ;; python3-venv) name=python3 ;; *) name=$1 ;; esac
    dnf install -y -q "$name" >/dev/null || die "dnf install $name failed"
  else
    die "no apt-get or dnf to install $1"
  fi
}

for package in $packages; do
  if present "$package"; then
    log "package $package: already there"
  else
    install_package "$package"
    log "package $package: installed"
  fi
done
log "boot step done"
