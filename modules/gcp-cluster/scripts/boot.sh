# composer's boot step on one Compute Engine node: the body of the node's startup script
# (startup.sh.tftpl sets the COMPOSER_* values above), run by the guest agent as root on
# every boot (modules/gcp-cluster/BOOT.md):
#   1. the guest agent keeps its hands off host keys from now on
#      (/etc/default/instance_configs.cfg: [InstanceSetup] set_host_keys = false);
#   2. the node's ed25519 host key composer made, and no other host key;
#   3. the login user with the run's client key (added to what the guest agent wrote from
#      the ssh-keys metadata, never rewritten), passwordless sudo, and the run's work dir,
#      0700, its own;
#   4. sshd serving only the installed host key, without passwords (restarted when it
#      serves another key or its configuration changed);
#   5. the OS packages the node lacks, then the pinned Python packages in
#      /opt/composer/venv;
#   6. /var/lib/composer/boot-finished, or boot-failed with the reason and the log's
#      last lines; the first line of either is this boot's id, so a marker left by an
#      earlier boot (or baked into an image) is never taken for this one.
# Safe to run again: a second run changes nothing. Logs to /var/log/composer-boot.log.
set -Eeuo pipefail
shopt -s lastpipe # `... | put FILE` runs put in this shell, so it can note a change
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export PATH

LOG=/var/log/composer-boot.log
STATE=/var/lib/composer
HOST_KEY=/etc/ssh/ssh_host_ed25519_key
SSHD_DROP_IN=/etc/ssh/sshd_config.d/10-composer.conf
AGENT_CONFIG=/etc/default/instance_configs.cfg
SUDOERS=/etc/sudoers.d/90-composer
VENV=/opt/composer/venv

umask 022
mkdir -p "$STATE"
chmod 0755 "$STATE"
touch "$LOG"
chmod 0640 "$LOG"
boot_id=$(cat /proc/sys/kernel/random/boot_id)

log() {
  local line
  line="$(date -u +%Y-%m-%dT%H:%M:%SZ) composer-boot: $*"
  echo "$line" >> "$LOG"
  echo "$line" >&2
}

marker() {
  # $1: boot-finished or boot-failed; the rest of the text on stdin.
  { echo "$boot_id"; cat; } > "$STATE/$1.tmp"
  chmod 0644 "$STATE/$1.tmp"
  mv -f "$STATE/$1.tmp" "$STATE/$1"
}

die() {
  trap - ERR
  log "error: $*"
  { echo "run $COMPOSER_RUN_ID: the boot step failed: $*"
    echo "--- last lines of $LOG ---"
    tail -n 15 "$LOG"; } | marker boot-failed
  exit 1
}
trap 'die "line $LINENO: \"$BASH_COMMAND\" failed (exit $?)"' ERR

# One run at a time (a second one waits for the first).
exec 9> /run/composer-boot.lock
flock 9
rm -f "$STATE/boot-finished" "$STATE/boot-failed"
log "run $COMPOSER_RUN_ID: boot step starts (boot $boot_id)"

case "$COMPOSER_USER" in
  '' | *[!a-z0-9_-]* | -*) die "not a user name: '$COMPOSER_USER'" ;;
esac
case "$COMPOSER_WORK_DIR" in /?*) ;; *) die "the work dir must be an absolute path" ;; esac
for package in $COMPOSER_PACKAGES; do
  case "$package" in
    *[!a-z0-9.+-]*) die "not a package name: '$package'" ;;
  esac
done
for spec in $COMPOSER_PIP_PACKAGES; do
  case "$spec" in
    *==*) ;;
    *) die "not a pinned Python package (name==version): '$spec'" ;;
  esac
done

changed=""
put() {
  # Write stdin to $1 (mode $2) unless it holds exactly that already; note a change.
  local file=$1 mode=$2
  # Made 0600 from its first byte (a host key is among these), whatever umask says.
  rm -f "$file.composer-new"
  (umask 077 && cat > "$file.composer-new")
  if [ -f "$file" ] && cmp -s "$file.composer-new" "$file"; then
    rm -f "$file.composer-new"
  else
    chmod "$mode" "$file.composer-new"
    mv -f "$file.composer-new" "$file"
    changed="$changed ${file##*/}"
  fi
  chmod "$mode" "$file"
}

# 1. The guest agent makes new host keys for a new instance, and could again later: not
# on this node.
mkdir -p "${AGENT_CONFIG%/*}"
{ cat "$AGENT_CONFIG" 2> /dev/null || true; } | awk '
  # Blank lines at the end of the section go after the setting.
  function flush() { while (blank > 0) { print ""; blank-- } }
  /^\[/ {
    if (inside && !done) { print "set_host_keys = false"; done = 1 }
    flush()
    inside = ($0 == "[InstanceSetup]")
    print
    next
  }
  inside && /^[ \t]*set_host_keys[ \t]*=/ { next }
  inside && /^[ \t]*$/ { blank++; next }
  { flush(); print }
  END {
    if (inside && !done) { print "set_host_keys = false"; done = 1 }
    flush()
    if (!done) {
      if (NR > 0) print ""
      print "[InstanceSetup]"
      print "set_host_keys = false"
    }
  }' | put "$AGENT_CONFIG" 0644
log "guest agent: set_host_keys = false ($AGENT_CONFIG)"

# 2. The node's host key, and only it.
printf '%s\n' "$COMPOSER_HOST_KEY_PRIVATE" | put "$HOST_KEY" 0600
printf '%s\n' "$COMPOSER_HOST_KEY_PUBLIC" | put "$HOST_KEY.pub" 0644
chown root:root "$HOST_KEY" "$HOST_KEY.pub"
for file in /etc/ssh/ssh_host_*; do
  [ -e "$file" ] || continue
  case "$file" in
    "$HOST_KEY" | "$HOST_KEY.pub") ;;
    *) rm -f "$file"; changed="$changed ${file##*/}(removed)" ;;
  esac
done
want=$(ssh-keygen -lf "$HOST_KEY.pub" | awk '{print $2}')
ssh-keygen -y -f "$HOST_KEY" > /dev/null 2>&1 || die "the host key at $HOST_KEY does not load"
log "host key $HOST_KEY: $want"

# 3. The login user, its key, sudo, the work dir.
if ! id "$COMPOSER_USER" > /dev/null 2>&1; then
  # The guest agent may make the user from ssh-keys at the same time: it may win.
  useradd --create-home --shell /bin/bash "$COMPOSER_USER" >> "$LOG" 2>&1 ||
    id "$COMPOSER_USER" > /dev/null 2>&1 || die "cannot create user $COMPOSER_USER"
  log "user $COMPOSER_USER: created"
fi
group=$(id -gn "$COMPOSER_USER")
home=$(getent passwd "$COMPOSER_USER" | cut -d: -f6)
[ -n "$home" ] && [ -d "$home" ] || die "user $COMPOSER_USER has no home directory"
mkdir -p "$home/.ssh"
chown "$COMPOSER_USER:$group" "$home/.ssh"
chmod 0700 "$home/.ssh"
keys=$home/.ssh/authorized_keys
if ! grep -qxF -- "$COMPOSER_AUTHORIZED_KEY" "$keys" 2> /dev/null; then
  # Appended, never rewritten: the guest agent manages its own lines in this file.
  if [ -s "$keys" ] && [ -n "$(tail -c 1 "$keys")" ]; then echo >> "$keys"; fi
  printf '%s\n' "$COMPOSER_AUTHORIZED_KEY" >> "$keys"
  log "user $COMPOSER_USER: the run's client key added to $keys"
fi
chown "$COMPOSER_USER:$group" "$keys"
chmod 0600 "$keys"
if [ -d /etc/sudoers.d ] && command -v sudo > /dev/null 2>&1; then
  printf '%s ALL=(ALL) NOPASSWD:ALL\n' "$COMPOSER_USER" | put "$SUDOERS" 0440
  if command -v visudo > /dev/null 2>&1 && ! visudo -cqf "$SUDOERS"; then
    rm -f "$SUDOERS"
    die "visudo refuses $SUDOERS"
  fi
fi
mkdir -p "$COMPOSER_WORK_DIR"
chown "$COMPOSER_USER:$group" "$COMPOSER_WORK_DIR"
chmod 0700 "$COMPOSER_WORK_DIR"
log "work dir $COMPOSER_WORK_DIR (0700, $COMPOSER_USER:$group)"

# 4. sshd on the installed key only, no passwords.
mkdir -p /run/sshd # sshd -t and sshd itself need it; systemd makes it only while sshd runs
if grep -qsiE '^[[:space:]]*Include[[:space:]]+/etc/ssh/sshd_config\.d/' /etc/ssh/sshd_config; then
  printf '%s\n' "# composer run $COMPOSER_RUN_ID: only the node's pinned host key; keys only." \
    "HostKey $HOST_KEY" "PasswordAuthentication no" "KbdInteractiveAuthentication no" |
    put "$SSHD_DROP_IN" 0644
fi
sshd -t 2>> "$LOG" || die "sshd -t: the sshd configuration does not load"

served() {
  local port
  for port in $(sshd -T 2> /dev/null | awk '$1 == "port" {print $2}'); do
    ssh-keyscan -T 5 -t ed25519 -p "$port" 127.0.0.1 2> /dev/null || true
  done | { ssh-keygen -lf - 2> /dev/null || true; } | awk '{print $2}' | sort -u
}

systemd_unit() {
  local unit
  for unit in ssh sshd; do
    if systemctl cat "$unit.service" > /dev/null 2>&1; then
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

restart_sshd() {
  local unit pid waited
  if [ -d /run/systemd/system ] && unit=$(systemd_unit); then
    systemctl restart "$unit.service"
    log "sshd: systemctl restart $unit.service"
    return 0
  fi
  # No service manager (a container): stop the sshd that runs, start one.
  pid=$(cat /run/sshd.pid 2> /dev/null || true)
  if [ -n "$pid" ] && kill "$pid" 2> /dev/null; then
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
if [ "$have" != "$want" ]; then
  log "sshd serves '${have:-nothing}': restarting it"
  restart_sshd
elif [ -n "$changed" ]; then
  log "changed:$changed: restarting sshd"
  restart_sshd
fi
tries=0
while [ "$(served)" != "$want" ]; do
  tries=$((tries + 1))
  [ "$tries" -lt 30 ] || die "sshd does not serve $HOST_KEY after 30 s"
  sleep 1
done
log "sshd serves $want"

# 5. Packages the node lacks, then the pinned Python packages.
present() {
  case "$1" in
    docker.io | docker) command -v docker ;;
    python3-venv) python3 -c 'import ensurepip' ;;
    *) command -v "$1" || dpkg -s "$1" || rpm -q "$1" ;;
  esac > /dev/null 2>&1
}

apt_updated=""
install_package() {
  if command -v apt-get > /dev/null 2>&1; then
    local apt=(apt-get -q -y -o DPkg::Lock::Timeout=600)
    if [ -z "$apt_updated" ]; then
      "${apt[@]}" update >> "$LOG" 2>&1 || die "apt-get update failed"
      apt_updated=1
    fi
    DEBIAN_FRONTEND=noninteractive "${apt[@]}" install "$1" >> "$LOG" 2>&1 ||
      die "apt-get install $1 failed"
  elif command -v dnf > /dev/null 2>&1; then
    local name=$1
    case "$1" in docker.io) name=docker ;; python3-venv) name=python3 ;; esac
    dnf install -y -q "$name" >> "$LOG" 2>&1 || die "dnf install $name failed"
  else
    die "no apt-get or dnf to install $1"
  fi
}

for package in $COMPOSER_PACKAGES; do
  if present "$package"; then
    log "package $package: already there"
  else
    install_package "$package"
    log "package $package: installed"
  fi
done

if [ -n "$COMPOSER_PIP_PACKAGES" ]; then
  stamp=$VENV/composer-pip-packages
  if [ "$(cat "$stamp" 2> /dev/null || true)" = "$COMPOSER_PIP_PACKAGES" ]; then
    log "venv $VENV: has $COMPOSER_PIP_PACKAGES"
  else
    [ -x "$VENV/bin/python" ] || python3 -m venv "$VENV" >> "$LOG" 2>&1 ||
      die "python3 -m venv $VENV failed"
    # shellcheck disable=SC2086 # one word per package
    PIP_DISABLE_PIP_VERSION_CHECK=1 "$VENV/bin/pip" install --quiet --no-input \
      $COMPOSER_PIP_PACKAGES >> "$LOG" 2>&1 || die "pip install $COMPOSER_PIP_PACKAGES failed"
    printf '%s\n' "$COMPOSER_PIP_PACKAGES" > "$stamp"
    log "venv $VENV: installed $COMPOSER_PIP_PACKAGES"
  fi
fi

# 6. Done: composer's READY_COMMAND waits for this.
echo "run $COMPOSER_RUN_ID: booted $(date -u +%Y-%m-%dT%H:%M:%SZ)" | marker boot-finished
log "boot step done"
