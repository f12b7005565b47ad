#!/usr/bin/env bash
# Spread a transfer sweep over N workers (hosts, GPUs or SLURM array tasks):
# worker i runs every run whose index is i modulo N, results land in the
# shared workdir, and the matrix is merged from them by every worker (the
# last one to finish writes the complete matrix).
#
# Locally, one worker per device (GPUS=k pins worker i to GPU i mod k):
#   GPUS=4 launch/sweep_workers.sh 4 work/sweep --config=configs/offline_study.py
# or, on a CPU host, one worker per core (CPUS_PER_WORKER=k pins worker i to
# k CPUs of this process's affinity, from the (i*k)-th on, with taskset):
#   CPUS_PER_WORKER=1 launch/sweep_workers.sh 2 work/sweep --config=...
# XLA:CPU's threads gain little over one core each on small models: two
# pinned workers did 1.15-1.22x the train steps per second of one worker on
# both CPUs of a 2-CPU machine (benchmarks/cpu_workers.py), before counting
# the single-threaded host work (data, decoding, checkpoints) they overlap.
# As a SLURM array (one pair per worker at a time, N = array size):
#   sbatch --array=0-31 --wrap "launch/sweep_workers.sh 32 /shared/sweep \
#       --config=configs/offline_study.py"
#
# Workers coordinate through lock files in the workdir (.<run>.lock next to
# every run folder): a source is fine-tuned by exactly one worker while the
# others that need it wait, then reuse it; a target run is done by one
# worker. The workdir must be on a filesystem whose flock() works across
# the workers' hosts (a local disk, NFSv4, Lustre with flock enabled).
# A run folder that holds a run of other settings stops the worker with an
# error (--config.overwrite=true redoes such runs).
set -euo pipefail
N=$1 WORKDIR=$2
shift 2
PY=${PYTHON:-.venv/bin/python}
if [[ -n "${SLURM_ARRAY_TASK_ID:-}" ]]; then
  i=$SLURM_ARRAY_TASK_ID
  exec $PY -m taskemb_jax.main "$@" --workdir="$WORKDIR" \
    --config.stage=transfer --config.transfer.shard="$i/$N"
fi
if [[ -n "${CPUS_PER_WORKER:-}" ]]; then
  read -r -a CPUS < <($PY -c 'import os; print(*sorted(os.sched_getaffinity(0)))')
fi
pids=()
for ((i = 0; i < N; i++)); do
  (
    if [[ -n "${GPUS:-}" ]]; then
      export CUDA_VISIBLE_DEVICES=$((i % GPUS))
    fi
    pin=()
    if [[ -n "${CPUS_PER_WORKER:-}" ]]; then
      mine=()
      for ((j = 0; j < CPUS_PER_WORKER; j++)); do
        mine+=("${CPUS[$(((i * CPUS_PER_WORKER + j) % ${#CPUS[@]}))]}")
      done
      pin=(taskset -c "$(IFS=,; echo "${mine[*]}")")
    fi
    exec "${pin[@]}" $PY -m taskemb_jax.main "$@" --workdir="$WORKDIR" \
      --config.stage=transfer --config.transfer.shard="$i/$N"
  ) &
  pids+=($!)
done
failed=0
for pid in "${pids[@]}"; do
  wait "$pid" || failed=$((failed + 1))
done
if ((failed)); then
  echo "sweep_workers.sh: $failed of $N workers failed" >&2
  exit 1
fi
