"""The offline mini-study: LIMITED->LIMITED transfer among real bank tasks.

Build the task library of the study's tasks (fine-tunes each task on 1,000
examples, then TextEmb + TaskEmb), run the transfer sweep (8 targets x 7
sources x 3 restarts, plus baselines; resumable), then score the rankings:

  W=work/study
  python -m taskemb_jax.bank fetch
  python -m taskemb_jax.main --config=configs/offline_study.py \
      --config.stage=build_library --workdir=$W
  python -m taskemb_jax.main --config=configs/offline_study.py \
      --config.stage=transfer --workdir=$W
  python -m taskemb_jax.main --config=configs/offline_study.py \
      --config.stage=evaluate --workdir=$W
  python -m taskemb_jax.main --config=configs/offline_study.py \
      --config.stage=report --config.report.matrix=$W \
      --config.report.evaluation_md=$W/evaluation.md --workdir=$W/report

Results of the committed run: results/offline_study/ and README.md.
"""

from configs import common

# Eight offline tasks, all three classes (regression counts as
# classification, as in the paper).
STUDY_TASKS = ("mr-polarity,rt-subjectivity,hedge,wn-supersense,vader-movies,"
               "wn-defqa,wsj-pos,oanc-pos")


def get_config():
  c = common.get_config()
  c.model = "minilm-l6"
  c.library = "library/minilm-l6"
  c.transfer.sources = STUDY_TASKS
  c.transfer.regime = "LIMITED->LIMITED"
  c.transfer.source_examples = 1000
  c.transfer.target_examples = 1000
  c.transfer.restarts = 3
  c.transfer.eval_split = "test"
  c.transfer.max_eval_examples = 500
  # Sized for a sweep of about 90 minutes on a 2-core CPU (measured: 94
  # minutes): short inputs (the bank's sentences fit in 64 tokens), sources
  # fine-tuned for 2 epochs (tagging: 3), targets for 1 epoch, evaluation on
  # 200 validation and 500 test examples. MiniLM needs a higher learning
  # rate than BERT-base's 2e-5 to learn from 1,000 examples in so few steps
  # (tagging: 3e-4).
  c.transfer.all.max_length = 64
  c.transfer.all.num_epochs = 2
  c.transfer.all.max_eval_examples = 200
  c.transfer.all.eval_batch_size = 128
  c.transfer.classification.learning_rate = 1e-4
  c.transfer.qa.learning_rate = 1e-4
  c.transfer.qa.batch_size = 32
  c.transfer.tagging.learning_rate = 3e-4
  c.transfer.tagging.num_epochs = 3
  # Target runs: one epoch, and no optimizer state kept (a killed run
  # restarts whole).
  c.transfer.target.num_epochs = 1
  c.transfer.target.save_latest = False
  # TaskEmb / TextEmb of every task on the same 1,000 training examples.
  c.embed.num_examples = 1000
  c.eval_batch_size = 128
  return c
