#!/usr/bin/env bash
# One-time set-up of the checkout on every host of a TPU VM slice.
#   launch/tpu_vm_setup.sh TPU_NAME ZONE [GIT_URL]
set -euo pipefail
TPU_NAME=$1 ZONE=$2 URL=${3:-https://github.com/your-org/taskemb_jax.git}
gcloud compute tpus tpu-vm ssh "$TPU_NAME" --zone "$ZONE" --worker=all \
  --command "git clone $URL taskemb_jax || true; cd taskemb_jax && make setup \
    && .venv/bin/pip install -q 'jax[tpu]' \
      -f https://storage.googleapis.com/jax-releases/libtpu_releases.html"
