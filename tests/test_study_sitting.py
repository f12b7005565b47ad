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


def test_measured_run_seconds_are_medians_per_class(tmp_path):
  def result(target, source, seconds=None):
    run_dir = tmp_path / target / source / "seed0"
    run_dir.mkdir(parents=True)
    res = {"task": target, "score": 1.0}
    if seconds is not None:
      res["seconds"] = seconds
    (run_dir / "result.json").write_text(json.dumps(res))
  for source, seconds in (("a", 30.0), ("b", 50.0), ("c", 41.0),
                          ("d", None)):
    result("hedge", source, seconds)  # Classification.
  result("squad-nyt", "a", 100.0)  # QA: 2 runs, too few to count.
  result("squad-nyt", "b", 120.0)
  # An old result without seconds does not count; the median of 3 is 41.
  assert study_sitting.measured_run_s(str(tmp_path)) == {
      "classification": 41.0}
  assert study_sitting.measured_run_s(str(tmp_path), at_least=2) == {
      "classification": 41.0, "qa": 110.0}


spec = importlib.util.spec_from_file_location(
    "study_logme", os.path.join(ROOT, "benchmarks", "study_logme.py"))
study_logme = importlib.util.module_from_spec(spec)
spec.loader.exec_module(study_logme)


def test_logme_pairs_and_merge_into_the_evaluate_stage_cache(tmp_path):
  config = study.get_config()
  config.transfer.targets = "hedge,trec-coarse"
  config.transfer.sources = "trec-coarse,hedge,sms-spam"
  pairs = study_logme.pairs(config)
  # No baseline, no task as its own source, every target once.
  assert pairs == {"trec-coarse": ["hedge"], "hedge": ["trec-coarse"],
                   "sms-spam": ["hedge", "trec-coarse"]}
  out, work = tmp_path / "logme", tmp_path / "work"
  out.mkdir()
  (out / "sms-spam.json").write_text(json.dumps(
      {"scores": {"hedge": 0.5, "trec-coarse": -1.25},
       "seconds": {"hedge": 3.0, "trec-coarse": 4.0}}))
  (out / "hedge.json").write_text(json.dumps(
      {"scores": {"trec-coarse": 0.75}, "seconds": {"trec-coarse": 2.0}}))
  # trec-coarse -> hedge has no score yet.
  assert study_logme.merge(config, str(out), str(work)) == 1
  cache = json.loads((work / "logme_scores.json").read_text())
  assert cache["scores"] == {"hedge": {"sms-spam": 0.5},
                             "trec-coarse": {"sms-spam": -1.25,
                                             "hedge": 0.75}}
  assert cache["seconds"]["trec-coarse"]["hedge"] == 2.0
  (out / "trec-coarse.json").write_text(json.dumps(
      {"scores": {"hedge": 0.0}, "seconds": {"hedge": 1.0}}))
  assert study_logme.merge(config, str(out), str(work)) == 0


def test_logme_skips_a_source_without_a_finished_model(tmp_path):
  config = study.get_config()
  out = tmp_path / "logme"
  out.mkdir()
  # No model in the workdir and no --finetune: nothing scored, nothing
  # written (and no model is loaded).
  assert study_logme.score_source(config, str(tmp_path / "work"), str(out),
                                  "hedge", ["trec-coarse"],
                                  finetune=False) == 0
  assert not list(out.iterdir())
