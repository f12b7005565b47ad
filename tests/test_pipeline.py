"""The whole pipeline on the tiny model: library, sweep, evaluate, report, demo."""

import json
import os

import numpy as np

import synthetic
from configs import tiny
from taskemb_jax import demo, embed, evaluation, files, library, recipe
from taskemb_jax import report
from taskemb_jax import transfer


def test_library_sweep_evaluate_report_and_demo(tmp_path):
  data = {k: synthetic.write_task(str(tmp_path / k), k, n_train=48, n_val=24)
          for k in ("classification", "regression", "tagging", "qa")}
  names = [f"{k}:{data[k]}" for k in ("classification", "regression",
                                      "tagging")]
  cfg = tiny.get_config()
  cfg.library = str(tmp_path / "lib")
  cfg.transfer.sources = ",".join(names)
  cfg.transfer.restarts = 2
  cfg.transfer.source_examples = 48
  cfg.transfer.target_examples = 24
  cfg.transfer.eval_split = "validation"
  cfg.transfer.all.num_epochs = 1
  cfg.transfer.all.max_length = 64
  cfg.transfer.all.batch_size = 8
  cfg.embed.num_examples = 24
  work = str(tmp_path / "work")

  embed.build_library_stage(cfg, work)
  assert library.tasks(cfg.library) == sorted(names)
  entry = library.load(cfg.library, names[0])["entry"]
  # Library fine-tuning is the sweep's source run: shared, not redone.
  src = recipe.source_run_dir(work, names[0])
  assert entry["taskemb"]["finetune"] == "full" and os.path.isdir(src)
  mtime = os.path.getmtime(os.path.join(src, "metrics.json"))
  embed.build_library_stage(cfg, work)  # Resumable: nothing to do.

  matrix = transfer.transfer_stage(cfg, work)
  assert os.path.getmtime(os.path.join(src, "metrics.json")) == mtime
  assert matrix["complete"]

  cfg.evaluate.methods = ("textemb,taskemb,taskemb:*,textemb+taskemb,datasize,"
                          "random,logme")
  cfg.evaluate.random_draws = 50
  evals = evaluation.evaluate_stage(cfg, work)
  means = evals[0]["mean"]["all"]
  assert set(means) == {"textemb", "taskemb", "textemb+taskemb", "datasize",
                        "random", "logme"} | {f"taskemb:{c}" for c in
                                     ("embeddings", "layer_0/attention",
                                      "layer_0/output", "layer_1/attention",
                                      "layer_1/output")}
  for m in means.values():
    assert 1 <= m["rho"] <= 2 and 0 < m["ndcg"] <= 1
  logme = json.load(open(os.path.join(work, "logme_scores.json")))
  assert all(np.isfinite(v) for t in logme["scores"].values()
             for v in t.values())
  assert sum(len(t) for t in logme["scores"].values()) == 3 * 2
  md = open(os.path.join(work, "evaluation.md")).read()
  assert md.startswith("| method |")

  # The targets embedded anew with a faster recipe (the rank stage's for a
  # new task): fine-tuned on 16 examples in bfloat16, embedded on 12 in the
  # library's float32, without TextEmb.
  fast = cfg.copy_and_resolve_references()
  fast.evaluate.methods = "textemb,taskemb"
  fast.evaluate.matrices = work
  fast.evaluate.reembed_targets = True
  fast.rank.finetune.train_examples = 16
  fast.rank.embed_examples = 12
  fast.rank.textemb = False
  fast.rank.finetune.dtype = "bfloat16"
  fast_dir = str(tmp_path / "fast")
  fast_means = evaluation.evaluate_stage(fast, fast_dir)[0]["mean"]["all"]
  assert set(fast_means) == {"taskemb"}  # No target has a TextEmb now.
  seconds = json.load(open(os.path.join(fast_dir, "targets", "seconds.json")))
  assert sorted(seconds) == sorted(names)
  for name in names:
    anew = library.load(os.path.join(
        fast_dir, "targets", files.safe_name(name), "target_library"), name)
    assert anew["textemb"] is None and anew["entry"]["num_examples"] == 12
    opts = anew["entry"]["taskemb"]
    assert (opts["dtype"], opts["finetune_dtype"]) == ("float32", "bfloat16")
    run = os.path.join(fast_dir, "targets", files.safe_name(name), "target",
                       "finetune")
    assert json.load(open(os.path.join(run, "task.json")))["dtype"] == \
        "bfloat16"
    mine = library.load(cfg.library, name)["taskemb"]["layer_0/output"]
    assert not np.allclose(anew["taskemb"]["layer_0/output"], mine, rtol=1e-3,
                           atol=0)
  # Evaluated again: the finished bfloat16 runs are reused, not retrained.
  stamp = os.path.getmtime(os.path.join(run, "metrics.json"))
  assert evaluation.evaluate_stage(fast, fast_dir)[0]["mean"]["all"] == \
      fast_means
  assert os.path.getmtime(os.path.join(run, "metrics.json")) == stamp

  cfg.report.matrix = work
  cfg.report.evaluation_md = os.path.join(work, "evaluation.md")
  path = report.report_stage(cfg, str(tmp_path / "report"))
  text = open(path).read()
  assert "![transfer gains](transfer_gain.png)" in text
  for fig in ("task_space.png", "transfer_gain.png"):
    assert os.path.getsize(tmp_path / "report" / fig) > 10_000

  # The main command on a task that is not in the library (a QA task).
  cfg.task = f"qa:{data['qa']}"
  cfg.rank.method = "textemb+taskemb"
  demo_dir = str(tmp_path / "demo")
  demo.demo_stage(cfg, demo_dir)
  ranking = json.load(open(os.path.join(demo_dir, "ranking.json")))
  assert sorted(s["name"] for s in ranking["sources"]) == sorted(names)
  assert [s["rank"] for s in ranking["sources"]] == [1, 2, 3]
  target = library.load(os.path.join(demo_dir, "target_library"), cfg.task)
  # Embedded with the library's options; QA has no pooler component.
  assert target["entry"]["taskemb"]["estimator"] == entry["taskemb"][
      "estimator"]
  assert "pooler" not in target["taskemb"]
  assert np.isfinite(target["textemb"]).all()
  assert os.path.getsize(os.path.join(demo_dir, "task_space.png")) > 10_000
