"""MNLI fine-tuning with the paper's classification settings (needs the hub).

  python -m taskemb_jax.main --config=configs/mnli.py --workdir=/tmp/mnli \
      --config.model=bert-base-uncased

Expected: about 84% matched accuracy with BERT-base after 3 epochs.
"""

from configs import common
from taskemb_jax.recipe import FAMILY_DEFAULTS


def get_config():
  c = common.get_config()
  c.task = "mnli"
  c.update(FAMILY_DEFAULTS["classification"])
  return c
