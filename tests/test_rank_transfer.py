"""Rank, transfer and evaluate stages: hand-worked cases and the tiny model."""

import glob
import json
import os

import numpy as np
import pytest

import synthetic
from configs import tiny
from taskemb_jax import evaluation, library, rank, recipe, transfer
from taskemb_jax import train as train_lib
from taskemb_jax.errors import ConfigError, LibraryError

BASE = {"model": "m", "tokenizer": "t"}
OPTS = {"estimator": "empirical", "finetune": "full", "max_length": 64,
        "num_samples": 1, "sigma": 0.25, "dtype": "float32",
        "num_examples": 10, "components": []}


def add(lib, name, family, text, l0, l1, n=10):
  library.add(lib, {"name": name, "kind": family, "family": family,
                    "metric": "accuracy", "size": n, "num_examples": n,
                    "base": BASE},
              textemb=np.array(text, np.float32),
              textemb_options={"max_length": 64},
              taskemb={"layer_0/output": np.array(l0, np.float32),
                       "layer_1/output": np.array(l1, np.float32)},
              taskemb_options=OPTS)


@pytest.fixture
def lib(tmp_path):
  path = str(tmp_path / "lib")
  add(path, "T", "classification", [1, 0, 0], [1, 0], [1, 1])
  add(path, "B", "classification", [1, 0.1, 0], [0, 1], [1, 1], n=300)
  add(path, "C", "classification", [0, 1, 0], [1, 0.1], [1, 0], n=100)
  add(path, "D", "classification", [1, 1, 0], [1, 1], [0, 1], n=200)
  add(path, "E", "tagging", [1, 0, 0.01], [1, 0.01], [1, 1], n=50)
  return path


def loaded(path, names):
  return {n: library.load(path, n) for n in names}


def test_method_scores_by_hand(lib):
  src = loaded(lib, "BCD")
  t = library.load(lib, "T")
  text = rank.method_scores("textemb", t, src)
  assert text["B"] == pytest.approx(1 / np.sqrt(1.01))
  assert text["C"] == pytest.approx(0.0)
  assert text["D"] == pytest.approx(1 / np.sqrt(2))
  # Per component: layer_0 ranks C, D, B; layer_1 ranks B, then C and D tied
  # (broken by name). RRF (k=60): C = 1/61 + 1/62, B = 1/63 + 1/61,
  # D = 1/62 + 1/63.
  fused = rank.method_scores("taskemb", t, src)
  assert fused["C"] == pytest.approx(1 / 61 + 1 / 62)
  assert fused["B"] == pytest.approx(1 / 63 + 1 / 61)
  assert fused["D"] == pytest.approx(1 / 62 + 1 / 63)
  both = rank.method_scores("textemb+taskemb", t, src)
  # textemb order B, D, C; taskemb order C, B, D.
  assert both["B"] == pytest.approx(1 / 61 + 1 / 62)
  assert rank.method_scores("datasize", t, src) == {"B": 300, "C": 100,
                                                    "D": 200}
  r1 = rank.method_scores("random", t, src, seed=1)
  assert r1 == rank.method_scores("random", t, src, seed=1)
  assert r1 != rank.method_scores("random", t, src, seed=2)
  with pytest.raises(ConfigError, match="unknown ranking method"):
    rank.method_scores("nope", t, src)


def test_incompatible_embeddings_are_refused(lib):
  library.add(lib, {"name": "X", "kind": "classification",
                    "family": "classification", "metric": "accuracy",
                    "size": 1, "num_examples": 1,
                    "base": {"model": "other", "tokenizer": "t"}},
              textemb=np.ones(3, np.float32), textemb_options={})
  with pytest.raises(LibraryError, match="different base models"):
    rank.method_scores("textemb", library.load(lib, "T"),
                       loaded(lib, ["B", "X"]))


MATRIX = {"regime": "LIMITED->LIMITED", "sources": list("TBCDE"),
          "targets": ["T"], "restarts": 2, "metric": {"T": "accuracy"},
          "baseline": {"T": {"mean": 0.75, "std": 0.0, "runs": [0.75, 0.75]}},
          "pairs": {"T": {
              "B": {"mean": 0.80, "runs": [0.80, 0.80], "gain": 0.05 / 0.75},
              "C": {"mean": 0.85, "runs": [0.86, 0.84], "gain": 0.1 / 0.75},
              "D": {"mean": 0.70, "runs": [0.71, 0.69], "gain": -0.05 / 0.75},
              "E": {"mean": 0.60, "runs": [0.60, 0.60], "gain": -0.15 / 0.75},
          }}}


def test_evaluate_matrix_by_hand(lib):
  res = evaluation.evaluate_matrix(MATRIX, lib, ["textemb", "taskemb",
                                                 "random"], random_draws=200)
  ic = res["per_target"]["T"]["in-class"]
  # TextEmb puts B, D, C: the best (C) third.
  assert ic["textemb"]["rho"] == 3
  assert ic["textemb"]["regret@1"] == pytest.approx(0.05 / 0.85)
  assert ic["textemb"]["regret@3"] == 0.0
  dcg = 0.80 + 0.70 / np.log2(3) + 0.85 / 2
  ideal = 0.85 + 0.80 / np.log2(3) + 0.70 / 2
  assert ic["textemb"]["ndcg"] == pytest.approx(dcg / ideal)
  assert ic["taskemb"]["rho"] == 1  # C, B, D.
  assert ic["taskemb"]["regret@1"] == 0.0
  # All-class adds E (tagging), last in truth but closest in TaskEmb:
  # layer_0 ranks E, C, D, B; layer_1 ranks B, E (tied, by name), C, D.
  # RRF: E = 1/61 + 1/62, B = 1/64 + 1/61, C = 1/62 + 1/63: E, B, C, D.
  assert res["per_target"]["T"]["all"]["taskemb"]["rho"] == 3
  # Random: the best of 3 is on average at position 2.
  assert ic["random"]["rho"] == pytest.approx(2.0, abs=0.15)
  # Restarts agree on the best source here, so rho does not spread.
  assert res["restart_std"]["in-class"]["textemb"]["rho"] == 0.0
  md = evaluation.markdown([res], ["textemb", "taskemb"])
  assert "| textemb | 3.00 ± 0.00 |" in md
  # Regret and Spearman carry their spread over restarts too.
  sd = res["restart_std"]["in-class"]["textemb"]
  assert (f"| textemb | LIMITED->LIMITED | in-class | "
          f"{100 * 0.05 / 0.85:.1f}% ± {100 * sd['regret@1']:.1f} | "
          f"0.0% ± {100 * sd['regret@3']:.1f} |") in md


def _cell(x):
  return {"mean": x, "runs": [x], "gain": x - 0.5}


# Targets of two classes: T and B (classification), E (tagging).
MATRIX3 = {"regime": "LIMITED->LIMITED", "sources": list("TBCDE"),
           "targets": ["T", "B", "E"], "restarts": 1,
           "metric": {t: "accuracy" for t in "TBE"},
           "baseline": {t: {"mean": 0.5, "std": 0.0, "runs": [0.5]}
                        for t in "TBE"},
           "pairs": {
               "T": {"B": _cell(0.80), "C": _cell(0.85), "D": _cell(0.70),
                     "E": _cell(0.60)},
               "B": {"T": _cell(0.60), "C": _cell(0.90), "D": _cell(0.75),
                     "E": _cell(0.65)},
               "E": {"T": _cell(0.85), "B": _cell(0.55), "C": _cell(0.60),
                     "D": _cell(0.50)}}}


def test_evaluation_by_class_of_target(lib):
  """Per class of target: the means of that class's targets' scores."""
  res = evaluation.evaluate_matrix(MATRIX3, lib, ["textemb", "taskemb"])
  per = res["per_target"]
  by = res["by_class"]
  assert sorted(by) == ["classification", "tagging"]
  # E has no other tagging source: no in-class ranking for it.
  assert sorted(by["tagging"]) == ["all"]
  for family, targets in (("classification", "TB"), ("tagging", "E")):
    for scope, methods in by[family].items():
      for m, r in methods.items():
        rows = [per[t][scope][m] for t in targets if scope in per[t]]
        assert r["targets"] == len(rows)
        for k in ("rho", "ndcg", "regret@1"):
          assert r[k] == pytest.approx(np.mean([row[k] for row in rows]))
  # TextEmb puts the best source last for T and B, first for E (T: E's
  # nearest by text).
  assert by["classification"]["all"]["textemb"]["rho"] == 4
  assert by["tagging"]["all"]["textemb"]["rho"] == 1
  assert res["mean"]["all"]["textemb"]["rho"] == 3
  md = evaluation.markdown([res], ["textemb", "taskemb"])
  assert "By class of target (LIMITED->LIMITED; targets per class: " \
      "classification 2, tagging 1)" in md
  row = next(l for l in md.splitlines()[md.splitlines().index(
      next(l for l in md.splitlines() if l.startswith("By class"))):]
      if l.startswith("| textemb |"))
  c = by["classification"]
  assert row.startswith(
      f"| textemb | {c['in-class']['textemb']['rho']:.2f} | "
      f"{100 * c['in-class']['textemb']['ndcg']:.1f} | "
      f"{c['all']['textemb']['rho']:.2f} |")


def test_a_target_whose_sources_all_tie_is_left_out(lib):
  """B's in-class sources (T, C, D) all measured 0.6 (its runs all predicted
  the same): every ranking would score perfectly there, so B is left out of
  that scope and the means are T's alone; all-class, E differs and B stays."""
  tied = json.loads(json.dumps(MATRIX3))
  for s in "TCD":
    tied["pairs"]["B"][s] = _cell(0.6)
  methods = ["textemb", "taskemb", "random"]
  res = evaluation.evaluate_matrix(tied, lib, methods, random_draws=50)
  assert res["uninformative"] == {"in-class": ["B"]}
  assert "in-class" not in res["per_target"]["B"]
  assert "all" in res["per_target"]["B"]
  alone = evaluation.evaluate_matrix(
      dict(tied, targets=["T", "E"]), lib, methods, random_draws=50)
  for m in methods:
    assert res["mean"]["in-class"][m] == alone["mean"]["in-class"][m]
    assert res["by_class"]["classification"]["in-class"][m]["targets"] == 1
  # Without the rule, B would have added a perfect score to every method.
  assert res["num_targets"] == {"all": 3, "in-class": 1}
  md = evaluation.markdown([res], methods)
  assert ("Left out (LIMITED->LIMITED, in-class): B, whose sources all "
          "measured the same") in md
  assert evaluation.evaluate_matrix(MATRIX3, lib, methods,
                                    random_draws=5)["uninformative"] == {}


def test_targets_embedded_anew_replace_the_librarys(lib):
  """A target embedded with another recipe is ranked with its own vectors;
  methods it lacks the embedding for are skipped for it."""
  t = library.load(lib, "T")
  # layer_0 ranks B (cosine 1), D, C; layer_1 ranks C (1), B, D. RRF:
  # B = 1/61 + 1/62 > C = 1/61 + 1/63 > D = 1/62 + 1/63.
  anew = {"entry": t["entry"], "textemb": None,
          "taskemb": {"layer_0/output": np.array([0, 1], np.float32),
                      "layer_1/output": np.array([1, 0], np.float32)}}
  res = evaluation.evaluate_matrix(MATRIX, lib, ["textemb", "taskemb"],
                                   targets={"T": anew})
  ic = res["per_target"]["T"]["in-class"]
  # B is second best in truth (C 0.85, B 0.80): rho 2 instead of 1.
  assert ic["taskemb"]["rho"] == 2
  assert ic["taskemb"]["regret@1"] == pytest.approx(0.05 / 0.85)
  assert "textemb" not in ic
  # The library's own T is untouched.
  base = evaluation.evaluate_matrix(MATRIX, lib, ["taskemb"])
  assert base["per_target"]["T"]["in-class"]["taskemb"]["rho"] == 1


def test_target_embedded_anew_stays_the_librarys_as_a_source(lib):
  """Re-embedding target T (another recipe, fewer examples) changes only
  T's own ranking: as a source of target B it keeps the library's vectors
  and size."""
  t = library.load(lib, "T")
  anew = {"entry": dict(t["entry"], num_examples=1, size=1),
          "textemb": np.array([0, 0, 1], np.float32),
          "taskemb": {"layer_0/output": np.array([0, 1], np.float32),
                      "layer_1/output": np.array([0, 1], np.float32)}}
  two = dict(MATRIX, targets=["T", "B"], pairs={
      **MATRIX["pairs"], "B": {
          "T": {"mean": 0.9, "runs": [0.9, 0.9]},
          "C": {"mean": 0.8, "runs": [0.8, 0.8]},
          "D": {"mean": 0.7, "runs": [0.7, 0.7]}}},
      baseline={**MATRIX["baseline"],
                "B": {"mean": 0.7, "std": 0.0, "runs": [0.7, 0.7]}})
  methods = ["textemb", "taskemb", "datasize"]
  base = evaluation.evaluate_matrix(two, lib, methods)
  res = evaluation.evaluate_matrix(two, lib, methods, targets={"T": anew})
  assert res["per_target"]["B"] == base["per_target"]["B"]
  # By hand, target B's sources T (size 10), C (100), D (200): DataSize
  # puts the truly best T last (the anew record's size 1 would also).
  assert base["per_target"]["B"]["in-class"]["datasize"]["rho"] == 3
  # TextEmb of B [1, .1, 0]: T (cosine .995) first with the library's T;
  # the anew T ([0, 0, 1], cosine 0) would be last.
  assert res["per_target"]["B"]["in-class"]["textemb"]["rho"] == 1
  assert res["per_target"]["T"] != base["per_target"]["T"]


def test_evaluate_with_gain_relevance(lib):
  res = evaluation.evaluate_matrix(MATRIX, lib, ["textemb"],
                                   relevance="gain")
  ic = res["per_target"]["T"]["in-class"]["textemb"]
  g = {"B": 0.05 / 0.75, "C": 0.1 / 0.75, "D": 0.0}  # D clipped at 0.
  dcg = g["B"] + g["D"] / np.log2(3) + g["C"] / 2
  ideal = g["C"] + g["B"] / np.log2(3)
  assert ic["ndcg"] == pytest.approx(dcg / ideal)


def test_precomputed_methods_rank_by_their_scores(lib):
  """description (and logme) rank by scores computed elsewhere; a target
  without them is skipped, not failed."""
  pre = {"description": {"T": {"B": 0.2, "C": 0.9, "D": 0.5, "E": 0.1}}}
  t, src = library.load(lib, "T"), loaded(lib, "BCD")
  assert rank.method_scores("description", t, src,
                            precomputed=pre["description"]["T"]) == {
                                "B": 0.2, "C": 0.9, "D": 0.5}
  with pytest.raises(ConfigError, match="needs precomputed scores"):
    rank.method_scores("description", t, src)
  res = evaluation.evaluate_matrix(MATRIX, lib, ["description", "logme"],
                                   precomputed=pre)
  ic = res["per_target"]["T"]["in-class"]
  assert ic["description"]["rho"] == 1  # C first: the best.
  assert ic["description"]["regret@1"] == 0.0
  assert "logme" not in ic  # No LogME scores given: skipped.


def test_description_method_of_the_evaluate_stage(lib, tmp_path):
  """The stage scores descriptions with the base model's sentence vectors:
  identical descriptions score 1, so their task ranks first."""
  from taskemb_jax import description  # pylint: disable=import-outside-toplevel
  for name, text in (("T", "spam filter for e-mails"),
                     ("B", "spam filter for e-mails"),
                     ("C", "parts of speech of words"),
                     ("D", "questions about a passage")):
    entry = library.load(lib, name)["entry"]
    library.add(lib, dict(entry, description=text),
                textemb=library.load(lib, name)["textemb"],
                textemb_options={"max_length": 64}, overwrite=True)
  cfg = tiny.get_config()
  loaded_all, _ = library.load_all(lib)
  scores = evaluation.description_scores(cfg, MATRIX, loaded_all)["T"]
  assert scores["B"] == pytest.approx(1.0, abs=1e-5)
  assert max(scores, key=scores.get) == "B"
  enc = description.load_encoder(cfg.model)
  assert scores["C"] == pytest.approx(description.description_scores(
      "spam filter for e-mails", {"C": "parts of speech of words"},
      enc)["C"], abs=1e-6)


def test_rank_stage_writes_ranking(lib, tmp_path):
  cfg = tiny.get_config()
  cfg.library = lib
  cfg.task = "T"
  cfg.rank.method = "taskemb"
  out = rank.rank_stage(cfg, str(tmp_path / "rank"))
  assert [s["name"] for s in out["sources"]] == ["E", "B", "C", "D"]
  saved = json.load(open(tmp_path / "rank" / "ranking.json"))
  assert saved["target"] == "T" and saved["sources"][0]["rank"] == 1
  cfg.rank.scope = "in-class"
  out = rank.rank_stage(cfg, str(tmp_path / "rank2"))
  assert [s["name"] for s in out["sources"]] == ["C", "B", "D"]


def _tiny_sweep_config(data, tmp_path):
  cfg = tiny.get_config()
  cfg.transfer.sources = ",".join(f"{k}:{data[k]}" for k in
                                  ("classification", "tagging"))
  cfg.transfer.restarts = 2
  cfg.transfer.source_examples = 64
  cfg.transfer.target_examples = 32
  cfg.transfer.eval_split = "validation"
  cfg.transfer.all.num_epochs = 1
  cfg.transfer.all.max_length = 64
  cfg.transfer.all.batch_size = 16
  return cfg


def test_transfer_sweep_resumes_without_redoing_runs(tmp_path, monkeypatch):
  data = {k: synthetic.write_task(str(tmp_path / k), k, n_train=64, n_val=32)
          for k in ("classification", "tagging")}
  cfg = _tiny_sweep_config(data, tmp_path)
  runs = transfer.plan(cfg)
  assert len(runs) == 2 * 2 * 2  # restarts x targets x (baseline + 1 source)
  calls = []
  real = train_lib.train_and_evaluate
  kill = {"at": 4}

  def counting(c, workdir):
    calls.append(workdir)
    if len(calls) == kill["at"]:
      raise KeyboardInterrupt
    return real(c, workdir)

  monkeypatch.setattr(train_lib, "train_and_evaluate", counting)
  with pytest.raises(KeyboardInterrupt):
    transfer.transfer_stage(cfg, str(tmp_path / "sweep"))
  done_before = len(calls) - 1
  calls.clear()
  kill["at"] = None
  matrix = transfer.transfer_stage(cfg, str(tmp_path / "sweep"))
  # 2 sources + 8 target runs in all; finished ones were not redone.
  assert done_before + len(calls) == 10
  assert matrix["complete"]
  cls = f"classification:{data['classification']}"
  tag = f"tagging:{data['tagging']}"
  cell = matrix["pairs"][cls][tag]
  base = matrix["baseline"][cls]
  assert len(cell["runs"]) == 2
  assert cell["gain"] == pytest.approx((cell["mean"] - base["mean"]) /
                                       abs(base["mean"]))
  # Target runs keep only their result; sources keep their best model.
  run = tmp_path / "sweep" / "runs"
  assert not list(run.glob("*/*/seed0/best"))
  assert list((tmp_path / "sweep" / "sources").glob("*/best"))
  csv_rows = open(tmp_path / "sweep" / "transfer_matrix.csv").read()
  assert csv_rows.count("\n") == 1 + 2 * 2


def _two_files_config(tmp_path):
  """Two classification tasks in files whose names sanitise alike."""
  d = tmp_path / "d"
  (d / "a").mkdir(parents=True)
  names = []
  for seed, path in enumerate((d / "a_b.jsonl", d / "a" / "b.jsonl")):
    with open(path, "w") as f:
      for r in synthetic.make_records("classification", 160, seed):
        f.write(json.dumps(r) + "\n")
    names.append(f"classification:{path}")
  cfg = tiny.get_config()
  cfg.transfer.sources = ",".join(names)
  cfg.transfer.restarts = 1
  cfg.transfer.source_examples = 32
  cfg.transfer.target_examples = 32
  cfg.transfer.eval_split = "validation"
  cfg.transfer.all.num_epochs = 1
  cfg.transfer.all.batch_size = 16
  return cfg, names


def test_runs_of_similar_names_stay_apart_and_stale_runs_are_refused(
    tmp_path, monkeypatch):
  cfg, names = _two_files_config(tmp_path)
  work = str(tmp_path / "sweep")
  calls = []
  real = train_lib.train_and_evaluate
  monkeypatch.setattr(train_lib, "train_and_evaluate",
                      lambda c, d: calls.append(d) or real(c, d))
  matrix = transfer.transfer_stage(cfg, work)
  # 2 sources and 4 target runs, each in a folder of its own.
  assert len(calls) == 6 and len(set(calls)) == 6
  assert len(glob.glob(os.path.join(work, "sources", "*"))) == 2
  for target, source, r in transfer.plan(cfg):
    res = json.load(open(os.path.join(
        transfer.target_run_dir(work, target, source, r), "result.json")))
    assert res["task"] == target and res["seconds"] > 0
    if source == transfer.BASELINE:
      assert res["init_from"] == ""
      assert matrix["baseline"][target]["runs"] == [res["score"]]
    else:
      assert os.path.join(work, res["init_from"]) == recipe.source_run_dir(
          work, source)
      assert matrix["pairs"][target][source]["runs"] == [res["score"]]
  # A finished run of other settings is refused, in one line.
  calls.clear()
  cfg.transfer.target.learning_rate = 5e-3
  with pytest.raises(ConfigError) as e:
    transfer.transfer_stage(cfg, work)
  msg = str(e.value)
  first = transfer.target_run_dir(work, *transfer.plan(cfg)[0])
  assert msg.startswith(first + ": holds a run of other settings")
  assert "learning_rate: 2e-05 there, 0.005 here" in msg  # Class default.
  assert "--config.overwrite=true" in msg and "\n" not in msg
  cfg.transfer.target.learning_rate = None
  cfg.transfer.max_eval_examples = 8  # The sweep's scoring changed.
  with pytest.raises(ConfigError, match="transfer.max_eval_examples: 0 "
                     "there, 8 here"):
    transfer.merge(cfg, work)
  cfg.transfer.max_eval_examples = 0
  cfg.transfer.source_examples = 16  # The target runs' sources changed.
  with pytest.raises(ConfigError, match="source.train_examples: 32 there, "
                     "16 here"):
    transfer.merge(cfg, work)
  cfg.transfer.source_examples = 32
  cfg.transfer.max_eval_examples = 8
  assert not calls
  # With overwrite the stale target runs are redone; sources are kept.
  cfg.overwrite = True
  matrix = transfer.transfer_stage(cfg, work)
  assert len(calls) == 4 and matrix["complete"]
  assert not any("/sources/" in c for c in calls)
  for target, source, r in transfer.plan(cfg):
    res = json.load(open(os.path.join(
        transfer.target_run_dir(work, target, source, r), "result.json")))
    assert res["settings"]["transfer.max_eval_examples"] == 8


def test_transfer_config_errors(tmp_path):
  cfg = tiny.get_config()
  with pytest.raises(ConfigError, match="sources is empty"):
    transfer.plan(cfg)
  cfg.transfer.sources = "mr-polarity"
  cfg.transfer.shard = "3/2"
  with pytest.raises(ConfigError, match="shard"):
    transfer.transfer_stage(cfg, str(tmp_path))
  cfg.transfer.shard = "0/1"
  cfg.transfer.all.no_such = 1
  with pytest.raises(ConfigError, match="transfer.all.no_such is not a "
                     "training field"):
    recipe.run_config(cfg, "mr-polarity", examples=10, seed=0)


def test_shards_partition_the_runs():
  cfg = tiny.get_config()
  cfg.transfer.sources = "mr-polarity,hedge,wsj-pos"
  runs = transfer.plan(cfg)
  parts = []
  for i in range(3):
    parts += [r for k, r in enumerate(runs) if k % 3 == i]
  assert sorted(parts) == sorted(runs) and len(set(runs)) == len(runs)


def test_logme_features_of_every_kind():
  """One feature per example / labelled word / context token, with labels."""
  from flax import nnx  # pylint: disable=import-outside-toplevel
  from taskemb_jax import data, encoders, heads, input_pipeline, logme
  from taskemb_jax import sharding
  from taskemb_jax.model import PRESETS
  cfg = tiny.get_config()
  tok = input_pipeline.load_tokenizer(
      encoders.spec_from_config(cfg).tokenizer_dir)
  mesh = sharding.make_mesh()
  for kind in ("classification", "regression", "qa", "tagging"):
    records = synthetic.make_records(kind, 6)
    labels = (input_pipeline.label_vocabulary(kind, records)
              if kind in ("classification", "tagging") else None)
    feats = input_pipeline.encode(
        kind, records, tok, max_length=64, doc_stride=16, max_query_length=16,
        label_to_id={l: i for i, l in enumerate(labels)} if labels else None)
    split = data.Split(records, feats)
    model = heads.TaskModel(PRESETS["tiny"], kind, len(labels or ()),
                            rngs=nnx.Rngs(0))
    f, t = logme.features(model, split, kind, mesh,
                          batch_size=cfg.eval_batch_size,
                          max_length=cfg.max_length)
    assert f.shape[1] == 32 and len(f) == len(t)
    if kind in ("classification", "regression"):
      assert len(f) == 6
    elif kind == "tagging":
      assert len(f) == sum(len(r["tokens"]) for r in records)
      assert set(t) == {0, 1}
    else:  # Context tokens; the answer (one word each) is labelled 1.
      assert t.sum() >= 6 and len(t) > 6 * 6
