#!/usr/bin/env bash
# Stops the one-node cluster of scripts/slurm-up.sh (its slurmctld, slurmd and munged); leaves
# a cluster it did not write alone. Safe to run when nothing is up.
set -uo pipefail
CONF=/etc/slurm/slurm.conf
MARK="# written by movelab's scripts/slurm-up.sh"

say() { echo "slurm-down: $*"; }
[ "$(id -u)" = 0 ] || { echo "slurm-down: run it as root" >&2; exit 1; }
if [ ! -f "$CONF" ] || ! grep -qxF "$MARK" "$CONF"; then
  say "no cluster of scripts/slurm-up.sh here ($CONF is not its); nothing stopped"
  exit 0
fi
stop() {  # stop() NAME PIDFILE: SIGTERM, then SIGKILL after 20 s
  local pid
  [ -f "$2" ] && pid=$(cat "$2") && kill -0 "$pid" 2>/dev/null || return 0
  kill "$pid"
  for _ in $(seq 40); do kill -0 "$pid" 2>/dev/null || { say "stopped $1"; return 0; }; sleep 0.5; done
  kill -9 "$pid" 2>/dev/null && say "killed $1 (it did not stop within 20 s)"
}
stop slurmd /run/slurm/slurmd.pid
stop slurmctld /run/slurm/slurmctld.pid
if [ -f /run/munge/started-by-slurm-up ]; then
  stop munged /run/munge/munged.pid && rm -f /run/munge/started-by-slurm-up
fi
