"""The shipped task library: every task of the offline bank on MiniLM-L6.

Each bank task is fine-tuned on 1,000 training examples with the recipe
below (its class's settings), then its TextEmb and TaskEmb are computed on
the same 1,000 examples and written to library/minilm-l6:

  python -m taskemb_jax.bank fetch
  python -m taskemb_jax.main --config=configs/library.py \
      --config.stage=build_library --workdir=work/study2

Resumable (tasks already embedded are skipped); the source runs it leaves in
<workdir>/sources/ are the sources of the study (configs/study.py) run in
the same workdir. About 2.5 hours on a 2-core CPU.
"""

from configs import common
from taskemb_jax.bank import catalog

# Every bank task, in the bank's order.
LIBRARY_TASKS = ",".join(catalog.TASK_SPECS)


def get_config():
  c = common.get_config()
  c.model = "minilm-l6"
  c.library = "library/minilm-l6"
  c.transfer.sources = LIBRARY_TASKS
  c.transfer.regime = "LIMITED->LIMITED"
  # The paper's LIMITED regime: 1,000 training examples per task.
  c.transfer.source_examples = 1000
  c.transfer.source_seed = 0
  # Short inputs: the bank's sentences fit in 64 tokens. Sources are
  # fine-tuned for 2 epochs (tagging: 3). MiniLM needs a higher learning
  # rate than BERT-base's 2e-5 to learn from 1,000 examples in so few steps
  # (tagging: 3e-4).
  c.transfer.all.max_length = 64
  c.transfer.all.num_epochs = 2
  c.transfer.all.max_eval_examples = 200
  c.transfer.all.eval_batch_size = 128
  c.transfer.classification.learning_rate = 1e-4
  c.transfer.tagging.learning_rate = 3e-4
  c.transfer.tagging.num_epochs = 3
  # QA: windows of 128 tokens (the paper: 384), the question cut to 32
  # tokens, 32 tokens of overlap between the windows of a long passage --
  # a passage of ~200 tokens gives 3 windows. 384-token windows would cost
  # about 3x more per question; the bank's passages are 120-470 words.
  c.transfer.qa.max_length = 128
  c.transfer.qa.max_query_length = 32
  c.transfer.qa.doc_stride = 32
  c.transfer.qa.learning_rate = 1e-4
  c.transfer.qa.batch_size = 32
  # TaskEmb / TextEmb of every task on the same 1,000 training examples.
  c.embed.num_examples = 1000
  c.eval_batch_size = 128
  return c
