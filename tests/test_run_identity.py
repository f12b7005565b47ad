"""A workdir resumes or reuses only a run of the same identity: the task,
its train and eval data (as used), the base model and the settings that
change the result."""

import json
import os
import re
import shutil

import jax
import numpy as np
import pytest
from flax import nnx

import synthetic
from configs import tiny
from taskemb_jax import checkpoint, embed, encoders, files, pretrained
from taskemb_jax import runs, tasks, train
from taskemb_jax import data as data_lib
from taskemb_jax.errors import ConfigError


def config(folder, **overrides):
  c = tiny.get_config()
  c.task = f"classification:{folder}"
  c.update({"num_epochs": 1, "train_examples": 32, "max_eval_examples": 16,
            "compilation_cache": "", **overrides})
  return c


@pytest.fixture(scope="module")
def data(tmp_path_factory):
  root = tmp_path_factory.mktemp("syn")
  return {name: synthetic.write_task(str(root / name), "classification",
                                     n_train=48, n_val=16, seed=seed)
          for name, seed in (("a", 0), ("b", 1))}


@pytest.fixture(scope="module")
def run_a(data, tmp_path_factory):
  workdir = str(tmp_path_factory.mktemp("run_a"))
  return workdir, train.train_and_evaluate(config(data["a"]), workdir)


def snapshot(workdir):
  """The files of a run, to show that nothing was touched."""
  params, _ = checkpoint.restore(workdir, checkpoint.BEST)
  texts = {n: open(os.path.join(workdir, n)).read()
           for n in ("identity.json", "task.json", "metrics.json")}
  return params, texts, sorted(os.listdir(workdir))


def assert_unchanged(before, workdir):
  params, texts, names = snapshot(workdir)
  jax.tree.map(np.testing.assert_array_equal, before[0], params)
  assert (texts, names) == before[1:]


def copy_run(workdir, dest):
  shutil.copytree(workdir, dest)
  return str(dest)


def test_identity_is_recorded_first(run_a, data):
  workdir, _ = run_a
  ident = files.read_json(os.path.join(workdir, "identity.json"))
  assert ident["task"] == f"classification:{data['a']}"
  assert ident["train_data"]["records"] == 32  # After subsampling.
  assert ident["eval_data"]["records"] == 16
  assert ident["base_model"]["name"] == "tiny"
  assert ident["base_model"]["weights"].startswith("random-")
  assert ident["settings"] == runs.run_settings(config(data["a"]))


def test_another_task_in_the_workdir_stops_with_one_line(run_a, data):
  workdir, _ = run_a
  before = snapshot(workdir)
  with pytest.raises(ConfigError) as err:
    train.train_and_evaluate(config(data["b"]), workdir)
  msg = str(err.value)
  assert "\n" not in msg
  assert msg.startswith(f"{workdir} holds another run: ")
  assert re.search(r": task '[^,]*/a' -> '[^,]*/b', train_data\.sha256 "
                   r"'[0-9a-f]{16}' -> '[0-9a-f]{16}', eval_data\.sha256", msg)
  assert msg.endswith("start it over with --config.overwrite=true or use "
                      "another --workdir")
  assert len(msg) < 600
  with pytest.raises(ConfigError) as again:
    runs.is_finished(workdir, config(data["b"]))
  assert str(again.value) == msg
  assert_unchanged(before, workdir)
  assert runs.is_finished(workdir, config(data["a"]))


def test_a_changed_setting_is_named_old_and_new(run_a, data):
  workdir, _ = run_a
  before = snapshot(workdir)
  for cfg in (config(data["a"], learning_rate=2e-3),
              config(data["a"], learning_rate=2e-3, num_epochs=2)):
    with pytest.raises(ConfigError,
                       match=r"settings\.learning_rate 0\.001 -> 0\.002"):
      runs.is_finished(workdir, cfg)
    with pytest.raises(ConfigError, match="learning_rate"):
      train.train_and_evaluate(cfg, workdir)
  assert_unchanged(before, workdir)


def test_settings_that_do_not_change_the_result_reuse_the_run(
    run_a, data, monkeypatch):
  workdir, summary = run_a
  cfg = config(data["a"], eval_batch_size=16, save_latest=False,
               checkpoint_every_steps=1, compilation_cache="/tmp/elsewhere",
               num_devices=1, library="other-library", stage="taskemb")
  assert runs.is_finished(workdir, cfg)

  def no_training(*args):
    raise AssertionError("trained again")

  monkeypatch.setattr(train, "train_epoch", no_training)
  assert train.train_and_evaluate(cfg, workdir)["history"] == \
      summary["history"]


def _edit(path, index):
  rows = [json.loads(line) for line in open(path)]
  rows[index]["text"] += " changed"
  with open(path, "w") as f:
    f.writelines(json.dumps(r) + "\n" for r in rows)


def test_changed_records_are_seen_after_subsampling(data, tmp_path):
  """Editing a record trained on (or evaluated on) changes the identity;
  editing one left out by the subsample does not."""
  folder = str(tmp_path / "data")
  shutil.copytree(data["a"], folder)
  workdir = str(tmp_path / "run")
  train.train_and_evaluate(config(folder), workdir)
  records = tasks.read_file(os.path.join(folder, "train.jsonl"),
                            "classification")
  used = data_lib.subsample(records, 32, 0)
  _edit(f"{folder}/train.jsonl",
        next(i for i, r in enumerate(records) if r not in used))
  assert runs.is_finished(workdir, config(folder))
  shutil.copy(f"{folder}/validation.jsonl", str(tmp_path / "val"))
  _edit(f"{folder}/validation.jsonl", 3)
  with pytest.raises(ConfigError) as err:
    runs.is_finished(workdir, config(folder))
  assert "holds another run: eval_data.sha256 " in str(err.value)
  assert "train_data" not in str(err.value)
  shutil.copy(str(tmp_path / "val"), f"{folder}/validation.jsonl")
  _edit(f"{folder}/train.jsonl", records.index(used[0]))
  with pytest.raises(ConfigError, match="another run: train_data.sha256 "):
    train.train_and_evaluate(config(folder), workdir)


def test_overwrite_discards_the_other_run(run_a, data, tmp_path):
  workdir = copy_run(run_a[0], tmp_path / "w")
  fresh = train.train_and_evaluate(config(data["b"]), str(tmp_path / "b"))
  got = train.train_and_evaluate(config(data["b"], overwrite=True), workdir)
  assert got["history"] == fresh["history"]
  assert files.read_json(f"{workdir}/task.json")["task"] == \
      f"classification:{data['b']}"
  assert files.read_json(f"{workdir}/identity.json") == files.read_json(
      str(tmp_path / "b" / "identity.json"))
  a, _ = checkpoint.restore(workdir, checkpoint.BEST)
  b, _ = checkpoint.restore(str(tmp_path / "b"), checkpoint.BEST)
  jax.tree.map(np.testing.assert_array_equal, a, b)
  # A finished run of another identity is not finished under overwrite.
  assert not runs.is_finished(workdir, config(data["a"], overwrite=True))


def test_a_run_without_recorded_identity_is_not_reused(run_a, data, tmp_path):
  workdir = copy_run(run_a[0], tmp_path / "w")
  os.remove(os.path.join(workdir, "identity.json"))
  with pytest.raises(ConfigError, match="without a recorded identity"):
    runs.is_finished(workdir, config(data["a"]))
  with pytest.raises(ConfigError, match="without a recorded identity"):
    train.train_and_evaluate(config(data["a"]), workdir)


def test_taskemb_reuses_only_its_own_finetuning_run(run_a, data, tmp_path):
  """embed.finetuned naming another task's run stops; a head-only run is
  reused by the next TaskEmb of the same task instead of failing."""
  cfg = config(data["b"])
  cfg.embed.finetuned = run_a[0]
  task = tasks.get_task(cfg.task)
  spec = encoders.spec_from_config(cfg)
  with pytest.raises(ConfigError, match="holds another run"):
    embed.finetuned_model(cfg, task, spec, "", None)
  cfg = config(data["b"])
  cfg.embed.finetune = "head"
  first, _ = embed.finetuned_model(cfg, task, spec, str(tmp_path), None)
  assert files.read_json(str(tmp_path / "finetune" / "identity.json"))[
      "settings"]["freeze_encoder"] is True
  again, _ = embed.finetuned_model(cfg, task, spec, str(tmp_path), None)
  jax.tree.map(np.testing.assert_array_equal,
               nnx_params(first), nnx_params(again))


def nnx_params(model):
  return nnx.to_pure_dict(nnx.state(model, nnx.Param))


def test_weight_fingerprints_are_cached_until_the_files_change(
    tmp_path, monkeypatch):
  folder = tmp_path / "model"
  folder.mkdir()
  (folder / "config.json").write_text("{}")
  (folder / "model.safetensors").write_bytes(b"weights")
  names = ("config.json", "model.safetensors")
  fp = pretrained.fingerprint(str(folder), names)
  assert fp == pretrained.fingerprint(str(folder))
  calls = []  # Files the fingerprint reads.
  monkeypatch.setattr(pretrained, "open",
                      lambda path, *a: calls.append(path) or open(path, *a),
                      raising=False)
  assert pretrained.fingerprint(str(folder), names) == fp
  assert not calls  # Cached.
  (folder / "model.safetensors").write_bytes(b"other weights")
  assert pretrained.fingerprint(str(folder), names) != fp
  assert len(calls) == 2  # Both files hashed again.
