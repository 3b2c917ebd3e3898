#!/usr/bin/env bash
# A single-node Slurm on this machine for the cluster-executor tests (tests/runner/slurm_test.ts):
# installs Debian's slurm-wlm + munge if missing, writes a slurm.conf for localhost, starts munged,
# slurmctld and slurmd without systemd, and waits until the node is idle. Never fails the build:
# if Slurm cannot start, it says why and the Slurm tests skip.
set -uo pipefail

say() { echo "slurm.sh: $*" >&2; }
retry() { local n=$1 i; shift; for ((i = 1; i <= n; i++)); do "$@" && return 0; sleep $((i * 5)); done; return 1; }

if sinfo -h -o %T 2>/dev/null | grep -qx idle; then say "Slurm already up"; exit 0; fi
if [ "$(id -u)" != 0 ]; then say "not root: cannot start Slurm daemons (tests will skip)"; exit 0; fi
if ! command -v slurmctld >/dev/null 2>&1 || ! command -v munged >/dev/null 2>&1; then
  export DEBIAN_FRONTEND=noninteractive
  { retry 3 apt-get update -q && retry 3 apt-get install -y -q slurm-wlm munge; } >/dev/null ||
    { say "could not install slurm-wlm/munge (tests will skip)"; exit 0; }
fi

mkdir -p /run/munge /run/slurm /var/spool/slurmctld /var/spool/slurmd /var/log/slurm /etc/slurm
chown munge:munge /run/munge 2>/dev/null; chmod 755 /run/munge
chown slurm:slurm /var/spool/slurmctld /run/slurm /var/log/slurm 2>/dev/null
[ -f /etc/munge/munge.key ] || { dd if=/dev/urandom bs=1 count=1024 of=/etc/munge/munge.key 2>/dev/null; chown munge:munge /etc/munge/munge.key; chmod 400 /etc/munge/munge.key; }
pgrep -x munged >/dev/null || runuser -u munge -- /usr/sbin/munged || /usr/sbin/munged --force ||
  { say "munged did not start (tests will skip)"; exit 0; }

# The node's real size (RealMemory must not exceed what slurmd -C reports).
cpus=$(slurmd -C 2>/dev/null | sed -nE 's/.*CPUs=([0-9]+).*/\1/p' | head -n 1)
mem=$(slurmd -C 2>/dev/null | sed -nE 's/.*RealMemory=([0-9]+).*/\1/p' | head -n 1)
cpus=${cpus:-$(nproc)}; mem=$((${mem:-2000} * 9 / 10))
cat > /etc/slurm/slurm.conf <<CONF
ClusterName=ablate-ci
SlurmctldHost=localhost
SlurmUser=slurm
AuthType=auth/munge
AuthInfo=cred_expire=10
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
MpiDefault=none
ReturnToService=2
KillWait=10
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=/run/slurm/slurmctld.pid
SlurmdPidFile=/run/slurm/slurmd.pid
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
NodeName=localhost CPUs=${cpus} RealMemory=${mem} State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
CONF

pgrep -x slurmctld >/dev/null || slurmctld || { say "slurmctld did not start (tests will skip)"; exit 0; }
pgrep -x slurmd >/dev/null || slurmd || { say "slurmd did not start (tests will skip)"; exit 0; }
for _ in $(seq 1 60); do
  if sinfo -h -o %T 2>/dev/null | grep -qx idle; then say "Slurm up: $(sinfo -h -o '%P %D %T %c')"; exit 0; fi
  scontrol update nodename=localhost state=resume >/dev/null 2>&1
  sleep 1
done
say "the node did not become idle in 60 s (tests will skip): $(sinfo -h 2>&1 | head -n 3)"
exit 0
