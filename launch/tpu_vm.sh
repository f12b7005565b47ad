#!/usr/bin/env bash
# Run one taskemb_jax command on every host of a multi-host Cloud TPU VM slice.
#
#   launch/tpu_vm.sh TPU_NAME ZONE -- --config=configs/mnli.py \
#       --workdir=/mnt/shared/mnli --config.model=bert-base-uncased
#
# Every host runs the same command with TASKEMB_MULTIHOST=1, so that
# taskemb_jax.sharding.maybe_initialize_distributed calls
# jax.distributed.initialize(), which finds the slice's hosts and its
# coordinator in the TPU metadata; one mesh spans all chips and each process
# feeds its own slice of every global batch. Process 0 alone writes the
# shared files, so the workdir must be shared by all hosts (NFS or a
# mounted bucket). JAX_DISTRIBUTED_TIMEOUT (seconds, default 300) bounds
# the wait for all hosts at start-up and is passed on. A host whose process
# fails alone ends at once; JAX's heartbeats then stop the others. Set
# REPO_DIR if the checkout is elsewhere.
set -euo pipefail
if [[ $# -lt 3 || "$3" != "--" ]]; then
  echo "usage: $0 TPU_NAME ZONE -- <taskemb_jax.main flags>" >&2
  exit 2
fi
TPU_NAME=$1 ZONE=$2
shift 3
REPO_DIR=${REPO_DIR:-\$HOME/taskemb_jax}
ARGS=$(printf ' %q' "$@")
ENVS="TASKEMB_MULTIHOST=1"
if [[ -n "${JAX_DISTRIBUTED_TIMEOUT:-}" ]]; then
  ENVS+=" JAX_DISTRIBUTED_TIMEOUT=$(printf '%q' "$JAX_DISTRIBUTED_TIMEOUT")"
fi
gcloud compute tpus tpu-vm ssh "$TPU_NAME" --zone "$ZONE" --worker=all \
  --command "cd $REPO_DIR && $ENVS .venv/bin/python -m taskemb_jax.main$ARGS"
