"""A run killed at any instant of its save sequence resumes to the result
of an uninterrupted run (same metrics.json, same best model)."""

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys

import jax
import numpy as np
import pytest

import synthetic
from configs import tiny
from taskemb_jax import checkpoint, files, train

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# 64 examples in batches of 16 (bucketed by length): 5 steps an epoch;
# mid-epoch checkpoints at steps 7 and 14. The validation metric improves
# in epoch 2, not in epoch 3.
OVERRIDES = {"num_epochs": 3, "train_examples": 64, "batch_size": 16,
             "checkpoint_every_steps": 7, "learning_rate": 0.03, "seed": 0,
             "compilation_cache": ""}
EPOCH_ENDS, BEST_STEP = (5, 10, 15), 10


class Killed(BaseException):
  """Stands for a kill: not an Exception, nothing catches it."""


def config(data, **overrides):
  c = tiny.get_config()
  c.task = f"regression:{data}"
  c.update({**OVERRIDES, **overrides})
  return c


@contextlib.contextmanager
def writes(kill_at=None, mode="after"):
  """Counts the checkpoint saves and JSON writes of a run (a list of
  names); raises Killed at the `kill_at`-th one (1-based).

  Modes: 'after' (the write completed), 'torn' (killed while writing: the
  writer's temporary is left, nothing renamed), 'unpruned' (a checkpoint
  renamed into place but the older one not yet deleted).
  """
  log = []
  real_save, real_json = checkpoint.save, files.write_json

  def save(workdir, which, step, state, meta):
    log.append(f"{which}/{step}")
    if len(log) != kill_at:
      return real_save(workdir, which, step, state, meta)
    folder = os.path.join(workdir, which)
    if mode == "torn":
      tmp = os.path.join(folder, f"{step}.orbax-checkpoint-tmp-1234")
      os.makedirs(tmp)
      open(os.path.join(tmp, "partial"), "w").close()
      raise Killed
    older = {s: os.path.join(workdir, f"keep-{s}")
             for s in checkpoint.steps(workdir, which) if mode == "unpruned"}
    for s, keep in older.items():
      shutil.copytree(os.path.join(folder, str(s)), keep)
    real_save(workdir, which, step, state, meta)
    if mode == "unpruned":
      for s, keep in older.items():
        if not os.path.exists(os.path.join(folder, str(s))):
          os.replace(keep, os.path.join(folder, str(s)))
    for keep in older.values():
      shutil.rmtree(keep, ignore_errors=True)
    raise Killed

  def write_json(path, obj, **kw):
    log.append(os.path.basename(path))
    if len(log) == kill_at and mode == "torn":
      os.makedirs(os.path.dirname(path), exist_ok=True)
      with open(os.path.join(os.path.dirname(path), ".tmp-torn"), "w") as f:
        f.write('{"history": [')
      raise Killed
    real_json(path, obj, **kw)
    if len(log) == kill_at:
      raise Killed

  checkpoint.save, files.write_json = save, write_json
  try:
    yield log
  finally:
    checkpoint.save, files.write_json = real_save, real_json


@pytest.fixture(scope="module")
def data(tmp_path_factory):
  return synthetic.write_task(str(tmp_path_factory.mktemp("syn")),
                              "regression", n_train=64, n_val=32)


@pytest.fixture(scope="module")
def reference(data, tmp_path_factory):
  """An uninterrupted run: (workdir, metrics.json, its writes)."""
  workdir = str(tmp_path_factory.mktemp("reference"))
  with writes() as log:
    train.train_and_evaluate(config(data), workdir)
  return workdir, files.read_json(os.path.join(workdir, "metrics.json")), log


def assert_same_as_reference(workdir, reference):
  ref_dir, ref_metrics, _ = reference
  assert files.read_json(os.path.join(workdir, "metrics.json")) == ref_metrics
  a, _ = checkpoint.restore(ref_dir, checkpoint.BEST)
  b, _ = checkpoint.restore(workdir, checkpoint.BEST)
  jax.tree.map(np.testing.assert_array_equal, a, b)
  best = ref_metrics["best"]["step"]
  assert os.listdir(os.path.join(workdir, "best")) == [str(best)]
  assert os.listdir(os.path.join(workdir, "checkpoints")) == ["15"]
  left = [os.path.join(d, n) for d, dirs, names in os.walk(workdir)
          for n in dirs + names if "tmp" in n]
  assert not left, left


def test_reference_run_saves_latest_before_best(reference):
  _, metrics, log = reference
  assert [h["step"] for h in metrics["history"]] == list(EPOCH_ENDS)
  assert metrics["best"]["step"] == BEST_STEP
  assert log == [
      "identity.json", "task.json", "checkpoints/5", "best/5", "metrics.json",
      "checkpoints/7", "checkpoints/10", "best/10", "metrics.json",
      "checkpoints/14", "checkpoints/15", "metrics.json", "metrics.json"]


# Kill points: every write completed ('after'); a few writes torn in the
# middle (the other states of the workdir are those of 'after' points).
KILLS = {"after": range(1, 14), "torn": (6, 8, 9), "unpruned": (7, 8)}


@pytest.mark.parametrize("mode", sorted(KILLS))
def test_killed_at_every_write_resumes_to_the_same_result(
    mode, data, reference, tmp_path):
  """For every k: killed at the k-th write, resumed, same result."""
  assert len(reference[2]) == 13
  for k in KILLS[mode]:
    workdir = str(tmp_path / f"{mode}{k}")
    with writes(k, mode), pytest.raises(Killed):
      train.train_and_evaluate(config(data), workdir)
    train.train_and_evaluate(config(data), workdir)
    assert_same_as_reference(workdir, reference)


def test_killed_again_and_again_while_resuming(data, reference, tmp_path):
  """Attempt i dies at its (2 + i % 4)-th write, kills inside the repair
  of the previous attempt included, until the run completes."""
  workdir = str(tmp_path / "w")
  for attempt in range(40):
    with writes(2 + attempt % 4):
      try:
        train.train_and_evaluate(config(data), workdir)
        break
      except Killed:
        pass
  assert 4 <= attempt < 40  # Killed at least 4 times.
  assert_same_as_reference(workdir, reference)


def test_stale_files_of_a_killed_future_are_replaced(data, reference,
                                                     tmp_path):
  """metrics.json ahead of the checkpoint and a best model of a later step
  (as the save order of older versions left them) are rewritten."""
  workdir = str(tmp_path / "w")
  ref_dir, ref_metrics, log = reference
  with writes(log.index("best/5") + 1), pytest.raises(Killed):
    train.train_and_evaluate(config(data), workdir)
  shutil.copytree(os.path.join(ref_dir, "best"), os.path.join(workdir, "best"),
                  dirs_exist_ok=True)
  ahead = dict(ref_metrics, history=ref_metrics["history"][:2])
  files.write_json(os.path.join(workdir, "metrics.json"), ahead)
  assert checkpoint.steps(workdir) == [5]
  assert checkpoint.steps(workdir, checkpoint.BEST) == [5, BEST_STEP]
  train.train_and_evaluate(config(data), workdir)
  assert_same_as_reference(workdir, reference)


def test_without_latest_checkpoints_a_killed_run_starts_over(data, reference,
                                                            tmp_path):
  cfg = config(data, save_latest=False)
  ref = str(tmp_path / "ref")
  with writes() as log:
    train.train_and_evaluate(cfg, ref)
  assert not any(name.startswith("checkpoints/") for name in log)
  expected = files.read_json(os.path.join(ref, "metrics.json"))
  # The best model (epoch 2 of 3) is held in memory and written once, at the
  # end: the same weights as the run that saved it at epoch 2.
  assert expected == reference[1]
  assert [n for n in log if n.startswith("best/")] == [f"best/{BEST_STEP}"]
  assert log[-3:] == ["metrics.json", f"best/{BEST_STEP}", "metrics.json"]
  a, _ = checkpoint.restore(reference[0], checkpoint.BEST)
  b, _ = checkpoint.restore(ref, checkpoint.BEST)
  jax.tree.map(np.testing.assert_array_equal, a, b)
  # Killed after the first epoch's best model and metrics: nothing to resume
  # from; the stale best model and metrics are discarded, not reused.
  workdir = str(tmp_path / "w")
  k = log.index("metrics.json") + 1
  with writes(k), pytest.raises(Killed):
    train.train_and_evaluate(cfg, workdir)
  assert len(files.read_json(os.path.join(workdir, "metrics.json"))[
      "history"]) == 1
  with writes() as again:
    train.train_and_evaluate(cfg, workdir)
  assert again == log[1:]  # Trained from the start: the same writes.
  assert files.read_json(os.path.join(workdir, "metrics.json")) == expected


def test_saving_is_idempotent(tmp_path):
  """A step saved again (or an older one) replaces what is there."""
  workdir = str(tmp_path)
  tree = {"w": np.arange(3.0)}
  for step, scale in ((4, 1.0), (4, 2.0), (2, 3.0)):
    checkpoint.save(workdir, checkpoint.BEST, step,
                    {"w": tree["w"] * scale}, {"step": step})
    assert checkpoint.steps(workdir, checkpoint.BEST) == [step]
    got, meta = checkpoint.restore(workdir, checkpoint.BEST)
    np.testing.assert_array_equal(got["w"], tree["w"] * scale)
    assert meta == {"step": step}
  os.makedirs(os.path.join(workdir, "best", "7.orbax-checkpoint-tmp-5"))
  os.makedirs(os.path.join(workdir, "checkpoints.orbax-checkpoint-tmp-x"))
  checkpoint.remove_temporaries(workdir)
  assert sorted(os.listdir(workdir)) == ["best"]
  assert os.listdir(os.path.join(workdir, "best")) == ["2"]


# --- A real SIGKILL of the command line ------------------------------------

_KILLER = r"""
import os, runpy, signal, sys
sys.path.insert(0, {root!r})
from taskemb_jax import checkpoint
real = checkpoint.save

def save(workdir, which, step, *args, **kwargs):
  real(workdir, which, step, *args, **kwargs)
  if step == {kill_step}:  # The first save of this step.
    os.kill(os.getpid(), signal.SIGKILL)

checkpoint.save = save
sys.argv = ["taskemb_jax.main", *{args!r}]
runpy.run_module("taskemb_jax.main", run_name="__main__", alter_sys=True)
"""


def test_sigkill_between_latest_and_best_then_resume(data, reference,
                                                     tmp_path):
  """SIGKILL right after the first save at the end of epoch 2 (the latest
  checkpoint; the best model of this epoch is not saved yet)."""
  workdir = str(tmp_path / "w")
  # The default compilation cache: the second process reuses the first
  # one's compiled steps.
  args = ["--config=configs/tiny.py", f"--workdir={workdir}",
          f"--config.task=regression:{data}"] + [
              f"--config.{k}={v}" for k, v in OVERRIDES.items()
              if k != "compilation_cache"]
  env = dict(os.environ, PYTHONPATH=ROOT)
  killed = subprocess.run(
      [sys.executable, "-c", _KILLER.format(root=ROOT, kill_step=BEST_STEP,
                                            args=args)],
      cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
  assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
  assert checkpoint.steps(workdir) == [BEST_STEP]
  assert checkpoint.steps(workdir, checkpoint.BEST) == [5]
  resumed = subprocess.run([sys.executable, "-m", "taskemb_jax.main", *args],
                           cwd=ROOT, env=env, capture_output=True, text=True,
                           timeout=300)
  assert resumed.returncode == 0, resumed.stderr[-2000:]
  assert "resumed from" in resumed.stderr
  assert_same_as_reference(workdir, reference)
  assert json.load(open(os.path.join(workdir, "metrics.json")))["final"]


_SAVE_ON_TWO_DEVICES = """
import sys
import optax
from flax import nnx
from configs import tiny
from taskemb_jax import checkpoint, encoders, sharding
spec = encoders.spec_from_config(tiny.get_config())
model = encoders.create_model(spec, "classification", 2, seed=0)
opt = nnx.Optimizer(model, optax.adam(1e-3), wrt=nnx.Param)
state = sharding.put_replicated(nnx.state((model, opt)),
                                sharding.make_mesh())
checkpoint.save(sys.argv[1], checkpoint.BEST, 3, state[0], {"step": 3})
checkpoint.save(sys.argv[1], checkpoint.LATEST, 3, state, {"step": 3})
"""


def test_restore_into_numpy_weights_of_another_topology(tmp_path):
  """A run started from another run's encoder (config.init_from) holds
  numpy weights until its first step; its checkpoint, saved replicated on 2
  devices, restores into it on a process with 1 device."""
  import optax  # pylint: disable=import-outside-toplevel
  from flax import nnx  # pylint: disable=import-outside-toplevel
  from taskemb_jax import encoders  # pylint: disable=import-outside-toplevel
  work = str(tmp_path / "run")
  env = dict(os.environ, PYTHONPATH=ROOT,
             XLA_FLAGS="--xla_force_host_platform_device_count=2")
  subprocess.run([sys.executable, "-c", _SAVE_ON_TWO_DEVICES, work], cwd=ROOT,
                 env=env, check=True, timeout=120)
  assert len(jax.devices()) == 1
  spec = encoders.spec_from_config(tiny.get_config())
  model = encoders.create_model(spec, "classification", 2, seed=1,
                                init_from=work)
  assert any(isinstance(x, np.ndarray) for x in jax.tree.leaves(
      nnx.to_pure_dict(nnx.state(model))))
  opt = nnx.Optimizer(model, optax.adam(1e-3), wrt=nnx.Param)
  state, meta = checkpoint.restore(work, checkpoint.LATEST,
                                   nnx.state((model, opt)))
  saved, _ = checkpoint.restore(work, checkpoint.LATEST)
  assert meta == {"step": 3}
  got = jax.tree.leaves(jax.tree.map(np.asarray, nnx.to_pure_dict(state)))
  want = jax.tree.leaves(saved)
  assert len(got) == len(want) > 10
  for a, b in zip(got, want):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
