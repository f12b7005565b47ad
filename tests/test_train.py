"""End-to-end training on the tiny model: learning, resume, devices, export,
prediction and the errors users see."""

import json
import os
import subprocess
import sys

import jax
import numpy as np
import pytest
from flax import nnx

import synthetic
from configs import tiny
from taskemb_jax import checkpoint, encoders, heads, predict, pretrained, train
from taskemb_jax.errors import DataError, UserError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def tiny_config(task: str, **overrides):
  c = tiny.get_config()
  c.task = task
  c.update(overrides)
  return c


@pytest.fixture(scope="module")
def data(tmp_path_factory):
  root = tmp_path_factory.mktemp("syn")
  return {k: synthetic.write_task(str(root / k), k) for k in
          ("classification", "regression", "qa", "tagging")}


@pytest.fixture(scope="module")
def trained_cls(data, tmp_path_factory):
  workdir = str(tmp_path_factory.mktemp("cls"))
  summary = train.train_and_evaluate(
      tiny_config(f"classification:{data['classification']}"), workdir)
  return workdir, summary


# Far above chance (0.5 / 0 / ~10 / ~0) for each synthetic task.
THRESHOLDS = {"classification": ("accuracy", 0.9),
              "regression": ("pearson", 0.6), "qa": ("f1", 80.0),
              "tagging": ("span_f1", 0.9)}


@pytest.mark.parametrize("kind", ["regression", "qa", "tagging"])
def test_learns_each_kind(kind, data, tmp_path):
  metric, threshold = THRESHOLDS[kind]
  summary = train.train_and_evaluate(
      tiny_config(f"{kind}:{data[kind]}"), str(tmp_path))
  assert summary["best"][metric] >= threshold, summary["best"]
  on_disk = json.load(open(tmp_path / "metrics.json"))
  assert len(on_disk["history"]) == 6


def test_learns_classification(trained_cls):
  _, summary = trained_cls
  assert summary["best"]["accuracy"] >= 0.9, summary["best"]
  assert summary["history"][0]["train_loss"] > summary["history"][-1][
      "train_loss"]


def _params(workdir):
  tree, _ = checkpoint.restore(workdir, checkpoint.BEST)
  return tree


def test_resume_after_kill_reaches_the_same_result(data, tmp_path, monkeypatch):
  task = f"tagging:{data['tagging']}"
  cfg = tiny_config(task, num_epochs=2, checkpoint_every_steps=5)
  full = train.train_and_evaluate(cfg, str(tmp_path / "full"))

  calls = {"n": 0}
  real_update = train.progress.Progress.update

  def dying_update(self, n, **kw):
    if self.name == "train":
      calls["n"] += 1
      if calls["n"] == 22:  # Killed mid-epoch 2 (16 steps per epoch).
        raise KeyboardInterrupt
    return real_update(self, n, **kw)

  monkeypatch.setattr(train.progress.Progress, "update", dying_update)
  with pytest.raises(KeyboardInterrupt):
    train.train_and_evaluate(cfg, str(tmp_path / "killed"))
  monkeypatch.setattr(train.progress.Progress, "update", real_update)
  assert checkpoint.latest_step(str(tmp_path / "killed")) == 20
  resumed = train.train_and_evaluate(cfg, str(tmp_path / "killed"))
  assert resumed["history"] == full["history"]
  a, b = _params(str(tmp_path / "full")), _params(str(tmp_path / "killed"))
  jax.tree.map(np.testing.assert_array_equal, a, b)


_DEVICE_SCRIPT = r"""
import sys, numpy as np, jax
sys.path[:0] = [{root!r}, {tests!r}]
from flax import nnx
import synthetic
from configs import tiny
from taskemb_jax import encoders, heads, input_pipeline, sharding, train
from taskemb_jax import optimizer as optimizer_lib
c = tiny.get_config(); c.batch_size = 16
records = synthetic.make_records("tagging", 16)
tok = input_pipeline.load_tokenizer(encoders.spec_from_config(c).tokenizer_dir)
labels = ("B-ANIMAL", "O")
feats = input_pipeline.encode("tagging", records, tok, max_length=64,
                              label_to_id={{"B-ANIMAL": 0, "O": 1}})
batch = next(input_pipeline.batches(feats, 16, buckets=(32, 64), shuffle=False))
model = heads.TaskModel(encoders.spec_from_config(c).config.replace(
    hidden_dropout_prob=0.1), "tagging", 2, rngs=nnx.Rngs(0))
opt = nnx.Optimizer(model, optimizer_lib.create_optimizer(
    **optimizer_lib.optimizer_settings(c)), wrt=nnx.Param)
mesh = sharding.make_mesh()
schedule = sharding.put_replicated(optimizer_lib.schedule_args(
    10, c.learning_rate, c.warmup_proportion), mesh)
steps = train.Steps(model, "tagging", mesh, opt)
state = sharding.put_replicated(nnx.state((model, opt)), mesh)
for i in range(3):
  state, m = steps.train(state, sharding.put_batch(batch, mesh),
                         jax.random.key(i), schedule)
leaves = [np.asarray(x) for x in jax.tree.leaves(state[0])]
np.savez({out!r}, loss=np.asarray(m["loss_sum"]), n=len(jax.devices()),
         *leaves)
"""


def test_eight_devices_give_the_same_steps_as_one(tmp_path):
  """Three train steps (with dropout) on 1 and on 8 fake CPU devices."""
  results = []
  for n in (1, 8):
    out = str(tmp_path / f"d{n}.npz")
    env = dict(os.environ,
               XLA_FLAGS=f"--xla_force_host_platform_device_count={n}")
    script = _DEVICE_SCRIPT.format(root=ROOT, tests=os.path.join(ROOT, "tests"),
                                   out=out)
    subprocess.run([sys.executable, "-c", script], env=env, check=True,
                   capture_output=True, cwd=ROOT)
    results.append(np.load(out))
  one, eight = results
  assert int(one["n"]) == 1 and int(eight["n"]) == 8
  np.testing.assert_allclose(one["loss"], eight["loss"], rtol=1e-5)
  names = [k for k in one.files if k.startswith("arr_")]
  assert len(names) > 20
  for k in names:
    np.testing.assert_allclose(one[k], eight[k], rtol=1e-4, atol=1e-6,
                               err_msg=k)


def test_export_then_our_loader_gives_the_same_logits(trained_cls, tmp_path):
  workdir, _ = trained_cls
  cfg = tiny_config("", export_dir=str(tmp_path / "hf"))
  out = predict.export_stage(cfg, workdir)
  model, info, _ = encoders.load_finetuned(workdir)
  hf_cfg = json.load(open(os.path.join(out, "config.json")))
  assert hf_cfg["architectures"] == ["BertForSequenceClassification"]
  assert hf_cfg["id2label"] == {"0": "negative", "1": "positive"}
  again = heads.TaskModel(pretrained.read_config(out), "classification", 2,
                          rngs=nnx.Rngs(5))
  assert pretrained.load_encoder(again, out, with_head=True) == []
  ids = np.array([[101, 6581, 102, 0]], np.int32)
  batch = {"input_ids": ids, "token_type_ids": ids * 0,
           "attention_mask": (ids > 0).astype(np.int32)}
  np.testing.assert_array_equal(np.asarray(again(batch)),
                                np.asarray(model(batch)))


def test_predict_writes_one_row_per_record(trained_cls, data, tmp_path):
  workdir, _ = trained_cls
  path = tmp_path / "input.jsonl"
  records = synthetic.make_records("classification", 10, seed=7)
  path.write_text("".join(json.dumps({"text": r["text"]}) + "\n"
                          for r in records))
  cfg = tiny_config("", predict_file=str(path),
                    predict_output=str(tmp_path / "pred.jsonl"))
  out = predict.predict_stage(cfg, workdir)
  rows = [json.loads(l) for l in open(out)]
  assert len(rows) == 10
  for r, row in zip(records, rows):
    assert row["label"] == r["label"]  # The model learnt the cue words.
    assert abs(sum(row["probabilities"]) - 1) < 1e-5
    assert len(row["logits"]) == 2


def test_predict_tagging_and_qa_outputs(data, tmp_path):
  for kind in ("tagging", "qa"):
    workdir = str(tmp_path / kind)
    train.train_and_evaluate(tiny_config(f"{kind}:{data[kind]}", num_epochs=1),
                             workdir)
    ext = "conll" if kind == "tagging" else "jsonl"
    cfg = tiny_config("", predict_file=os.path.join(data[kind],
                                                    f"validation.{ext}"))
    rows = [json.loads(l) for l in open(predict.predict_stage(cfg, workdir))]
    assert len(rows) == 64
    if kind == "tagging":
      assert all(len(r["tags"]) == len(r["tokens"]) == len(r["logits"])
                 for r in rows)
    else:
      assert all({"id", "answer", "score", "null_score"} <= set(r)
                 for r in rows)


# --- Bad input: one clear error --------------------------------------------


def _write(path, lines):
  path.write_text("".join(l + "\n" for l in lines))
  return str(path)


@pytest.mark.parametrize("kind,train_lines,val_lines,expected", [
    ("classification", ['{"text": "a", "label": "x"}', '{"text": "b", '],
     ['{"text": "c", "label": "x"}'], r"train.jsonl:2: not valid JSON"),
    ("classification", ['{"text": "a", "label": "x"}',
                        '{"text": "b", "label": "z"}'],
     ['{"text": "c", "label": "y"}'], r"unknown label 'y'"),
    ("regression", ['{"text": "a", "label": "high"}'],
     ['{"text": "c", "label": 1}'], r"train.jsonl:1: regression label 'high'"),
    ("classification", [], ['{"text": "c", "label": "x"}'], r"is empty"),
])
def test_bad_data_raises_one_clear_error(kind, train_lines, val_lines,
                                         expected, tmp_path):
  folder = tmp_path / "task"
  folder.mkdir()
  _write(folder / "train.jsonl", train_lines)
  _write(folder / "validation.jsonl", val_lines)
  with pytest.raises(DataError, match=expected):
    train.train_and_evaluate(tiny_config(f"{kind}:{folder}"),
                             str(tmp_path / "wd"))


def test_qa_answer_not_in_context(tmp_path):
  folder = tmp_path / "qa"
  folder.mkdir()
  bad = {"id": "q7", "question": "who?", "context": "Ann met Bob.",
         "answers": [{"text": "Carl", "answer_start": 0}]}
  _write(folder / "train.jsonl", [json.dumps(bad)])
  with pytest.raises(DataError, match="q7.*'Carl'"):
    train.train_and_evaluate(tiny_config(f"qa:{folder}"), str(tmp_path / "w"))


def test_cli_reports_one_line_and_keeps_checkpoints(trained_cls, tmp_path):
  workdir, _ = trained_cls
  before = sorted(os.listdir(os.path.join(workdir, "best")))
  env = dict(os.environ, PYTHONPATH=ROOT)
  runs = {
      "missing": [f"--config.task=classification:{tmp_path}/nothing"],
      "field": ["--config.no_such_field=1"],
  }
  for name, args in runs.items():
    res = subprocess.run(
        [sys.executable, "-m", "taskemb_jax.main", "--config=configs/tiny.py",
         f"--workdir={workdir}", *args], env=env, cwd=ROOT,
        capture_output=True, text=True)
    assert res.returncode != 0
    assert "Traceback" not in res.stderr, res.stderr
    if name == "missing":
      assert res.returncode == 2
      assert res.stderr.strip().splitlines()[-1].startswith("error: ")
      assert "nothing: no such file or folder" in res.stderr
    else:
      assert "no_such_field" in res.stderr
  assert sorted(os.listdir(os.path.join(workdir, "best"))) == before


def test_unknown_task_and_config_errors():
  with pytest.raises(UserError, match="unknown task 'nope'"):
    train.train_and_evaluate(tiny_config("nope"), "/tmp/unused")
  with pytest.raises(UserError, match="dtype"):
    encoders.create_model(encoders.spec_from_config(tiny_config("")),
                          "classification", 2, seed=0, dtype="float8")
