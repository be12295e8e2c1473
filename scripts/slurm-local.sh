#!/usr/bin/env bash
# A real single-node Slurm on this machine, for the tests and CI (Debian's slurm packages, munge auth).
#
#   scripts/slurm-local.sh start    install if missing, configure, start munged/slurmctld/slurmd, wait until usable
#   scripts/slurm-local.sh stop     stop the three daemons (SIGTERM by PID file)
#   scripts/slurm-local.sh status   say what runs; exit 0 only when all three run and the node takes jobs
#
# Needs root and Debian (apt). No systemd: the daemons are started directly and found by their PID
# files in /run. `start` is idempotent: when everything already runs with the same configuration it
# returns at once. One command per line on purpose: under `set -e` a failure inside an `a && b && c`
# list does not stop the script.
set -euo pipefail
# Without this, bash switches -e off inside $(...), and a failing helper's output would be used anyway.
shopt -s inherit_errexit

PACKAGES=(slurmctld slurmd slurm-client munge)
CONF=/etc/slurm/slurm.conf
MUNGE_KEY=/etc/munge/munge.key
MUNGE_PID=/run/munge/munged.pid
SLURMCTLD_PID=/run/slurmctld.pid
SLURMD_PID=/run/slurmd.pid
LOG_DIR=/var/log/slurm
LOCK=/run/slurm-local.lock
READY_TIMEOUT_S=${SLURM_LOCAL_READY_TIMEOUT_S:-60}
STOP_TIMEOUT_S=${SLURM_LOCAL_STOP_TIMEOUT_S:-15}
USABLE_STATES="idle mixed allocated completing"

die() {
  echo "slurm-local: error: $*" >&2
  exit 1
}

say() {
  echo "slurm-local: $*"
}

now_s() {
  date +%s.%N
}

elapsed() {
  # Seconds since $1 (from now_s), one decimal.
  awk -v a="$1" -v b="$(now_s)" 'BEGIN { printf "%.1f", b - a }'
}

require_root() {
  if [ "$(id -u)" -ne 0 ]; then
    die "must run as root (it installs packages, writes /etc/slurm and starts daemons); try: sudo $0 $*"
  fi
}

# Whether process $1 exists and is not a zombie. PID 1 here (not an init system) reaps orphans only
# every second or two, so a daemon that exited can linger as a zombie that `kill -0` still finds.
alive() {
  local pid="$1" state
  kill -0 "$pid" 2>/dev/null || return 1
  state="$(sed 's/.*) //' "/proc/$pid/stat" 2>/dev/null | cut -d' ' -f1 || true)"
  [ -n "$state" ] && [ "$state" != Z ] && [ "$state" != X ]
}

# PID recorded in $1 when that process is alive and is the program $2, else nothing (exit 1).
live_pid() {
  local file="$1" comm="$2" pid actual
  [ -r "$file" ] || return 1
  pid="$(tr -dc '0-9' <"$file")"
  [ -n "$pid" ] || return 1
  alive "$pid" || return 1
  # A stale PID file whose number was reused by another program does not count.
  actual="$(cat "/proc/$pid/comm" 2>/dev/null || true)"
  [ "$actual" = "$comm" ] || return 1
  echo "$pid"
}

installed() {
  local pkg
  for pkg in "${PACKAGES[@]}"; do
    if ! dpkg-query -W -f '${db:Status-Status}' "$pkg" 2>/dev/null | grep -qx installed; then
      return 1
    fi
  done
  return 0
}

install_packages() {
  local t0
  if installed; then
    return 0
  fi
  command -v apt-get >/dev/null || die "apt-get not found: this script installs Slurm from Debian packages (${PACKAGES[*]})"
  t0="$(now_s)"
  say "installing ${PACKAGES[*]} (apt-get update first)"
  if ! DEBIAN_FRONTEND=noninteractive apt-get update -qq >/tmp/slurm-local-apt.log 2>&1; then
    cat /tmp/slurm-local-apt.log >&2
    die "apt-get update failed (log above, also in /tmp/slurm-local-apt.log)"
  fi
  if ! DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${PACKAGES[@]}" >>/tmp/slurm-local-apt.log 2>&1; then
    tail -n 40 /tmp/slurm-local-apt.log >&2
    die "apt-get install ${PACKAGES[*]} failed (log above, also in /tmp/slurm-local-apt.log)"
  fi
  installed || die "apt-get reported success but ${PACKAGES[*]} are not all installed"
  say "installed in $(elapsed "$t0") s"
}

# Make the host name resolve to a local address: slurmd registers under the node name, which must resolve to its NodeAddr.
ensure_host_resolves() {
  local host="$1" addrs addr local_addr
  addrs="$(getent hosts "$host" | awk '{ print $1 }' || true)"
  for addr in $addrs; do
    if [[ "$addr" == 127.* ]]; then
      return 0
    fi
    for local_addr in $(hostname -I 2>/dev/null || true); do
      if [ "$addr" = "$local_addr" ]; then
        return 0
      fi
    done
  done
  say "host name $host does not resolve to 127.0.0.1 or an address of this machine (got: ${addrs:-nothing}); adding '127.0.0.1 $host' to /etc/hosts"
  printf '127.0.0.1 %s\n' "$host" >>/etc/hosts
  addrs="$(getent hosts "$host" | awk '{ print $1 }' || true)"
  for addr in $addrs; do
    if [[ "$addr" == 127.* ]]; then
      return 0
    fi
  done
  die "$host still resolves to '${addrs:-nothing}' after adding it to /etc/hosts; fix name resolution for $host by hand"
}

# The node's hardware as `slurmd -C` sees it: "CPUs=2 Boards=1 ... RealMemory=24105".
node_hardware() {
  local line
  line="$(/usr/sbin/slurmd -C 2>/dev/null | grep -m1 '^NodeName=' || true)"
  [ -n "$line" ] || die "'slurmd -C' printed no NodeName line; cannot describe this node"
  # Drop the NodeName=... field; keep the hardware fields in their order.
  echo "$line" | tr ' ' '\n' | grep -E '^(CPUs|Boards|SocketsPerBoard|CoresPerSocket|ThreadsPerCore|RealMemory)=' | tr '\n' ' ' | sed 's/ $//'
}

render_conf() {
  local host="$1" hardware="$2"
  cat <<EOF
# Written by scripts/slurm-local.sh (HPC-vQPU): a single-node Slurm for tests and CI.
ClusterName=vqpu
SlurmctldHost=${host}(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
ReturnToService=2
SlurmctldPidFile=${SLURMCTLD_PID}
SlurmdPidFile=${SLURMD_PID}
SlurmdSpoolDir=/var/spool/slurmd
StateSaveLocation=/var/spool/slurmctld
SlurmctldLogFile=${LOG_DIR}/slurmctld.log
SlurmdLogFile=${LOG_DIR}/slurmd.log
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=1024
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/filetxt
JobCompLoc=${LOG_DIR}/jobcomp.log
SchedulerParameters=batch_sched_delay=0,sched_min_interval=0,bf_interval=1
MinJobAge=300
KillWait=5
InactiveLimit=0
NodeName=${host} NodeAddr=127.0.0.1 ${hardware} State=UNKNOWN
PartitionName=debug Nodes=${host} Default=YES MaxTime=INFINITE State=UP
EOF
}

# Write slurm.conf when its content differs; prints "changed" when it wrote it.
write_conf() {
  local host="$1" hardware want
  hardware="$(node_hardware)"
  want="$(render_conf "$host" "$hardware")"
  mkdir -p "$(dirname "$CONF")"
  if [ -f "$CONF" ] && [ "$(cat "$CONF")" = "$want" ]; then
    return 0
  fi
  if [ -f "$CONF" ] && ! grep -q '^# Written by scripts/slurm-local.sh' "$CONF"; then
    cp -p "$CONF" "$CONF.before-slurm-local"
    say "kept the previous $CONF as $CONF.before-slurm-local" >&2
  fi
  printf '%s\n' "$want" >"$CONF.tmp"
  chmod 0644 "$CONF.tmp"
  mv "$CONF.tmp" "$CONF"
  say "wrote $CONF (node $host: $hardware)" >&2
  echo changed
}

make_dirs() {
  mkdir -p /var/spool/slurmd /var/spool/slurmctld "$LOG_DIR" /run/munge /var/lib/munge /var/log/munge /etc/munge
  chown munge:munge /run/munge /var/lib/munge /var/log/munge /etc/munge
  chmod 0755 /run/munge
  chmod 0700 /etc/munge /var/lib/munge /var/log/munge
}

ensure_munge_key() {
  if [ -s "$MUNGE_KEY" ]; then
    chown munge:munge "$MUNGE_KEY"
    chmod 0400 "$MUNGE_KEY"
    return 0
  fi
  say "creating $MUNGE_KEY"
  if command -v mungekey >/dev/null; then
    mungekey --create --keyfile="$MUNGE_KEY" --force
  elif command -v create-munge-key >/dev/null; then
    create-munge-key -f
  else
    dd if=/dev/urandom of="$MUNGE_KEY" bs=1024 count=1 status=none
  fi
  [ -s "$MUNGE_KEY" ] || die "could not create $MUNGE_KEY"
  chown munge:munge "$MUNGE_KEY"
  chmod 0400 "$MUNGE_KEY"
}

# Wait until the PID file $1 names a live $2; on timeout show the log $3 and fail.
wait_alive() {
  local file="$1" comm="$2" log="$3"
  for _ in $(seq 1 100); do
    if live_pid "$file" "$comm" >/dev/null; then
      return 0
    fi
    sleep 0.1
  done
  if [ -f "$log" ]; then
    echo "--- last lines of $log ---" >&2
    tail -n 20 "$log" >&2
  fi
  die "$comm did not start within 10 s (no live PID in $file)"
}

start_munged() {
  if live_pid "$MUNGE_PID" munged >/dev/null; then
    return 0
  fi
  say "starting munged"
  # 9>&-: the daemon must not inherit (and so hold forever) the lock taken in main.
  if ! runuser -u munge -- /usr/sbin/munged --force 9>&-; then
    tail -n 20 /var/log/munge/munged.log >&2 || true
    die "munged failed to start"
  fi
  wait_alive "$MUNGE_PID" munged /var/log/munge/munged.log
}

start_slurm_daemon() {
  local name="$1" pidfile="$2"
  if live_pid "$pidfile" "$name" >/dev/null; then
    return 0
  fi
  say "starting $name"
  if ! "/usr/sbin/$name" 9>&-; then
    tail -n 20 "$LOG_DIR/$name.log" >&2 || true
    die "$name failed to start (log: $LOG_DIR/$name.log)"
  fi
  wait_alive "$pidfile" "$name" "$LOG_DIR/$name.log"
}

node_state() {
  sinfo -h -N -n "$1" -o %T 2>/dev/null | head -n1 || true
}

usable_state() {
  local state="$1" ok
  for ok in $USABLE_STATES; do
    if [ "$state" = "$ok" ]; then
      return 0
    fi
  done
  return 1
}

# Whether the node's slurmd registered with slurmctld at or after epoch second $2 (0: any registration).
registered_since() {
  local host="$1" since="$2" when epoch
  [ "$since" -gt 0 ] || return 0
  when="$(scontrol show node "$host" -o 2>/dev/null | grep -o 'SlurmdStartTime=[^ ]*' | cut -d= -f2 || true)"
  epoch="$(date -d "$when" +%s 2>/dev/null || echo 0)"
  [ "$epoch" -ge "$since" ]
}

# Wait until slurmctld answers and the node takes jobs. $2: when this run started slurmd (epoch s, 0 if
# it did not): slurmctld restores the node's state from its state file, so "idle" alone could be stale.
wait_ready() {
  local host="$1" slurmd_started="$2" t0 state="" resumed=""
  t0="$(now_s)"
  while true; do
    if scontrol ping >/dev/null 2>&1; then
      state="$(node_state "$host")"
      if usable_state "$state" && registered_since "$host" "$slurmd_started"; then
        return 0
      fi
      case "$state" in
        down* | drain* | fail*)
          if [ -z "$resumed" ]; then
            say "node $host is $state; resuming it"
            scontrol update nodename="$host" state=resume || true
            resumed=1
          fi
          ;;
      esac
    fi
    if awk -v a="$t0" -v b="$(now_s)" -v t="$READY_TIMEOUT_S" 'BEGIN { exit !(b - a > t) }'; then
      echo "--- sinfo ---" >&2
      sinfo -N -l >&2 || true
      echo "--- last lines of $LOG_DIR/slurmctld.log ---" >&2
      tail -n 15 "$LOG_DIR/slurmctld.log" >&2 || true
      echo "--- last lines of $LOG_DIR/slurmd.log ---" >&2
      tail -n 15 "$LOG_DIR/slurmd.log" >&2 || true
      die "node $host not usable after ${READY_TIMEOUT_S} s (state: '${state:-no answer from slurmctld}')"
    fi
    sleep 0.2
  done
}

stop_pid() {
  local name="$1" pidfile="$2" pid t0
  if ! pid="$(live_pid "$pidfile" "$name")"; then
    say "$name was not running"
    return 0
  fi
  t0="$(now_s)"
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 1 $((STOP_TIMEOUT_S * 10))); do
    if ! alive "$pid"; then
      say "stopped $name (pid $pid, $(elapsed "$t0") s)"
      return 0
    fi
    sleep 0.1
  done
  say "$name (pid $pid) ignored SIGTERM for ${STOP_TIMEOUT_S} s; sending SIGKILL" >&2
  kill -KILL "$pid" 2>/dev/null || true
  sleep 0.5
  if alive "$pid"; then
    die "could not stop $name (pid $pid)"
  fi
  say "killed $name (pid $pid)"
}

cmd_start() {
  local t0 host changed slurmd_started
  t0="$(now_s)"
  install_packages
  host="$(hostname -s)"
  [ -n "$host" ] || die "this machine has no host name"
  ensure_host_resolves "$host"
  make_dirs
  ensure_munge_key
  changed="$(write_conf "$host")"
  if [ "$changed" = changed ]; then
    # slurmctld reads the node definition only at start: restart what runs with an older file.
    if live_pid "$SLURMD_PID" slurmd >/dev/null || live_pid "$SLURMCTLD_PID" slurmctld >/dev/null; then
      say "configuration changed: restarting slurmd and slurmctld"
      stop_pid slurmd "$SLURMD_PID"
      stop_pid slurmctld "$SLURMCTLD_PID"
    fi
  fi
  start_munged
  start_slurm_daemon slurmctld "$SLURMCTLD_PID"
  slurmd_started=0
  if ! live_pid "$SLURMD_PID" slurmd >/dev/null; then
    slurmd_started="$(date +%s)"
  fi
  start_slurm_daemon slurmd "$SLURMD_PID"
  wait_ready "$host" "$slurmd_started"
  say "ready: node $host is $(node_state "$host") (munged, slurmctld, slurmd running; $(elapsed "$t0") s)"
}

cmd_stop() {
  stop_pid slurmd "$SLURMD_PID"
  stop_pid slurmctld "$SLURMCTLD_PID"
  stop_pid munged "$MUNGE_PID"
}

cmd_status() {
  local ok=0 name pidfile pid host state
  for name in munged slurmctld slurmd; do
    case "$name" in
      munged) pidfile="$MUNGE_PID" ;;
      slurmctld) pidfile="$SLURMCTLD_PID" ;;
      slurmd) pidfile="$SLURMD_PID" ;;
    esac
    if pid="$(live_pid "$pidfile" "$name")"; then
      say "$name running (pid $pid)"
    else
      say "$name not running"
      ok=1
    fi
  done
  if ! command -v sinfo >/dev/null; then
    say "sinfo not installed (run: $0 start)"
    return 1
  fi
  if [ "$ok" -ne 0 ]; then
    return 1
  fi
  sinfo || true
  host="$(hostname -s)"
  state="$(node_state "$host")"
  if usable_state "$state"; then
    say "node $host is $state: usable"
    return 0
  fi
  say "node $host is '${state:-unknown}': not usable"
  return 1
}

main() {
  local cmd="${1:-}"
  case "$cmd" in
    start | stop)
      require_root "$cmd"
      # One start or stop at a time (CI and a developer may both call it).
      exec 9>"$LOCK"
      flock -w 120 9 || die "waited 120 s for another slurm-local.sh start or stop to finish (lock $LOCK held; see: fuser -v $LOCK)"
      "cmd_$cmd"
      ;;
    status)
      cmd_status
      ;;
    *)
      echo "usage: $0 start|stop|status" >&2
      exit 2
      ;;
  esac
}

main "$@"
