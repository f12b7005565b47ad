#!/usr/bin/env bash
# Run one taskemb_jax command as N processes on this machine, as a pod or a
# multi-node job runs it (one process per host there, N here):
#
#   launch/local_processes.sh 2 --config=configs/tiny.py --workdir=work/t
#
# The arguments are those of the single-process command
# (python -m taskemb_jax.main ...). Each process gets JAX_COORDINATOR_ADDRESS
# (127.0.0.1 and a free port, or JAX_COORDINATOR_PORT), JAX_NUM_PROCESSES=N
# and JAX_PROCESS_ID=i; taskemb_jax.sharding.maybe_initialize_distributed()
# joins them (gloo collectives on CPU; it waits at most
# JAX_DISTRIBUTED_TIMEOUT seconds, default 300, for all of them). Devices:
# with GPUs, process i sees its share of them (CUDA_VISIBLE_DEVICES; set
# GPUS to how many to use); on CPU each process has one device, or as many
# as XLA_FLAGS=--xla_force_host_platform_device_count=K gives it. Every
# process reads the data and feeds its slice of each global batch; process 0
# alone writes the shared files (metrics, checkpoints' metadata, the
# library, the matrix) and shows the progress bars.
#
# If one process fails, the others are stopped and the launcher exits with
# that process's status (2 for a user error); Ctrl-C stops all of them.
set -uo pipefail
if [[ $# -lt 1 || ! "$1" =~ ^[1-9][0-9]*$ ]]; then
  echo "usage: $0 N <taskemb_jax.main flags>" >&2
  exit 2
fi
N=$1
shift
PY=${PYTHON:-.venv/bin/python}
PORT=${JAX_COORDINATOR_PORT:-$("${PY%% *}" -c 'import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])')}
if [[ -z "$PORT" ]]; then
  echo "$0: found no free port for the coordinator" >&2
  exit 2
fi
export JAX_COORDINATOR_ADDRESS=127.0.0.1:$PORT JAX_NUM_PROCESSES=$N

# Each process's share of the GPUs (none on a CPU-only machine).
gpus=${GPUS:-$( (nvidia-smi -L 2>/dev/null || true) | grep -c '^GPU')}
if ((gpus > 0 && gpus % N)); then
  echo "$0: $gpus GPUs do not split evenly over $N processes" >&2
  exit 2
fi

pids=()
stop_all() {
  kill -TERM "${pids[@]}" 2>/dev/null
  for _ in 1 2 3 4 5 6 7 8 9 10; do
    [[ -z "$(jobs -rp)" ]] && return 0
    sleep 0.5
  done
  kill -KILL "${pids[@]}" 2>/dev/null
}
trap 'stop_all; exit 130' INT TERM

for ((i = 0; i < N; i++)); do
  (
    export JAX_PROCESS_ID=$i
    if ((gpus > 0)); then
      per=$((gpus / N))
      export CUDA_VISIBLE_DEVICES=$(seq -s, $((i * per)) $((i * per + per - 1)))
    fi
    exec $PY -m taskemb_jax.main "$@"
  ) &
  pids+=($!)
done

# The first process to end with an error ends the job.
for ((left = N; left > 0; left--)); do
  wait -n -p ended
  code=$?
  if ((code != 0)); then
    for ((i = 0; i < N; i++)); do
      [[ ${pids[i]} == "$ended" ]] && break
    done
    echo "local_processes.sh: process $i of $N ended with status $code;" \
      "stopping the others" >&2
    stop_all
    wait
    exit "$code"
  fi
done
