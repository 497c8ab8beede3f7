#!/usr/bin/env bash
# A one-node SLURM cluster on this machine, for trying and testing `movelab sweep run
# --executor slurm` (as root: it installs Debian's packages and starts daemons). Idempotent: run
# again, it checks what is there and starts what is not. Stop it with scripts/slurm-down.sh.
#   scripts/slurm-up.sh        (or: make slurm-up)
# The cluster: munge for authentication; slurmctld and slurmd on this host; one node with this
# machine's CPUs and memory; one partition `cpu`; no accounting (no slurmdbd: sacct cannot
# answer, squeue and sinfo can). Exits non-zero, saying why, when it cannot start one.
set -euo pipefail
CONF=/etc/slurm/slurm.conf
MARK="# written by movelab's scripts/slurm-up.sh"
PARTITION=cpu
WAIT_SECONDS=${SLURM_UP_WAIT_SECONDS:-60}

say() { echo "slurm-up: $*"; }
fail() { echo "slurm-up: $*; no cluster started" >&2; exit 1; }
logs() {  # the end of a daemon's log, to say why it did not come up
  [ -f "$1" ] && { echo "--- last lines of $1:" >&2; tail -n 15 "$1" >&2; } || true
}

[ "$(id -u)" = 0 ] || fail "run it as root (it installs packages and starts daemons)"
command -v apt-get >/dev/null || fail "it needs Debian's apt-get to install slurmctld, slurmd, slurm-client and munge"

# 1. packages
if ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null \
   || ! command -v sinfo >/dev/null || ! command -v munged >/dev/null; then
  say "installing slurmctld slurmd slurm-client munge (apt-get)"
  apt_install() {
    DEBIAN_FRONTEND=noninteractive timeout 600 apt-get install -y -qq --no-install-recommends \
      -o DPkg::Lock::Timeout=120 slurmctld slurmd slurm-client munge >/dev/null
  }
  apt_install || { timeout 300 apt-get update -qq -o DPkg::Lock::Timeout=120 || true; apt_install; } \
    || fail "apt-get could not install slurmctld slurmd slurm-client munge"
fi

# 2. munge: a key of 1,024 random bytes owned by munge, and munged
if [ ! -s /etc/munge/munge.key ]; then
  say "creating /etc/munge/munge.key"
  install -d -o munge -g munge -m 0700 /etc/munge
  dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
  chown munge:munge /etc/munge/munge.key
  chmod 0400 /etc/munge/munge.key
fi
if ! munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
  say "starting munged"
  install -d -o munge -g munge -m 0755 /run/munge
  install -d -o munge -g munge -m 0700 /var/lib/munge /var/log/munge
  runuser -u munge -- munged || { logs /var/log/munge/munged.log; fail "munged did not start"; }
  touch /run/munge/started-by-slurm-up  # slurm-down stops only the munged it started
  for _ in $(seq 20); do munge -n 2>/dev/null | unmunge >/dev/null 2>&1 && break; sleep 0.5; done
  munge -n | unmunge >/dev/null || { logs /var/log/munge/munged.log; fail "munge does not answer"; }
fi

# 3. slurm.conf: one node (this host, as slurmd -C sees it), one partition
HOST=$(hostname -s)
[ -n "$HOST" ] || fail "this machine has no host name (hostname -s is empty)"
if [ -f "$CONF" ] && ! grep -qxF "$MARK" "$CONF"; then
  fail "$CONF exists and was not written by this script; leaving that cluster alone (use it, or move the file away)"
fi
NODE=$(slurmd -C | head -n 1)  # NodeName=host CPUs=... Boards=... RealMemory=...
case "$NODE" in NodeName=*" CPUs="*" RealMemory="*) ;; *) fail "slurmd -C did not describe this machine: $NODE";; esac
CPUS=$(sed -E 's/.* CPUs=([0-9]+).*/\1/' <<<"$NODE")
MEMORY=$(sed -E 's/.* RealMemory=([0-9]+).*/\1/' <<<"$NODE")
NODE=$(sed -E "s/^NodeName=[^ ]+/NodeName=$HOST NodeAddr=127.0.0.1/" <<<"$NODE")
WANTED=$(cat <<CONF
$MARK
ClusterName=movelab
SlurmctldHost=$HOST(127.0.0.1)
SlurmUser=root
AuthType=auth/munge
StateSaveLocation=/var/lib/slurm/slurmctld
SlurmdSpoolDir=/var/lib/slurm/slurmd
SlurmctldPidFile=/run/slurm/slurmctld.pid
SlurmdPidFile=/run/slurm/slurmd.pid
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=$((MEMORY / CPUS))
MpiDefault=none
ReturnToService=2
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
$NODE State=UNKNOWN
PartitionName=$PARTITION Nodes=$HOST Default=YES MaxTime=INFINITE State=UP
CONF
)
install -d /etc/slurm /var/lib/slurm/slurmctld /var/lib/slurm/slurmd /run/slurm /var/log/slurm
if [ "$(cat "$CONF" 2>/dev/null)" != "$WANTED" ]; then
  say "writing $CONF ($HOST: $CPUS CPUs, $MEMORY MB; partition $PARTITION)"
  printf '%s\n' "$WANTED" >"$CONF"
  if scontrol ping >/dev/null 2>&1; then scontrol reconfigure || true; fi
fi

# 4. the daemons
alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }
if ! alive /run/slurm/slurmctld.pid; then
  say "starting slurmctld"
  slurmctld || { logs /var/log/slurm/slurmctld.log; fail "slurmctld did not start"; }
fi
if ! alive /run/slurm/slurmd.pid; then
  say "starting slurmd"
  slurmd || { logs /var/log/slurm/slurmd.log; fail "slurmd did not start"; }
fi

# 5. wait for the node to take jobs
state=""
for _ in $(seq "$((WAIT_SECONDS * 2))"); do
  state=$(timeout 10 sinfo --noheader --nodes="$HOST" --format=%t 2>/dev/null | head -n 1 || true)
  case "$state" in
    idle|mix|alloc) break;;
    down*|drain*|drng*) scontrol update NodeName="$HOST" State=RESUME >/dev/null 2>&1 || true;;
  esac
  sleep 0.5
done
case "$state" in
  idle|mix|alloc) ;;
  *) logs /var/log/slurm/slurmctld.log; logs /var/log/slurm/slurmd.log
     fail "node $HOST is not taking jobs after ${WAIT_SECONDS}s (sinfo says: ${state:-nothing})";;
esac
timeout 60 srun --partition="$PARTITION" --time=1 --ntasks=1 true \
  || { logs /var/log/slurm/slurmd.log; fail "a test job (srun true) did not run"; }
say "cluster up: node $HOST $state, $CPUS CPUs, $MEMORY MB, partition $PARTITION; a test job ran"
