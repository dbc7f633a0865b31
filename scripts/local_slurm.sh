#!/usr/bin/env bash
# A real single-node SLURM cluster on this machine, for the `-m slurm` tests (root, Debian, no systemd).
#
#   scripts/local_slurm.sh install   apt-get the daemons (slurmctld slurmd slurm-client munge slurmdbd mariadb-server)
#   scripts/local_slurm.sh start     write the configs, start munge, mariadb, slurmdbd, slurmctld, slurmd; wait for idle
#   scripts/local_slurm.sh stop      cancel every job, stop the daemons by their recorded pids (reverse order)
#   scripts/local_slurm.sh status    is the controller answering, and what does the node say
#
# The node declares one fake GPU (GresTypes=gpu, Gres=gpu:1, a character device made with mknod), so
# GPU requests (--gres=gpu:1, --gpus-per-node=1) are accepted as on a real GPU cluster.
# Facts behind each setting: /work/shared/notes/local-slurm.md (pitfalls numbered there).
set -euo pipefail

STATE=${SOFTSTEP_SLURM_STATE:-/var/lib/softstep-slurm}   # pid files, fake GPU device, daemon logs
CLUSTER=localci
HOST=$(hostname -s)

log() { echo "[local_slurm] $*" >&2; }
need_root() { [ "$(id -u)" -eq 0 ] || { log "must run as root (installs packages and starts daemons)"; exit 1; }; }
wait_for() {  # wait_for SECONDS DESCRIPTION COMMAND...
    local secs=$1 what=$2; shift 2
    for _ in $(seq $((secs * 5))); do "$@" >/dev/null 2>&1 && return 0; sleep 0.2; done
    log "timed out after ${secs}s waiting for $what"; return 1
}

install() {
    need_root
    if command -v slurmctld >/dev/null && command -v slurmdbd >/dev/null && command -v mariadbd >/dev/null \
        && command -v munged >/dev/null && command -v sbatch >/dev/null && command -v slurmd >/dev/null; then
        log "already installed"; return 0
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends slurmctld slurmd slurm-client munge slurmdbd mariadb-server >/dev/null
    log "installed slurm $(dpkg-query -W -f '${Version}' slurmctld)"
}

write_configs() {
    local cpus mem
    cpus=$(nproc)
    mem=$(awk '/MemTotal/ {printf "%d", $2 / 1024 * 0.9}' /proc/meminfo)   # pitfall 8: below what slurmd detects
    mkdir -p /etc/slurm /var/spool/slurmctld /var/spool/slurmd /var/log/slurm "$STATE/dev"
    # pitfall 9: GRES files must be character devices
    [ -c "$STATE/dev/nvidia0" ] || { rm -f "$STATE/dev/nvidia0"; mknod "$STATE/dev/nvidia0" c 1 3; }
    cat >/etc/slurm/slurm.conf <<EOF
# written by scripts/local_slurm.sh: a single-node test cluster
ClusterName=$CLUSTER
SlurmctldHost=localhost
SlurmUser=root
AuthType=auth/munge
CredType=cred/munge
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
SchedulerParameters=batch_sched_delay=0,sched_interval=1,bf_interval=1
EnforcePartLimits=ALL
MailProg=/bin/true
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
ReturnToService=2
SlurmdParameters=config_overrides
KillWait=2
AuthInfo=cred_expire=5
MinJobAge=300
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=$STATE/slurmctld.pid
SlurmdPidFile=$STATE/slurmd.pid
SlurmctldLogFile=$STATE/slurmctld.log
SlurmdLogFile=$STATE/slurmd.log
GresTypes=gpu
NodeName=$HOST NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem Gres=gpu:1 State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
    cat >/etc/slurm/gres.conf <<EOF
AutoDetect=off
NodeName=$HOST Name=gpu File=$STATE/dev/nvidia0
EOF
    cat >/etc/slurm/slurmdbd.conf <<EOF
AuthType=auth/munge
DbdHost=localhost
SlurmUser=root
StorageType=accounting_storage/mysql
StorageHost=localhost
StorageUser=slurm
StoragePass=slurm
StorageLoc=slurm_acct_db
PidFile=$STATE/slurmdbd.pid
LogFile=$STATE/slurmdbd.log
EOF
    chmod 0600 /etc/slurm/slurmdbd.conf
}

alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

start() {
    need_root
    command -v slurmctld >/dev/null || install
    if sinfo -h >/dev/null 2>&1; then log "already running"; status; return 0; fi
    mkdir -p "$STATE"
    # 1. munge
    mkdir -p /run/munge && chown munge:munge /run/munge && chmod 0755 /run/munge
    chown munge:munge /etc/munge/munge.key && chmod 0400 /etc/munge/munge.key
    if ! alive /run/munge/munged.pid; then runuser -u munge -- /usr/sbin/munged; fi
    wait_for 10 munge sh -c 'munge -n | unmunge'
    cp /run/munge/munged.pid "$STATE/munged.pid"
    # 2. slurm.conf before anything reads it (pitfall 3)
    write_configs
    # 3. accounting: mariadb, then slurmdbd (pitfall 2: submitit needs sacct)
    mkdir -p /run/mysqld && chown mysql:mysql /run/mysqld
    if ! alive "$STATE/mariadbd.pid"; then
        mariadbd --user=mysql --pid-file=/run/mysqld/mariadbd.pid >"$STATE/mariadbd.log" 2>&1 &
        echo $! >"$STATE/mariadbd.pid"
    fi
    wait_for 30 mariadb mysqladmin ping
    mysql -e "CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY 'slurm';
              GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost'; FLUSH PRIVILEGES;"
    alive "$STATE/slurmdbd.pid" || slurmdbd
    wait_for 30 slurmdbd sacctmgr -n show cluster
    sacctmgr -n show cluster format=cluster | grep -qw "$CLUSTER" || sacctmgr -i add cluster "$CLUSTER" >/dev/null
    # 4. controller (keep its state: pitfall 7), then the node daemon
    alive "$STATE/slurmctld.pid" || slurmctld -i
    wait_for 30 slurmctld scontrol ping
    alive "$STATE/slurmd.pid" || slurmd
    # 5. wait until the node is idle
    for _ in $(seq 150); do
        state=$(sinfo -h -N -n "$HOST" -o %T 2>/dev/null || true)
        case "$state" in
            idle*) log "cluster up: node $HOST $state, $(nproc) CPUs, 1 fake GPU"; return 0 ;;
            *drain*|*down*|*inval*) scontrol update NodeName="$HOST" State=RESUME >/dev/null 2>&1 || true ;;
        esac
        sleep 0.2
    done
    log "node did not become idle (last state: ${state:-none}); see $STATE/slurmd.log"; return 1
}

stop() {
    need_root
    if command -v scancel >/dev/null && scontrol ping >/dev/null 2>&1; then
        scancel --full --signal=KILL --user=root >/dev/null 2>&1 || true
        scancel --user=root >/dev/null 2>&1 || true
        for _ in $(seq 50); do [ -z "$(squeue -h 2>/dev/null)" ] && break; sleep 0.2; done
    fi
    for name in slurmd slurmctld slurmdbd mariadbd munged; do
        pidfile="$STATE/$name.pid"
        if alive "$pidfile"; then
            pid=$(cat "$pidfile")
            kill -TERM "$pid"
            for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
            kill -0 "$pid" 2>/dev/null && log "$name (pid $pid) still running after 10 s"
        fi
        rm -f "$pidfile"
    done
    log "stopped"
}

status() {
    if scontrol ping >/dev/null 2>&1; then
        sinfo -N -o "%N %T %c %m %G"
        scontrol show config | grep -E "^(ClusterName|MaxArraySize|SLURM_VERSION)"
    else
        log "not running"; return 1
    fi
}

case "${1:-}" in
    install) install ;;
    start) start ;;
    stop) stop ;;
    status) status ;;
    *) echo "usage: $0 install|start|stop|status" >&2; exit 2 ;;
esac
