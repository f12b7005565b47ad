"""The main command: which of the shipped library's tasks should a new task
fine-tune on first? (CPU, offline, about 1.5 minutes after set-up.)

  make demo        # = set up, fetch the offline bank, then:
  python -m taskemb_jax.main --config=configs/demo.py --workdir=work/demo

The default target, rt-freshness (Rotten Tomatoes fresh vs rotten reviews),
is held out of the shipped library. It is fine-tuned on 1,000 examples,
embedded (TextEmb, TaskEmb) with the library's recorded options, and the
library's tasks are ranked as its sources. Your own data:

  python -m taskemb_jax.main --config=configs/demo.py --workdir=work/mine \
      --config.task=classification:path/to/data.jsonl
"""

from configs import offline_study


def get_config():
  # The target is fine-tuned with the library's recipe for its class (the
  # study's transfer.* settings) and embedded with the library's options.
  c = offline_study.get_config()
  c.stage = "demo"
  c.task = "rt-freshness"
  return c
