#!/usr/bin/env bash
# A multi-node Slurm cluster on one machine, built from Linux namespaces (root only, no systemd).
#
#   tests/cluster/testbed.sh up                 # start it (idempotent: a healthy bed is left alone)
#   tests/cluster/testbed.sh exec login srun -N2 hostname     # -> node1, node2
#   tests/cluster/testbed.sh down               # stop everything; nothing is left behind
#
# Layout (every piece lives in namespaces this script creates; the root namespace is untouched):
#   hub          network namespace holding the bridge br0 of the cluster's private subnet
#   ctl          slurmctld and munged; also the "login" node that client commands run from
#                (hostname ctl, address <subnet>.10)
#   node1..nodeN one slurmd each (hostname nodeI, address <subnet>.(10+I)), spool/log/pid/TmpFS
#                under <dir>/nodes/nodeI (slurm.conf's %n)
# Each member is a network + UTS namespace held open by a "holder" process (sleep, renamed
# vicreg-testbed[<dir>]:<name>); every member has a veth pair whose other end sits on br0 in
# hub. No `ip netns` names, no mounts, no /etc/hosts entries: nodes are found through NodeAddr.
# Several beds (different --dir) can run at once: their subnets are separate namespaces.
# The file system is shared by all members and plays the cluster's shared file system.
#
# Commands:
#   check                 exit 0 if a bed can be built here, else print why and exit 77
#   up                    build and start the bed, wait until every node is idle, print usage
#   down [--purge]        kill every process in the bed's namespaces (the namespaces and their
#                         interfaces go with them), remove runtime files (--purge: the whole dir)
#   status                members, daemons and `sinfo`; exit 0 when healthy, 1 otherwise
#   env                   `export` lines that put the client wrappers first on PATH
#   exec NAME CMD...      run CMD in member NAME (login|ctl|nodeI) with SLURM_CONF set
#   reset                 cancel every job, return down/drained nodes to service, wait for idle
#   node-kill NODE        kill NODE's slurmd and every process on it (a crashed node)
#   node-start NODE       start NODE's slurmd again
#   node-cut NODE         take NODE's link down (network partition); node-heal NODE undoes it
#   ctld-stop | ctld-start  stop (SIGKILL) / start slurmctld, keeping its saved state
#
# Client wrappers: <dir>/bin/{sbatch,squeue,scancel,sinfo,srun,salloc,scontrol,sacct,...} run the
# real command in the login namespace with SLURM_CONF set, so a program in the root namespace
# (e.g. vicreg_coordinator with PATH=<dir>/bin:$PATH) drives the cluster; <dir>/bin/rsh NODE CMD
# runs a command on a node (OpenMPI's mpirun uses it with --mca plm_rsh_agent).
#
# Options (before the command) or environment:
#   --dir D      VICREG_TESTBED_DIR    bed directory (default /tmp/vicreg-testbed)
#   --nodes N    VICREG_TESTBED_NODES  compute nodes (default 3, at most 200)
#   --cpus C     VICREG_TESTBED_CPUS   CPUs each node declares (default 8; Slurm schedules these,
#                                      the 2 real cores are shared: SlurmdParameters=config_overrides)
#   --gpus G     VICREG_TESTBED_GPUS   placeholder "gpu" GRES per node (default 0; backed by /dev/null,
#                                      /dev/zero, ...: lets GPU-shaped job scripts schedule; none is a GPU)
#   --auth A     VICREG_TESTBED_AUTH   munge (default; a private munged) | none
#   --subnet S   VICREG_TESTBED_SUBNET first three octets (default 10.233.0)
# Exit codes: 0 ok, 1 failure, 2 usage, 77 namespaces cannot be created here (tests skip).
set -euo pipefail
shopt -s extglob

DIR=${VICREG_TESTBED_DIR:-/tmp/vicreg-testbed}
NODES=${VICREG_TESTBED_NODES:-3}
CPUS=${VICREG_TESTBED_CPUS:-8}
GPUS=${VICREG_TESTBED_GPUS:-0}
AUTH=${VICREG_TESTBED_AUTH:-munge}
SUBNET=${VICREG_TESTBED_SUBNET:-10.233.0}
CLIENTS="sbatch squeue scancel sinfo srun salloc sattach scontrol sacct sacctmgr sprio sshare sstat sdiag sbcast"

die() { echo "testbed: $*" >&2; exit 1; }
usage_error() { echo "testbed: $*" >&2; echo "usage: $0 [--dir D] [--nodes N] [--cpus C] [--gpus G] [--auth munge|none] [--subnet A.B.C] check|up|down|status|env|exec|reset|node-kill|node-start|node-cut|node-heal|ctld-stop|ctld-start ..." >&2; exit 2; }

while [[ $# -gt 0 ]]; do
  case $1 in
    --dir) DIR=${2:?}; shift 2 ;;
    --nodes) NODES=${2:?}; shift 2 ;;
    --cpus) CPUS=${2:?}; shift 2 ;;
    --gpus) GPUS=${2:?}; shift 2 ;;
    --auth) AUTH=${2:?}; shift 2 ;;
    --subnet) SUBNET=${2:?}; shift 2 ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    --) shift; break ;;
    -*) usage_error "unknown option '$1'" ;;
    *) break ;;
  esac
done
[[ $# -ge 1 ]] || usage_error "missing command"
CMD=$1; shift
[[ $DIR == /* ]] || DIR=$PWD/$DIR
DIR=${DIR%/}
# slurmd, slurmstepd and PMIx put Unix sockets under <dir>/nodes/<node>/spool (108 bytes at most).
[[ ${#DIR} -le 50 ]] || usage_error "--dir '$DIR' is too long (${#DIR} > 50 characters): Slurm's and PMIx's Unix socket paths under it would not fit"
RUN=$DIR/run          # pids, namespace ids
LOG=$DIR/log

# The settings of a running bed win over the defaults (status/exec/down after `up --nodes 4`).
if [[ $CMD != up && $CMD != check && -r $RUN/bed.env ]]; then
  # shellcheck source=/dev/null
  . "$RUN/bed.env"
fi
[[ $NODES =~ ^[0-9]+$ && $NODES -ge 1 && $NODES -le 200 ]] || usage_error "--nodes '$NODES': expected 1..200"
[[ $CPUS =~ ^[0-9]+$ && $CPUS -ge 1 ]] || usage_error "--cpus '$CPUS': expected a positive integer"
[[ $GPUS =~ ^[0-9]+$ && $GPUS -le 8 ]] || usage_error "--gpus '$GPUS': expected 0..8"
[[ $AUTH == munge || $AUTH == none ]] || usage_error "--auth '$AUTH': expected munge or none"
[[ $SUBNET =~ ^[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}$ ]] || usage_error "--subnet '$SUBNET': expected three octets like 10.233.0"

CONF=$DIR/slurm.conf
MARK="vicreg-testbed[$DIR]"
members() { echo hub ctl; for ((i = 1; i <= NODES; i++)); do echo "node$i"; done; }
nodes() { for ((i = 1; i <= NODES; i++)); do echo "node$i"; done; }
addr_of() { case $1 in ctl) echo "$SUBNET.10" ;; node*) echo "$SUBNET.$((10 + ${1#node}))" ;; esac; }

# ---- namespaces --------------------------------------------------------------------------------
holder_pid() {  # prints the live holder pid of member $1, or fails
  local f=$RUN/$1.pid pid
  [[ -r $f ]] || return 1
  pid=$(<"$f")
  local argv0=""
  IFS= read -r -d '' argv0 2>/dev/null </proc/"$pid"/cmdline || true
  [[ $argv0 == "$MARK:$1" ]] || return 1
  echo "$pid"
}

member_name() {  # login is the ctl namespace
  case $1 in
    login|ctl) echo ctl ;;
    node[0-9]*) [[ ${1#node} =~ ^[0-9]+$ && ${1#node} -ge 1 && ${1#node} -le $NODES ]] || return 1; echo "$1" ;;
    hub) echo hub ;;
    *) return 1 ;;
  esac
}

in_ns() {  # in_ns MEMBER CMD...: run CMD in the member's network + UTS namespaces
  local m=$1 pid; shift
  pid=$(holder_pid "$m") || die "member $m is not running (bed down? run: $0 --dir $DIR up)"
  nsenter -t "$pid" --net --uts -- "$@"
}

start_holder() {  # start_holder MEMBER HOSTNAME
  local m=$1 host=$2 pid
  # setsid: the holder must not die with the caller's process group (e.g. a test's RunProcess).
  # shellcheck disable=SC2016  # $1/$2 belong to the inner bash
  setsid unshare --net --uts -- bash -c 'hostname "$1" && ip link set lo up && exec -a "$2" sleep infinity' \
    _ "$host" "$MARK:$m" </dev/null >>"$LOG/holders.log" 2>&1 &
  pid=$!
  echo "$pid" >"$RUN/$m.pid"
  for _ in $(seq 100); do
    if holder_pid "$m" >/dev/null; then
      readlink "/proc/$pid/ns/net" >"$RUN/$m.netns"
      return 0
    fi
    [[ -d /proc/$pid ]] || break
    sleep 0.02
  done
  die "could not start the namespace holder of $m (see $LOG/holders.log)"
}

# "PID NETNS" for every process (one `find`, not a readlink per process).
all_netns() { { find /proc/[0-9]*/ns/net -maxdepth 0 -printf '%p %l\n' 2>/dev/null || true; } | sed 's|^/proc/\([0-9]*\)/ns/net |\1 |'; }

# Every pid whose network namespace belongs to this bed (recorded ids, so that processes of a
# bed whose holders already died are found too).
bed_pids() {
  local ids="" f
  for f in "$RUN"/*.netns; do [[ -r $f ]] && ids+="$(<"$f")"$'\n'; done
  [[ -n $ids ]] || return 0
  all_netns | awk -v ids="$ids" 'BEGIN { n = split(ids, a, "\n"); for (i = 1; i <= n; i++) if (a[i] != "") want[a[i]] = 1 }
                                 ($2 in want) { print $1 }'
}

member_pids() {  # every pid in member $1's network namespace except its holder
  [[ -r $RUN/$1.netns ]] || return 0
  local id holder
  id=$(<"$RUN/$1.netns")
  holder=$(cat "$RUN/$1.pid" 2>/dev/null || echo 0)
  all_netns | awk -v id="$id" -v holder="$holder" '$2 == id && $1 != holder { print $1 }'
}

kill_pids() {  # kill_pids PID...: SIGKILL, then wait (up to 5 s) until they are gone or zombies
  [[ $# -gt 0 ]] || return 0
  kill -KILL "$@" 2>/dev/null || true
  local p stat
  for _ in $(seq 50); do
    local left=0
    for p in "$@"; do
      stat=""
      read -r stat 2>/dev/null </proc/"$p"/stat || continue
      stat=${stat##*) }
      [[ ${stat:0:1} == Z ]] || left=1
    done
    [[ $left == 0 ]] && return 0
    sleep 0.1
  done
}

# ---- checks ------------------------------------------------------------------------------------
check() {
  local missing=()
  for b in nsenter unshare setsid ip slurmctld slurmd srun sbatch squeue sinfo scontrol; do
    command -v "$b" >/dev/null 2>&1 || [[ -x /usr/sbin/$b ]] || missing+=("$b")
  done
  if [[ ${#missing[@]} -gt 0 ]]; then
    echo "testbed: cannot build a bed here: missing ${missing[*]} (apt-get install slurm-wlm munge iproute2 util-linux)"
    return 77
  fi
  if [[ $(id -u) != 0 ]]; then
    echo "testbed: cannot build a bed here: namespaces and slurmd need root (running as uid $(id -u))"
    return 77
  fi
  local err
  if ! err=$(unshare --net --uts -- sh -c 'hostname probe && ip link set lo up && ip link add t0 type veth peer name t1' 2>&1); then
    echo "testbed: cannot build a bed here: creating network/UTS namespaces with veth pairs failed: $err"
    return 77
  fi
  return 0
}

# ---- configuration -----------------------------------------------------------------------------
write_conf() {
  local auth_lines
  if [[ $AUTH == munge ]]; then
    auth_lines="AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$DIR/munge/munge.socket"
  else
    auth_lines="AuthType=auth/none
CredType=cred/none"
  fi
  local gres_line="" node_gres=""
  if [[ $GPUS -gt 0 ]]; then
    gres_line="GresTypes=gpu"
    node_gres=" Gres=gpu:$GPUS"
    local files=(/dev/null /dev/zero /dev/full /dev/urandom /dev/random /dev/tty /dev/console /dev/ptmx)
    echo "NodeName=node[1-$NODES] Name=gpu File=$(IFS=,; echo "${files[*]:0:$GPUS}")" >"$DIR/gres.conf"
  else
    : >"$DIR/gres.conf"
  fi
  {
    echo "# Generated by tests/cluster/testbed.sh up; rewritten on every up."
    echo "ClusterName=vicregbed"
    echo "SlurmctldHost=ctl($(addr_of ctl))"
    echo "SlurmUser=root"
    echo "SlurmdUser=root"
    echo "$auth_lines"
    echo "StateSaveLocation=$DIR/ctld/state"
    echo "SlurmctldPidFile=$DIR/ctld/slurmctld.pid"
    echo "SlurmctldLogFile=$LOG/slurmctld.log"
    echo "SlurmdSpoolDir=$DIR/nodes/%n/spool"
    echo "SlurmdPidFile=$DIR/nodes/%n/slurmd.pid"
    echo "SlurmdLogFile=$LOG/slurmd-%n.log"
    echo "TmpFS=$DIR/nodes/%n/tmp"
    echo "SlurmdParameters=config_overrides"
    echo "ProctrackType=proctrack/linuxproc"
    echo "TaskPlugin=task/none"
    echo "SelectType=select/cons_tres"
    echo "SelectTypeParameters=CR_Core"
    echo "SchedulerType=sched/backfill"
    echo "SchedulerParameters=bf_interval=5"
    echo "MpiDefault=none"
    echo "ReturnToService=2"
    echo "SlurmdTimeout=30"
    echo "KillWait=5"
    echo "MinJobAge=300"
    echo "InactiveLimit=0"
    echo "JobAcctGatherType=jobacct_gather/none"
    echo "AccountingStorageType=accounting_storage/none"
    echo "JobCompType=jobcomp/none"
    [[ -n $gres_line ]] && echo "$gres_line"
    for n in $(nodes); do
      echo "NodeName=$n NodeHostname=$n NodeAddr=$(addr_of "$n") CPUs=$CPUS Boards=1 SocketsPerBoard=1 CoresPerSocket=$CPUS ThreadsPerCore=1 RealMemory=4000$node_gres State=UNKNOWN"
    done
    echo "PartitionName=debug Nodes=node[1-$NODES] Default=YES MaxTime=INFINITE State=UP"
  } >"$CONF"
}

write_wrappers() {
  mkdir -p "$DIR/bin"
  local real
  for c in $CLIENTS; do
    real=$(command -v "$c" 2>/dev/null) || continue
    cat >"$DIR/bin/$c" <<EOF
#!/bin/sh
# Generated by tests/cluster/testbed.sh: runs $c in the bed's login namespace.
pid=\$(cat '$RUN/ctl.pid' 2>/dev/null) || { echo "$c: the test bed at $DIR is down" >&2; exit 1; }
SLURM_CONF='$CONF' exec nsenter -t "\$pid" --net --uts -- '$real' "\$@"
EOF
    chmod 755 "$DIR/bin/$c"
  done
  # rsh NODE CMD...: OpenMPI's launch agent (mpirun --mca plm_rsh_agent <dir>/bin/rsh). Like ssh,
  # the command arrives as words to be joined and run by a shell on the node.
  cat >"$DIR/bin/rsh" <<EOF
#!/bin/bash
# Generated by tests/cluster/testbed.sh: rsh-like launch agent into a bed node's namespaces.
while [[ \$# -gt 0 && \$1 == -* ]]; do shift; done   # ssh-style options (-x, -o ...) are ignored
node=\${1:?usage: rsh NODE CMD...}; shift
node=\${node#*@}
exec '$DIR/bin/bedexec' "\$node" /bin/sh -c "\$*"
EOF
  cat >"$DIR/bin/bedexec" <<EOF
#!/bin/sh
# Generated by tests/cluster/testbed.sh: bedexec NAME CMD... runs CMD in member NAME (login|ctl|nodeI).
exec '$(readlink -f "$0")' --dir '$DIR' exec "\$@"
EOF
  chmod 755 "$DIR/bin/rsh" "$DIR/bin/bedexec"
}

# ---- daemons -----------------------------------------------------------------------------------
start_munge() {
  [[ $AUTH == munge ]] || return 0
  mkdir -p "$DIR/munge"
  chmod 755 "$DIR/munge"   # munged: the socket folder must be searchable by all
  if [[ ! -s $DIR/munge/munge.key ]]; then
    (umask 077 && head -c 1024 /dev/urandom >"$DIR/munge/munge.key")
  fi
  chmod 400 "$DIR/munge/munge.key"
  in_ns ctl munged --socket="$DIR/munge/munge.socket" --key-file="$DIR/munge/munge.key" \
    --pid-file="$DIR/munge/munged.pid" --log-file="$LOG/munged.log" --seed-file="$DIR/munge/munged.seed" \
    </dev/null >>"$LOG/munged.out" 2>&1 || die "munged did not start: $(tail -n 5 "$LOG/munged.log" 2>/dev/null)"
}

ctld_running() {
  local pid
  pid=$(cat "$DIR/ctld/slurmctld.pid" 2>/dev/null) || return 1
  [[ -d /proc/$pid ]] && [[ $(readlink /proc/"$pid"/exe 2>/dev/null) == */slurmctld?(-wlm) ]]
}

start_ctld() {  # start_ctld [-c]: -c starts with a clean state
  ctld_running && return 0
  SLURM_CONF=$CONF in_ns ctl slurmctld -f "$CONF" "$@" </dev/null >>"$LOG/slurmctld.out" 2>&1 ||
    die "slurmctld did not start: $(tail -n 20 "$LOG/slurmctld.log" 2>/dev/null)"
  for _ in $(seq 100); do
    SLURM_CONF=$CONF in_ns ctl scontrol ping 2>/dev/null | grep -q UP && return 0
    sleep 0.1
  done
  die "slurmctld does not answer: $(tail -n 20 "$LOG/slurmctld.log" 2>/dev/null)"
}

slurmd_running() {
  local pid
  pid=$(cat "$DIR/nodes/$1/slurmd.pid" 2>/dev/null) || return 1
  [[ -d /proc/$pid ]] && [[ $(readlink /proc/"$pid"/exe 2>/dev/null) == */slurmd?(-wlm) ]]
}

start_slurmd() {
  slurmd_running "$1" && return 0
  mkdir -p "$DIR/nodes/$1/spool" "$DIR/nodes/$1/tmp"
  SLURM_CONF=$CONF in_ns "$1" slurmd -f "$CONF" -N "$1" </dev/null >>"$LOG/slurmd-$1.out" 2>&1 ||
    die "slurmd of $1 did not start: $(tail -n 20 "$LOG/slurmd-$1.log" 2>/dev/null)"
}

wait_idle() {  # wait_idle TIMEOUT_S: every node idle
  local t=$1 out deadline=$((SECONDS + $1))
  while [[ $SECONDS -lt $deadline ]]; do
    out=$(SLURM_CONF=$CONF in_ns ctl sinfo -h -N -o '%N %T' 2>/dev/null || true)
    if [[ $(grep -c ' idle$' <<<"$out") == "$NODES" ]]; then return 0; fi
    sleep 0.2
  done
  echo "testbed: nodes not idle after ${t}s:" >&2
  echo "$out" >&2
  tail -n 15 "$LOG/slurmctld.log" >&2 || true
  return 1
}

# ---- commands ----------------------------------------------------------------------------------
healthy() {
  [[ -r $RUN/bed.env ]] || return 1
  for m in $(members); do holder_pid "$m" >/dev/null || return 1; done
  ctld_running || return 1
  for n in $(nodes); do slurmd_running "$n" || return 1; done
  [[ $AUTH == none ]] || [[ -S $DIR/munge/munge.socket ]] || return 1
  local out
  out=$(SLURM_CONF=$CONF in_ns ctl sinfo -h -N -o '%N %T' 2>/dev/null) || return 1
  ! grep -Eqv ' (idle|mixed|allocated|completing)$' <<<"$out"
}

print_usage() {
  cat <<EOF
testbed: $NODES-node Slurm cluster up in $DIR (subnet $SUBNET.0/24, auth $AUTH)
  nodes:    $(for n in $(nodes); do printf '%s=%s ' "$n" "$(addr_of "$n")"; done)
  login:    ctl=$(addr_of ctl) (slurmctld$([[ $AUTH == munge ]] && echo ", munged"))
  try:      $0 --dir $DIR exec login srun -N2 hostname
  clients:  eval "\$($0 --dir $DIR env)"; sinfo; sbatch -N2 --wrap 'srun hostname'
  on a node: $0 --dir $DIR exec node1 hostname
  stop:     $0 --dir $DIR down
EOF
}

cmd_up() {
  check || exit $?
  if healthy; then
    print_usage
    return 0
  fi
  local t0=$SECONDS
  cmd_down quiet
  mkdir -p "$RUN" "$LOG" "$DIR/ctld/state"
  rm -rf "${DIR:?}/ctld/state/"* "${DIR:?}/nodes"
  cat >"$RUN/bed.env" <<EOF
NODES=$NODES
CPUS=$CPUS
GPUS=$GPUS
AUTH=$AUTH
SUBNET=$SUBNET
EOF
  for m in $(members); do start_holder "$m" "$m"; done
  local hub
  hub=$(holder_pid hub)
  nsenter -t "$hub" --net -- ip link add br0 type bridge
  nsenter -t "$hub" --net -- ip link set br0 up
  for m in ctl $(nodes); do
    local pid
    pid=$(holder_pid "$m")
    nsenter -t "$hub" --net -- ip link add "v-$m" type veth peer name eth0 netns "$pid"
    nsenter -t "$hub" --net -- ip link set "v-$m" master br0 up
    nsenter -t "$pid" --net -- ip addr add "$(addr_of "$m")/24" dev eth0
    nsenter -t "$pid" --net -- ip link set eth0 up
  done
  write_conf
  start_munge
  start_ctld -c
  for n in $(nodes); do start_slurmd "$n"; done
  wait_idle 60 || die "the bed did not come up; logs in $LOG"
  write_wrappers
  print_usage
  echo "testbed: up in $((SECONDS - t0)) s"
}

cmd_down() {
  local quiet=${1:-} purge=0
  [[ $quiet == --purge ]] && { purge=1; quiet=""; }
  local pids
  # shellcheck disable=SC2207
  pids=($(bed_pids))
  if [[ ${#pids[@]} -gt 0 ]]; then kill_pids "${pids[@]}"; fi
  # shellcheck disable=SC2207
  pids=($(bed_pids))
  [[ ${#pids[@]} -eq 0 ]] || die "processes still in the bed's namespaces: ${pids[*]}"
  rm -rf "${DIR:?}/bin" "${RUN:?}" "${DIR:?}/munge/munge.socket"*
  if [[ $purge == 1 ]]; then rm -rf "${DIR:?}"; fi
  [[ -n $quiet ]] || echo "testbed: down ($DIR)"
}

cmd_status() {
  local ok=0
  if [[ ! -r $RUN/bed.env ]]; then
    echo "testbed: down ($DIR)"
    return 1
  fi
  for m in $(members); do
    if pid=$(holder_pid "$m"); then echo "member $m: pid $pid, $(addr_of "$m" || true)"; else echo "member $m: MISSING"; ok=1; fi
  done
  if ctld_running; then echo "slurmctld: pid $(cat "$DIR/ctld/slurmctld.pid")"; else echo "slurmctld: NOT RUNNING"; ok=1; fi
  for n in $(nodes); do
    if slurmd_running "$n"; then echo "slurmd $n: pid $(cat "$DIR/nodes/$n/slurmd.pid")"; else echo "slurmd $n: NOT RUNNING"; ok=1; fi
  done
  if holder_pid ctl >/dev/null; then SLURM_CONF=$CONF in_ns ctl sinfo -N -l 2>&1 || ok=1; fi
  healthy || ok=1
  return $ok
}

cmd_exec() {
  [[ $# -ge 2 ]] || usage_error "exec NAME CMD...: NAME is login, ctl or node1..node$NODES"
  local m
  m=$(member_name "$1") || usage_error "exec: unknown member '$1' (login, ctl, node1..node$NODES)"
  shift
  SLURM_CONF=$CONF in_ns "$m" "$@"
}

cmd_reset() {
  healthy_enough || die "the bed is not up"
  SLURM_CONF=$CONF in_ns ctl scancel --full --signal=KILL --user=root 2>/dev/null || true
  SLURM_CONF=$CONF in_ns ctl scancel --user=root 2>/dev/null || true
  for n in $(nodes); do
    if ! slurmd_running "$n"; then start_slurmd "$n"; fi
    local pid
    pid=$(holder_pid hub)
    nsenter -t "$pid" --net -- ip link set "v-$n" up
  done
  local bad
  bad=$(SLURM_CONF=$CONF in_ns ctl sinfo -h -N -t down,drained,draining,fail,failing -o '%N' 2>/dev/null | sort -u | paste -sd, || true)
  if [[ -n $bad ]]; then SLURM_CONF=$CONF in_ns ctl scontrol update nodename="$bad" state=resume || true; fi
  wait_idle 60
}

healthy_enough() {
  for m in $(members); do holder_pid "$m" >/dev/null || return 1; done
  start_ctld
}

node_arg() {
  local n=${1:-}
  if [[ $n != node* ]] || ! member_name "$n" >/dev/null; then
    usage_error "expected a node name node1..node$NODES, got '$n'"
  fi
  echo "$n"
}

case $CMD in
  check) check; exit $? ;;
  up) cmd_up ;;
  down) cmd_down "${1:-}" ;;
  status) cmd_status ;;
  env) [[ -d $DIR/bin ]] || die "the bed at $DIR is down"; echo "export PATH='$DIR/bin':\"\$PATH\" SLURM_CONF='$CONF'" ;;
  exec) cmd_exec "$@" ;;
  reset) cmd_reset ;;
  node-kill)
    n=$(node_arg "${1:-}")
    # shellcheck disable=SC2207
    pids=($(member_pids "$n"))
    if [[ ${#pids[@]} -gt 0 ]]; then kill -KILL "${pids[@]}" 2>/dev/null || true; fi
    echo "testbed: $n killed (${#pids[@]} processes)" ;;
  node-start) n=$(node_arg "${1:-}"); start_slurmd "$n" ;;
  node-cut) n=$(node_arg "${1:-}"); nsenter -t "$(holder_pid hub)" --net -- ip link set "v-$n" down ;;
  node-heal) n=$(node_arg "${1:-}"); nsenter -t "$(holder_pid hub)" --net -- ip link set "v-$n" up ;;
  ctld-stop)
    if ctld_running; then kill -KILL "$(cat "$DIR/ctld/slurmctld.pid")"; fi
    for _ in $(seq 50); do ctld_running || break; sleep 0.1; done ;;
  ctld-start) start_ctld ;;
  *) usage_error "unknown command '$CMD'" ;;
esac
