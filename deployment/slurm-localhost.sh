#!/usr/bin/env bash
# A single-node SLURM on this machine (slurmctld + slurmd on localhost), for trying
# `redoxflow run --cluster slurm` without a cluster (tests/test_slurm.py uses it).
#   apt-get update && apt-get install -y slurm-wlm munge      # Debian/Ubuntu, as root
#   sudo bash deployment/slurm-localhost.sh start               # writes slurm.conf, starts daemons
#   redoxflow run CONFIG.yaml --cluster slurm --profile deployment/slurm-localhost.yaml
#   sudo bash deployment/slurm-localhost.sh stop
# No cgroups (proctrack/linuxproc, task/none), so it also runs inside containers. The node
# gets the CPUs and memory `slurmd -C` reports (CPUs=2 on the development machine).
# It replaces $SLURM_ETC/slurm.conf: do not run it on a machine that is part of a real cluster.
set -euo pipefail
ACTION=${1:-start}
ETC=${SLURM_ETC:-/etc/slurm}
STATE=${SLURM_STATE:-/var/spool/redoxflow-slurm}
LOGS=${SLURM_LOGS:-/var/log/redoxflow-slurm}
PARTITION=${SLURM_PARTITION:-debug}

die() { echo "slurm-localhost: $*" >&2; exit 1; }

write_conf() {
    local cpus mem
    cpus=$(slurmd -C | sed -n 's/.*CPUs=\([0-9]*\).*/\1/p')
    mem=$(slurmd -C | sed -n 's/.*RealMemory=\([0-9]*\).*/\1/p')
    mkdir -p "$ETC" "$STATE/ctld" "$STATE/d" "$LOGS"
    cat > "$ETC/slurm.conf" <<EOF
# written by redoxflow deployment/slurm-localhost.sh: one node, no cgroups
ClusterName=redoxflow-local
SlurmctldHost=localhost
SlurmUser=root
AuthType=auth/munge
StateSaveLocation=$STATE/ctld
SlurmdSpoolDir=$STATE/d
SlurmctldPidFile=$STATE/slurmctld.pid
SlurmdPidFile=$STATE/slurmd.pid
SlurmctldLogFile=$LOGS/slurmctld.log
SlurmdLogFile=$LOGS/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
MpiDefault=none
ReturnToService=2
SlurmdTimeout=60
NodeName=localhost NodeAddr=127.0.0.1 CPUs=${cpus:-2} RealMemory=${mem:-1024} State=UNKNOWN
PartitionName=$PARTITION Nodes=localhost Default=YES MaxTime=INFINITE State=UP
EOF
}

start_munge() {
    if munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then return; fi
    [ -s /etc/munge/munge.key ] || mungekey --create --keyfile /etc/munge/munge.key
    chown munge:munge /etc/munge/munge.key && chmod 400 /etc/munge/munge.key
    mkdir -p /run/munge && chown munge:munge /run/munge
    runuser -u munge -- /usr/sbin/munged
    munge -n | unmunge >/dev/null || die "munged does not answer"
}

running() {  # a daemon started from this configuration is alive
    local pid
    pid=$(cat "$STATE/$1.pid" 2>/dev/null) && [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null
}

wait_idle() {  # until the node accepts jobs (or 30 s)
    for _ in $(seq 60); do
        state=$(sinfo -h -n localhost -o %t 2>/dev/null || true)
        case "$state" in idle*|mix*|alloc*) return 0 ;; esac
        sleep 0.5
    done
    die "node localhost is '${state:-not reported}' after 30 s; see $LOGS/"
}

case "$ACTION" in
start)
    [ "$(id -u)" = 0 ] || die "run as root (it writes $ETC/slurm.conf and starts daemons)"
    command -v slurmctld >/dev/null && command -v slurmd >/dev/null \
        || die "slurmctld/slurmd not found: apt-get install -y slurm-wlm munge"
    write_conf
    start_munge
    running slurmctld || slurmctld -i
    running slurmd || slurmd -N localhost
    wait_idle
    echo "slurm-localhost: partition $PARTITION on localhost is up (logs in $LOGS)"
    ;;
stop)
    for d in slurmd slurmctld; do
        pid=$(cat "$STATE/$d.pid" 2>/dev/null || true)
        [ -n "$pid" ] && kill "$pid" 2>/dev/null || true
    done
    ;;
status)
    sinfo
    ;;
*)
    die "usage: slurm-localhost.sh start|stop|status"
    ;;
esac
