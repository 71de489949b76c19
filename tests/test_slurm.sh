#!/bin/sh
# A real Slurm cluster on this machine runs scripts/slurm/evmap-array.sbatch
# (issue 21): munged, slurmctld and slurmd (Debian's, from
# scripts/install-deps) started as root with a key, a slurm.conf and state
# folders in a temporary folder and ports on 127.0.0.1; a 4-task array job
# explains 200 Fashion-MNIST test images (40 under EVMAP_QUICK=1) with the
# efficient method; task 2 is cancelled (scancel) once it has finished 5
# images and then resubmitted alone (SHARDS=4); afterwards every map and
# picture equals, byte for byte, a single-process run's, no temporary file
# is left, the resubmitted task skipped the images it had finished, and
# `evmap index` finds every image done. Every daemon started is stopped by
# its pid, also when a check fails. Skipped (counted, with the reason) only
# when Slurm is not installed or its daemons do not come up.
# Prints one "ok"/"FAIL" line per check and "N passed, N failed, N skipped".
set -u
BUILD=${BUILD:-build}
PYTHON=${PYTHON:-/usr/bin/python3}
ROOT=$(pwd)
EVMAP=$ROOT/$BUILD/evmap
MODEL=$ROOT/models/fashion_cnn.onnx
SBATCH_SCRIPT=$ROOT/scripts/slurm/evmap-array.sbatch
N=200
[ "${EVMAP_QUICK:-0}" = 1 ] && N=40
passed=0
failed=0

check() { # check CONDITION-EXIT-CODE WHAT [DETAIL]
    if [ "$1" -eq 0 ]; then
        passed=$((passed + 1))
        echo "ok   $2"
    else
        failed=$((failed + 1))
        echo "FAIL $2${3:+: $3}"
    fi
}

T=$(mktemp -d /tmp/evmap-slurm.XXXXXX)
daemon_pids=""
cleanup() {
    for p in $daemon_pids; do
        kill "$p" 2>/dev/null
    done
    for p in $daemon_pids; do # give them KillWait to go, then insist
        i=0
        while kill -0 "$p" 2>/dev/null && [ $i -lt 50 ]; do
            sleep 0.1
            i=$((i + 1))
        done
        kill -9 "$p" 2>/dev/null
    done
    rm -rf "$T"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

skip() {
    echo "skip: $1"
    echo "$passed passed, $failed failed, 1 skipped"
    exit 0
}

for d in munged slurmctld slurmd sbatch squeue scancel sinfo; do
    command -v "$d" >/dev/null 2>&1 || skip "$d is not installed (scripts/install-deps installs Slurm)"
done
[ "$(id -u)" -eq 0 ] || skip "the test cluster runs as root, and this is not root"

# ---------------------------------------------------------------- cluster
mkdir -p "$T/state" "$T/spool" "$T/out"
chmod 700 "$T"
dd if=/dev/urandom of="$T/munge.key" bs=1024 count=1 2>/dev/null
chmod 400 "$T/munge.key"
munged --force --key-file="$T/munge.key" --socket="$T/munge.sock" --pid-file="$T/munged.pid" \
    --log-file="$T/munged.log" --seed-file="$T/munged.seed" ||
    skip "munged did not start: $(tail -n 1 "$T/munged.log" 2>/dev/null)"
daemon_pids="$(cat "$T/munged.pid")"

host=$(hostname -s)
port=$((20000 + $$ % 20000 * 2))
cat >"$T/slurm.conf" <<EOF
ClusterName=evmaptest
SlurmctldHost=$host(127.0.0.1)
SlurmUser=root
SlurmdUser=root
SlurmctldPort=$port
SlurmdPort=$((port + 1))
AuthType=auth/munge
AuthInfo=socket=$T/munge.sock
CredType=cred/munge
StateSaveLocation=$T/state
SlurmdSpoolDir=$T/spool
SlurmctldPidFile=$T/slurmctld.pid
SlurmdPidFile=$T/slurmd.pid
SlurmctldLogFile=$T/slurmctld.log
SlurmdLogFile=$T/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
MpiDefault=none
ReturnToService=2
JobCompType=jobcomp/none
AccountingStorageType=accounting_storage/none
InactiveLimit=0
KillWait=2
MinJobAge=600
NodeName=$host NodeAddr=127.0.0.1 CPUs=2 State=UNKNOWN
PartitionName=evmap Nodes=$host Default=YES MaxTime=INFINITE State=UP
EOF
export SLURM_CONF="$T/slurm.conf"
slurmctld -D -f "$SLURM_CONF" >"$T/slurmctld.out" 2>&1 &
daemon_pids="$daemon_pids $!"
slurmd -D -f "$SLURM_CONF" >"$T/slurmd.out" 2>&1 &
daemon_pids="$daemon_pids $!"
i=0
until [ "$(sinfo -h -o %t 2>/dev/null)" = idle ]; do
    i=$((i + 1))
    [ $i -gt 100 ] && skip "the Slurm daemons did not come up in 20 s: $(tail -n 2 "$T/slurmctld.log" "$T/slurmd.log" 2>/dev/null | tr '\n' ' ')"
    sleep 0.2
done
echo "a one-node Slurm cluster is up ($host, ports $port-$((port + 1)), $T)"

# ---------------------------------------------------------------- data
DATA=$T/t10k-$N-images-idx3-ubyte
"$PYTHON" - "$N" "$DATA" <<'EOF'
import gzip, sys
n, out = int(sys.argv[1]), sys.argv[2]
raw = gzip.open("/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz").read()
header = bytes([0, 0, 8, 3]) + n.to_bytes(4, "big") + (28).to_bytes(4, "big") * 2
open(out, "wb").write(header + raw[16:16 + n * 784])
EOF
"$EVMAP" fit-sampler --model "$MODEL" --window 4 --patches 2000 -o "$T/k4.evs" "$DATA" \
    >/dev/null 2>&1
OPTIONS="--method efficient --sampler-file $T/k4.evs --samples 4 --batch 16"
# shellcheck disable=SC2086
"$EVMAP" explain --model "$MODEL" --out "$T/single" --threads 2 --quiet $OPTIONS "$DATA"
check $? "single-process reference run of $N images"

wait_job() { # wait_job JOBID: until squeue no longer lists it (at most 300 s)
    i=0
    while [ -n "$(squeue -h -j "$1" 2>/dev/null)" ] && [ $i -lt 1500 ]; do
        sleep 0.2
        i=$((i + 1))
    done
    [ $i -lt 1500 ]
}
records() { # records SHARD: image lines in that shard's index part
    f=$T/out/index-efficient.part-$1-of-4.jsonl
    if [ -f "$f" ]; then grep -c '"status"' "$f"; else echo 0; fi
}

# ---------------------------------------------------------------- array job
# shellcheck disable=SC2086
job=$(sbatch --parsable --array=0-3 --cpus-per-task=1 --output="$T/task-%A_%a.log" \
    --export=ALL,MODEL="$MODEL",DATA="$DATA",OUT="$T/out",EVMAP="$EVMAP" \
    "$SBATCH_SCRIPT" $OPTIONS)
check $? "sbatch --array=0-3 accepted (job $job)"
i=0
while [ "$(records 2)" -lt 5 ] && [ $i -lt 1500 ]; do
    sleep 0.05
    i=$((i + 1))
done
scancel "${job}_2"
wait_job "$job"
check $? "the array job ended"
done_before=$(records 2)
[ "$done_before" -ge 5 ] && [ "$done_before" -lt $((N / 4)) ]
check $? "task 2 was cancelled part way ($done_before of $((N / 4)) images done)"
files=$(find "$T/out" -name '*.npy' | wc -l)
[ "$files" -lt "$N" ]
check $? "before the resubmission maps are missing ($files of $N)"

# shellcheck disable=SC2086
job2=$(sbatch --parsable --array=2 --cpus-per-task=2 --output="$T/task-%A_%a.log" \
    --export=ALL,SHARDS=4,MODEL="$MODEL",DATA="$DATA",OUT="$T/out",EVMAP="$EVMAP" \
    "$SBATCH_SCRIPT" $OPTIONS)
wait_job "$job2"
check $? "task 2 resubmitted alone (job $job2) ended"

# ---------------------------------------------------------------- checks
"$PYTHON" - "$T/single" "$T/out" "$N" <<'EOF'
import os, sys
single, out, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
def maps(d):
    return {f: open(os.path.join(d, f), "rb").read() for f in os.listdir(d)
            if f.endswith((".npy", ".png"))}
a, b = maps(single), maps(out)
differ = [f for f in a if a[f] != b.get(f)]
print(f"{len(b)} files in the array's folder, {len(a)} in the single run's, {len(differ)} differ")
sys.exit(0 if len(a) == 3 * n and sorted(a) == sorted(b) and not differ else 1)
EOF
check $? "every map and picture of the array job = the single-process run's, byte for byte"
left=$(find "$T/out" -name '*.tmp.*' | wc -l)
[ "$left" -eq 0 ]
check $? "no temporary file left ($left)"
grep -q "already complete" "$T/task-${job2}_2.log" 2>/dev/null ||
    grep -q "already complete" "$T"/task-"${job2}"*.log 2>/dev/null
check $? "the resubmitted task skipped the images it had finished" \
    "$(cat "$T"/task-"${job2}"*.log 2>/dev/null | tail -n 3)"
"$EVMAP" index "$T/out" 2>"$T/index.err"
rc=$?
rows=$(grep -c ',done,' "$T/out/index.csv" 2>/dev/null)
[ "$rc" -eq 0 ] && [ "$rows" -eq "$N" ]
check $? "evmap index: every image done ($rows rows, exit $rc)" "$(cat "$T/index.err")"

echo "$passed passed, $failed failed, 0 skipped"
[ "$failed" -eq 0 ]
