"""CPU test mode: a tiny random BERT on a small task; trains in seconds.

  python -m taskemb_jax.main --config=configs/tiny.py --workdir=/tmp/tiny

Any stage works with it (--config.stage=taskemb, ...). The tokenizer is the
packaged MiniLM uncased vocabulary.
"""

from configs import common


def get_config():
  c = common.get_config()
  c.model = "tiny"
  c.dropout = 0.0
  c.learning_rate = 1e-3
  c.batch_size = 16
  c.eval_batch_size = 32
  c.max_length = 64
  c.num_epochs = 6
  c.train_examples = 256
  c.max_eval_examples = 128
  return c
