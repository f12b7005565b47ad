"""Config ranges are checked before anything runs; training stops at the
first non-finite value before saving anything of that epoch."""

import json
import math
import os
import subprocess
import sys
import types

import jax
import numpy as np
import pytest

import synthetic
from configs import common, tiny
from taskemb_jax import checkpoint, encoders, files, runs, train, validate
from taskemb_jax.errors import ConfigError, UserError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def config(**overrides):
  c = tiny.get_config()
  c.update({"compilation_cache": "", **overrides})
  return c


@pytest.mark.parametrize("field,value,allowed", [
    ("learning_rate", math.nan, "a finite number > 0"),
    ("learning_rate", math.inf, "a finite number > 0"),
    ("learning_rate", 0.0, "a finite number > 0"),
    ("warmup_proportion", 1.0, "a number in [0, 1)"),
    ("warmup_proportion", -0.1, "a number in [0, 1)"),
    ("weight_decay", -0.01, "a finite number >= 0"),
    ("max_grad_norm", 0.0, "a number > 0"),
    ("adam_epsilon", 0.0, "a finite number > 0"),
    ("dropout", 1.0, "-1 (the checkpoint's value) or a number in [0, 1)"),
    ("dropout", -0.5, "-1 (the checkpoint's value) or a number in [0, 1)"),
    ("train_examples", -1, "an integer >= 0 (0 = all)"),
    ("max_eval_examples", -5, "an integer >= 0 (0 = all)"),
    ("num_epochs", 0, "an integer >= 1"),
    ("batch_size", 0, "an integer >= 1"),
    ("eval_batch_size", -8, "an integer >= 1"),
    ("max_length", 4, "an integer >= 8"),
    ("checkpoint_every_steps", -1, "an integer >= 0 (0 = each epoch only)"),
    ("dtype", "float8", "one of float32, bfloat16"),
    ("doc_stride", 64, "-1 (automatic) or an integer in [1, max_length=64)"),
    ("doc_stride", 0, "-1 (automatic) or an integer in [1, max_length=64)"),
    ("max_query_length", -2,
     "-1 (automatic) or an integer in [1, max_length=64)"),
])
def test_each_field_out_of_range_is_one_line(field, value, allowed, tmp_path):
  cfg = config(**{field: value})
  shown = repr(value) if isinstance(value, str) else value
  expected = f"config.{field}={shown}: must be {allowed}"
  with pytest.raises(ConfigError) as err:
    validate.check_config(cfg)
  assert str(err.value) == expected
  with pytest.raises(ConfigError) as err:
    train.train_and_evaluate(cfg, str(tmp_path / "w"))
  assert str(err.value) == expected
  assert not os.path.exists(tmp_path / "w")


def test_defaults_and_limits_are_valid():
  for c in (common.get_config(), tiny.get_config()):
    validate.check_config(c)
  validate.check_config(config(dropout=-1.0, warmup_proportion=0.0,
                               doc_stride=63, max_query_length=1,
                               weight_decay=0.0, max_grad_norm=math.inf))
  validate.check_config(config(max_length=8, dropout=0.0, train_examples=0))


def test_several_fields_out_of_range_make_one_line():
  cfg = config(learning_rate=-1.0, num_epochs=0)
  with pytest.raises(ConfigError) as err:
    validate.check_config(cfg)
  assert str(err.value) == (
      "config.num_epochs=0: must be an integer >= 1; "
      "config.learning_rate=-1.0: must be a finite number > 0")


def test_batch_sizes_must_split_over_the_devices():
  with pytest.raises(ConfigError) as err:
    validate.check_config(config(batch_size=12, eval_batch_size=32),
                          num_devices=8)
  assert str(err.value) == ("config.batch_size=12: must be a multiple of the "
                            "number of devices (8)")


def test_max_length_must_fit_the_position_embeddings(tmp_path):
  limit = encoders.spec_from_config(config()).config.max_position_embeddings
  assert limit == 512
  cfg = config(max_length=limit + 1)
  expected = ("config.max_length=513: must be at most 512, the position "
              "embeddings of model 'tiny'")
  with pytest.raises(ConfigError) as err:
    encoders.spec_from_config(cfg)
  assert str(err.value) == expected
  with pytest.raises(ConfigError) as err:
    train.train_and_evaluate(cfg, str(tmp_path / "w"))
  assert str(err.value) == expected


def test_cli_prints_one_error_line_for_a_nan_learning_rate(tmp_path):
  workdir = tmp_path / "w"
  res = subprocess.run(
      [sys.executable, "-m", "taskemb_jax.main", "--config=configs/tiny.py",
       f"--workdir={workdir}", "--config.learning_rate=nan"],
      cwd=ROOT, env=dict(os.environ, PYTHONPATH=ROOT), capture_output=True,
      text=True, timeout=300)
  assert res.returncode == 2, res.stderr[-2000:]
  errors = [l for l in res.stderr.splitlines() if l.startswith("error: ")]
  assert errors == ["error: config.learning_rate=nan: must be a finite "
                    "number > 0"]
  assert res.stderr.strip().splitlines()[-1] == errors[0]
  assert "Traceback" not in res.stderr
  assert not workdir.exists()


# --- Non-finite training ------------------------------------------------------


@pytest.fixture(scope="module")
def data(tmp_path_factory):
  return synthetic.write_task(str(tmp_path_factory.mktemp("syn")),
                              "regression", n_train=64, n_val=32)


def run_config(data, **overrides):
  return config(**{"task": f"regression:{data}", "num_epochs": 3,
                   "train_examples": 64, "learning_rate": 0.03, **overrides})


def test_a_diverging_run_stops_before_saving(data, tmp_path):
  workdir = str(tmp_path / "w")
  with pytest.raises(train.NonFiniteError) as err:
    train.train_and_evaluate(run_config(data, learning_rate=1e6), workdir)
  msg = str(err.value)
  assert "\n" not in msg
  assert msg.startswith("step ") and " (epoch 1/3) of regression:" in msg
  assert "try a lower config.learning_rate (now 1e+06)" in msg
  assert not os.path.exists(os.path.join(workdir, "metrics.json"))
  assert checkpoint.steps(workdir) == []
  assert checkpoint.steps(workdir, checkpoint.BEST) == []


class _Logged:
  """A step's output scalar; logs when the host reads it."""

  def __init__(self, value, step, log, nan):
    self.value, self.step, self.log, self.nan = value, step, log, nan

  def __float__(self):
    self.log.append(f"read {self.step}")
    return math.nan if self.nan else float(self.value)


class _Steps:
  """Steps whose train step `nan_at` reports a NaN loss."""

  def __init__(self, steps, log, nan_at):
    self._steps, self.log, self.nan_at = steps, log, nan_at

  def __getattr__(self, name):
    return getattr(self._steps, name)

  def train(self, state, batch, key, schedule):
    state, m = self._steps.train(state, batch, key, schedule)
    n = sum(e.startswith("dispatch") for e in self.log) + 1
    self.log.append(f"dispatch {n}")
    return state, {k: _Logged(v, n, self.log, n == self.nan_at and
                              k == "loss_sum") for k, v in m.items()}


def test_a_nan_in_epoch_2_keeps_the_checkpoints_of_epoch_1(
    data, tmp_path, monkeypatch):
  workdir = str(tmp_path / "w")
  log = []
  real = train.steps_for
  monkeypatch.setattr(train, "steps_for",
                      lambda *a, **k: _Steps(real(*a, **k), log, nan_at=7))
  with pytest.raises(train.NonFiniteError) as err:
    train.train_and_evaluate(run_config(data), workdir)
  assert str(err.value).startswith(
      "step 7 (epoch 2/3) of regression:")
  assert "the training loss is nan" in str(err.value)
  # Each step's loss is read after the next step is dispatched.
  assert log[:6] == ["dispatch 1", "dispatch 2", "read 1", "read 1",
                     "read 1", "dispatch 3"]
  assert log[-4:] == ["dispatch 8", "read 7", "read 7", "read 7"]
  # Epoch 1 is saved; nothing of epoch 2 is.
  assert checkpoint.steps(workdir) == [5]
  assert checkpoint.steps(workdir, checkpoint.BEST) == [5]
  metrics = files.read_json(os.path.join(workdir, "metrics.json"))
  assert [h["step"] for h in metrics["history"]] == [5]
  params, _ = checkpoint.restore(workdir, checkpoint.BEST)
  assert all(np.isfinite(x).all() for x in jax.tree.leaves(params))
  # The run resumes from epoch 1 once the cause is gone.
  monkeypatch.setattr(train, "steps_for", real)
  summary = train.train_and_evaluate(run_config(data), workdir)
  assert len(summary["history"]) == 3


def test_metrics_files_are_strict_json(tmp_path):
  task = types.SimpleNamespace(name="t", metric="pearson")
  run = runs.RunState(step=1, history=[{"loss": math.inf, "pearson": 0.5}],
                       best={"loss": math.nan})
  # pylint: disable-next=protected-access
  runs.write_metrics(str(tmp_path), task, run)
  text = open(tmp_path / "metrics.json").read()

  def reject(name):
    raise AssertionError(f"not strict JSON: {name}")

  m = json.loads(text, parse_constant=reject)
  assert m["history"] == [{"loss": None, "pearson": 0.5}]
  assert m["best"] == {"loss": None}
  with pytest.raises(UserError):
    files.read_json(str(tmp_path / "missing.json"))
