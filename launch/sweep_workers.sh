#!/usr/bin/env bash
# Spread a transfer sweep over N workers (hosts, GPUs or SLURM array tasks):
# worker i runs every run whose index is i modulo N, results land in the
# shared workdir, and any worker's final merge (or a later `transfer` call
# with nothing left to do) writes the complete transfer matrix.
#
# Locally, one worker per device:
#   launch/sweep_workers.sh 4 work/sweep --config=configs/offline_study.py
# As a SLURM array (one pair per worker at a time, N = array size):
#   sbatch --array=0-31 --wrap "launch/sweep_workers.sh 32 /shared/sweep \
#       --config=configs/offline_study.py"
#
# Sources are fine-tuned once: run the build_library stage (or one worker
# with shard 0/1 over the sources) first, so workers do not race to
# fine-tune the same source.
set -euo pipefail
N=$1 WORKDIR=$2
shift 2
PY=${PYTHON:-.venv/bin/python}
if [[ -n "${SLURM_ARRAY_TASK_ID:-}" ]]; then
  i=$SLURM_ARRAY_TASK_ID
  $PY -m taskemb_jax.main "$@" --workdir="$WORKDIR" \
    --config.stage=transfer --config.transfer.shard="$i/$N"
else
  for ((i = 0; i < N; i++)); do
    CUDA_VISIBLE_DEVICES=${GPUS:+$(( i % GPUS ))} $PY -m taskemb_jax.main "$@" \
      --workdir="$WORKDIR" --config.stage=transfer \
      --config.transfer.shard="$i/$N" &
  done
  wait
fi
# Merge whatever is finished (every run is skipped, only the matrix written).
$PY -m taskemb_jax.main "$@" --workdir="$WORKDIR" --config.stage=transfer
