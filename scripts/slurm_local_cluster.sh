#!/usr/bin/env bash
# A real single-node Slurm cluster on this machine (Debian/Ubuntu, as root), to run the workflow
# through profiles/slurm without a cluster: CI does it, and the README's "Running on Slurm"
# walk-through does it by hand.
#
#   scripts/slurm_local_cluster.sh start    install slurm-wlm + munge if missing (apt), write the
#                                           config, start munged, slurmctld and slurmd (idempotent)
#   scripts/slurm_local_cluster.sh stop     stop the daemons this script started, by their pids
#   scripts/slurm_local_cluster.sh status   is it up? (exit 0 if sinfo answers)
#   scripts/slurm_local_cluster.sh env      the line to eval for the client commands (SLURM_CONF)
#
# Everything lives in $VLMLOC_SLURM_DIR (default /tmp/vlmloc-slurm): slurm.conf, gres.conf, its own
# munge key and socket, state, logs and pid files. The one change outside it is a link
# /etc/slurm/slurm.conf -> that slurm.conf (only where no real one exists; `stop` removes it),
# because the Snakemake job steps do not pass SLURM_CONF on (see link_default_config). The node,
# with all its CPUs and $VLMLOC_SLURM_GPUS (default 2) fake GPUs (character devices like
# /dev/null), is in two partitions named as in profiles/slurm/partitions.yaml: `gpu` (the default)
# and `cpu`, so the profile's partition choice is tested as written. Jobs that ask for `--gpus`
# are scheduled as on a GPU cluster (they find no CUDA device and run on the CPU). Accounting is off, so Snakemake
# reads job states with squeue (MinJobAge=600 keeps finished jobs visible to it).
set -euo pipefail

DIR=${VLMLOC_SLURM_DIR:-/tmp/vlmloc-slurm}
GPUS=${VLMLOC_SLURM_GPUS:-2}
CONF=$DIR/slurm.conf
DEFAULT_CONF=/etc/slurm/slurm.conf
NODE=$(hostname -s)

say() { echo "slurm_local_cluster: $*" >&2; }

alive() { [[ -f $1 ]] && kill -0 "$(cat "$1")" 2>/dev/null; }

up() { SLURM_CONF=$CONF timeout 10 sinfo -h -o %T 2>/dev/null | grep -qE '^(idle|mixed|allocated)'; }

install_packages() {
    if command -v slurmctld >/dev/null && command -v slurmd >/dev/null && command -v munged >/dev/null \
        && command -v sbatch >/dev/null; then
        return
    fi
    command -v apt-get >/dev/null || { say "slurm-wlm is not installed and there is no apt-get"; exit 3; }
    say "installing slurm-wlm and munge (apt)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq slurm-wlm munge >"$DIR/log/apt.log" 2>&1 \
        || { tail -20 "$DIR/log/apt.log" >&2; exit 3; }
}

write_config() {
    local cpus mem_mb gres=""
    cpus=$(nproc)
    ((GPUS > 0)) && gres=" Gres=gpu:$GPUS"
    # the node offers its memory minus 1 GB for the system (memory is not a consumable here)
    mem_mb=$(($(awk '/MemTotal/ {print int($2 / 1024)}' /proc/meminfo) - 1024))
    cat >"$CONF" <<EOF
# written by scripts/slurm_local_cluster.sh: one node, two partitions, no accounting
ClusterName=vlmloc
SlurmctldHost=$NODE(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$DIR/munge.socket
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/slurmctld.pid
SlurmdPidFile=$DIR/slurmd.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
SlurmctldPort=6817
SlurmdPort=6818
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
MinJobAge=600
ReturnToService=2
SlurmctldTimeout=30
SlurmdTimeout=30
GresTypes=gpu
NodeName=$NODE NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem_mb${gres} State=UNKNOWN
PartitionName=gpu Nodes=$NODE Default=YES MaxTime=INFINITE State=UP
PartitionName=cpu Nodes=$NODE Default=NO MaxTime=INFINITE State=UP
EOF
    # Slurm drops GPUs without device files: each fake GPU is a character device like /dev/null
    if ((GPUS > 0)); then
        echo "AutoDetect=off" >"$DIR/gres.conf"
        echo "NodeName=$NODE Name=gpu File=$DIR/fake-gpu[0-$((GPUS - 1))]" >>"$DIR/gres.conf"
    else
        : >"$DIR/gres.conf"
    fi
}

make_fake_gpus() {
    local i
    rm -f "$DIR"/fake-gpu*
    for ((i = 0; i < GPUS; i++)); do
        if ! mknod "$DIR/fake-gpu$i" c 1 3 2>/dev/null; then
            say "cannot make device files here: no GPUs declared"
            GPUS=0
            return
        fi
    done
}

# The job steps need the config at Slurm's default path: snakemake-executor-plugin-slurm-jobstep
# drops every SLURM_* variable but a few (SLURM_CONF among them) before its srun. So
# /etc/slurm/slurm.conf becomes a link to ours, unless a real one is there.
link_default_config() {
    if [[ -e $DEFAULT_CONF || -L $DEFAULT_CONF ]] && [[ $(readlink "$DEFAULT_CONF") != "$CONF" ]]; then
        say "$DEFAULT_CONF exists and is not ours: not touching it (jobs will read that one)"
        return
    fi
    mkdir -p "$(dirname "$DEFAULT_CONF")"
    ln -sfn "$CONF" "$DEFAULT_CONF"
}

start() {
    [[ $(id -u) == 0 ]] || { say "needs root (it starts slurmctld and slurmd)"; exit 2; }
    mkdir -p "$DIR/state" "$DIR/spool" "$DIR/log"
    if up && alive "$DIR/slurmctld.pid" && alive "$DIR/slurmd.pid"; then
        link_default_config
        say "already up ($CONF)"
        return
    fi
    install_packages
    stop_daemons quiet
    make_fake_gpus
    write_config
    link_default_config
    if [[ ! -s $DIR/munge.key ]]; then
        head -c 1024 /dev/urandom >"$DIR/munge.key"
    fi
    chmod 600 "$DIR/munge.key"
    # --force: munged refuses a socket in a world-writable folder such as /tmp otherwise
    munged --force --key-file="$DIR/munge.key" --socket="$DIR/munge.socket" \
        --pid-file="$DIR/munged.pid" --log-file="$DIR/log/munged.log" --seed-file="$DIR/munged.seed"
    for _ in $(seq 50); do [[ -S $DIR/munge.socket ]] && break; sleep 0.1; done
    export SLURM_CONF=$CONF
    # -c: start from a clean state (no jobs of an earlier cluster); both daemonize and write
    # their pid files (SlurmctldPidFile, SlurmdPidFile)
    slurmctld -c
    slurmd
    for _ in $(seq 60); do
        up && break
        sleep 0.5
    done
    if ! up; then
        scontrol update nodename="$NODE" state=resume >/dev/null 2>&1 || true
        sleep 2
    fi
    if ! up; then
        say "the node did not come up; logs in $DIR/log"
        tail -n 5 "$DIR/log/slurmctld.log" "$DIR/log/slurmd.log" >&2 || true
        exit 4
    fi
    say "up: partitions gpu and cpu on $NODE ($(nproc) CPUs, $GPUS GPUs declared); export SLURM_CONF=$CONF"
}

stop_daemons() {
    local name pidfile pid
    for name in slurmd slurmctld munged; do
        pidfile=$DIR/$name.pid
        alive "$pidfile" || continue
        pid=$(cat "$pidfile")
        kill "$pid"
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
        if kill -0 "$pid" 2>/dev/null; then kill -9 "$pid"; fi
        [[ ${1:-} == quiet ]] || say "stopped $name (pid $pid)"
        rm -f "$pidfile"
    done
}

case ${1:-} in
    start) start ;;
    stop)
        stop_daemons
        if [[ -L $DEFAULT_CONF && $(readlink "$DEFAULT_CONF") == "$CONF" ]]; then rm -f "$DEFAULT_CONF"; fi
        ;;
    status) up && say "up ($CONF)" ;;
    env) echo "export SLURM_CONF=$CONF" ;;
    *)
        echo "usage: $0 start|stop|status|env" >&2
        exit 64
        ;;
esac
