"""The main command: which of the shipped library's tasks should a new task
fine-tune on first? (CPU, offline.)

  make demo        # = set up, fetch the demo's corpus, then:
  python -m taskemb_jax.main --config=configs/demo.py --workdir=work/demo

The default target, rt-freshness (Rotten Tomatoes fresh vs rotten reviews),
is treated as a new task: it is fine-tuned on 1,000 examples with the
library's recipe for its class (a classification target for one epoch at
twice the learning rate) and embedded (TextEmb, TaskEmb) on 250 of them
with the library's options, and the library's other tasks are ranked as
its sources (its own library entry is
never a source). Your own data:

  python -m taskemb_jax.main --config=configs/demo.py --workdir=work/mine \
      --config.task=classification:path/to/data.jsonl
"""

from configs import library
from taskemb_jax import encoders


def get_config():
  # The target is fine-tuned with the library's recipe for its class and
  # embedded with the library's options (configs/library.py), with changes
  # measured not to rank worse on study v2 (README, "How a new target is
  # embedded"; benchmarks/target_recipes.py): TextEmb and TaskEmb of 250
  # training examples instead of 1,000, on CPUs that multiply bfloat16
  # natively fine-tuning in bfloat16 (TextEmb and the Fisher stay float32),
  # and a classification target fine-tuned for one epoch.
  c = library.get_config()
  c.stage = "demo"
  c.task = "rt-freshness"
  c.rank.reembed = True
  c.rank.embed_examples = 250
  if encoders.bfloat16_is_fast():
    c.rank.finetune.dtype = "bfloat16"
  # A classification target: one epoch at twice the library's learning rate
  # (half the fine-tuning time; within the spread over the study's restarts
  # on its 4 classification targets, README). Tagging and QA targets keep
  # their class's epochs: one epoch ranked tagging targets worse.
  c.rank.finetune.classification.num_epochs = 1
  c.rank.finetune.classification.learning_rate = 2e-4
  # No optimizer checkpoints for the target: a killed command fine-tunes it
  # again (seconds for 1,000 examples) and its best model is written once.
  c.rank.finetune.save_latest = False
  return c
