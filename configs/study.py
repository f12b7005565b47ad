"""Study v2: LIMITED->LIMITED transfer over the whole offline bank.

Every library task (configs/library.py: all 45 bank tasks, fine-tuned on
1,000 examples) is a source for 12 targets, 4 of each class, with 2 random
restarts of every target run and the baseline without an intermediate task.
Then every ranking method is scored against the measured transfer:

  W=work/study2
  python -m taskemb_jax.bank fetch
  python -m taskemb_jax.main --config=configs/library.py \
      --config.stage=build_library --workdir=$W
  python -m taskemb_jax.main --config=configs/study.py \
      --config.stage=transfer --workdir=$W
  python -m taskemb_jax.main --config=configs/study.py \
      --config.stage=evaluate --workdir=$W
  python -m taskemb_jax.main --config=configs/study.py \
      --config.stage=report --config.report.matrix=$W \
      --config.report.evaluation_md=$W/evaluation.md --workdir=$W/report

Every stage is resumable: a killed sweep continues where it stopped, and
benchmarks/study.sh runs it in sittings, copying each finished run's small
result file into results/study_v2/ as it goes.
"""

from configs import library

# Four targets per class, chosen to span the bank: sentence classification
# (sentiment, question type, hedging, fact claims), tagging (gold POS of
# the WSJ, coarse POS of the Brown corpus, automatic POS of the OANC,
# essential words) and QA (short definitions, news, science-paragraph
# reasoning, product reviews). Not wnut16-ner: 1,000 tweets fine-tuned for
# an epoch tag every word O (span F1 0 from every source, as its library
# run does after 3 epochs), so it cannot tell sources apart. Nor disfl-qa,
# the first fourth QA target, for the same reason: 250 of its questions
# fine-tuned for an epoch answer "no answer" to every test question, from
# every source and both restarts (F1 32.4, the share of unanswerable
# questions; its library run does the same after 2 epochs on 1,000). Its
# 90 runs stay in results/study_v2/runs/disfl-qa/; squad-amazon replaced it.
TARGETS = ("mr-polarity,trec-coarse,hedge,fever-claims,"
           "wsj-pos,brown-upos,oanc-pos,essential-terms,"
           "wn-defqa,squad-nyt,ropes,squad-amazon")


def get_config():
  c = library.get_config()
  c.transfer.targets = TARGETS
  c.transfer.target_examples = 1000
  c.transfer.restarts = 2
  c.transfer.eval_split = "test"
  c.transfer.max_eval_examples = 500
  # Target runs: one epoch, and no optimizer state kept (a killed run
  # restarts whole).
  c.transfer.target.num_epochs = 1
  c.transfer.target.save_latest = False
  # A 1-epoch run has no epoch to choose: validate on a few examples only.
  c.transfer.target.max_eval_examples = 64
  # QA targets: 250 questions, about the tokens of 1,000 sentences (a
  # question comes with a passage of 120-470 words, ~3 windows of 128
  # tokens); 1,000 would make the QA part of the sweep 4x longer than the
  # rest together.
  c.transfer.target.qa.train_examples = 250
  return c
