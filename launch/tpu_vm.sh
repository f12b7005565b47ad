#!/usr/bin/env bash
# Run one taskemb_jax command on every host of a multi-host Cloud TPU VM slice.
#
#   launch/tpu_vm.sh TPU_NAME ZONE -- --config=configs/mnli.py \
#       --workdir=gs://bucket/mnli --config.model=bert-base-uncased
#
# Every host runs the same command; JAX finds the slice's coordinator from
# the TPU metadata (taskemb_jax.sharding.maybe_initialize_distributed calls
# jax.distributed.initialize() when TPU_WORKER_HOSTNAMES lists several
# hosts), builds one mesh over all chips and feeds each process its own
# slice of every global batch. The workdir must be shared by all hosts
# (a GCS bucket or NFS). Set REPO_DIR if the checkout is elsewhere.
set -euo pipefail
if [[ $# -lt 3 || "$3" != "--" ]]; then
  echo "usage: $0 TPU_NAME ZONE -- <taskemb_jax.main flags>" >&2
  exit 2
fi
TPU_NAME=$1 ZONE=$2
shift 3
REPO_DIR=${REPO_DIR:-\$HOME/taskemb_jax}
ARGS=$(printf ' %q' "$@")
gcloud compute tpus tpu-vm ssh "$TPU_NAME" --zone "$ZONE" --worker=all \
  --command "cd $REPO_DIR && .venv/bin/python -m taskemb_jax.main$ARGS"
