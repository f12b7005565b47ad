"""benchmarks/study_sitting.py: the unfinished runs of a sweep, and the
sources a sitting of a given length takes."""

import importlib.util
import json
import os

from configs import study
from taskemb_jax import transfer

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
spec = importlib.util.spec_from_file_location(
    "study_sitting", os.path.join(ROOT, "benchmarks", "study_sitting.py"))
study_sitting = importlib.util.module_from_spec(spec)
spec.loader.exec_module(study_sitting)


def test_pick_by_runs_per_second_within_budget():
  runs = {"a": 3, "b": 1, "c": 2, "d": 1}
  cost = {"a": 30.0, "b": 5.0, "c": 40.0, "d": 4.0}
  # Runs per second: d .25, b .2, a .1, c .05. d + b + a = 39 fits 40;
  # c does not fit after them.
  assert study_sitting.pick(runs, cost, 40.0) == ["d", "b", "a"]
  # A source that does not fit is passed over, a later cheaper one taken.
  assert study_sitting.pick(runs, cost, 10.0) == ["d", "b"]
  assert study_sitting.pick(runs, cost, 3.0) == []


def test_unfinished_skips_runs_with_a_result_of_these_settings(tmp_path):
  config = study.get_config()
  config.transfer.targets = "hedge"
  config.transfer.sources = "trec-coarse,hedge,sms-spam"
  config.transfer.restarts = 2
  runs = str(tmp_path)
  plan = transfer.plan(config)
  # hedge is not its own source: baseline + 2 sources, 2 restarts.
  assert len(plan) == 6
  for target, source, r in plan[:4:3]:
    run_dir = transfer.target_run_dir(runs, target, source, r)
    os.makedirs(run_dir)
    settings = transfer.target_run(config, runs, target, source, r)[1]
    with open(os.path.join(run_dir, "result.json"), "w") as f:
      json.dump({"settings": settings, "score": 0.5}, f)
  assert study_sitting.unfinished(config, runs) == [
      p for i, p in enumerate(plan) if i not in (0, 3)]
