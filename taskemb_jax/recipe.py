"""The fine-tuning recipe of a task, and the source runs fine-tuned with it.

`run_config` is the one place that says how a task is fine-tuned by the
stages that fine-tune many tasks alike (the transfer sweep, build_library,
rank's embedding of a new target, LogME). A field's value comes from, last
one winning:

  1. the top-level config (``--config.learning_rate`` ...);
  2. `FAMILY_DEFAULTS` of the task's class (the paper's settings);
  3. ``transfer.all.<field>``;
  4. ``transfer.<class>.<field>`` (classification, qa or tagging);
  5. ``transfer.target.<field>``, for target runs of the sweep only;
  6. ``transfer.target.<class>.<field>``, for target runs of that class.

Groups 3-6 hold a typed placeholder for every field of `OVERRIDABLE` (None
= not set), so the config itself refuses a value of the wrong type
(``--config.transfer.target.num_epochs=2.9`` is an error, not 2).

A source run lives in ``<workdir>/sources/<files.safe_name(task)>``
(`source_run_dir`); `finetune_source` fine-tunes it once, under a lock that
makes concurrent workers wait for it and then reuse it. Every run folder
records the settings it was trained with (``settings.json``, `claim_run`):
a folder holding a run of other settings is an error, or with
``config.overwrite`` is discarded and redone, never silently reused.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from typing import Any, Iterator, Mapping

import jax
import ml_collections
from absl import logging
from ml_collections.config_dict import placeholder

from taskemb_jax import checkpoint
from taskemb_jax import files
from taskemb_jax import tasks as tasks_lib
from taskemb_jax import runs
from taskemb_jax import sharding
from taskemb_jax import train as train_lib
from taskemb_jax import progress
from taskemb_jax.errors import ConfigError

# The paper's fine-tuning settings per task class.
FAMILY_DEFAULTS = {
    "classification": dict(learning_rate=2e-5, batch_size=32, num_epochs=3,
                           max_length=128),
    "qa": dict(learning_rate=3e-5, batch_size=12, num_epochs=3,
               max_length=384),
    "tagging": dict(learning_rate=5e-5, batch_size=32, num_epochs=6,
                    max_length=128),
}

# Training fields a group of transfer.* may set, with their types.
OVERRIDABLE = {
    "learning_rate": float, "batch_size": int, "num_epochs": int,
    "max_length": int, "warmup_proportion": float, "weight_decay": float,
    "max_grad_norm": float, "adam_epsilon": float, "eval_batch_size": int,
    "max_eval_examples": int, "save_latest": bool,
    "checkpoint_every_steps": int, "dropout": float, "doc_stride": int,
    "max_query_length": int, "freeze_encoder": bool, "dtype": str,
    "train_examples": int,
}

# The override groups of config.transfer, in the order they apply.
GROUPS = ("all", "classification", "qa", "tagging", "target",
          "target.classification", "target.qa", "target.tagging")

SETTINGS = "settings.json"  # A run folder's record of its settings.


def override_group(per_class: bool = False) -> ml_collections.ConfigDict:
  """A ConfigDict with an unset, typed placeholder per `OVERRIDABLE` field.

  With `per_class`, also one such group per class (transfer.target.qa ...).
  """
  group = ml_collections.ConfigDict(
      {k: placeholder(t) for k, t in OVERRIDABLE.items()})
  if per_class:
    for family in FAMILY_DEFAULTS:
      group[family] = override_group()
  return group


def run_config(config: ml_collections.ConfigDict, task: str, *,
               examples: int, seed: int, init_from: str = "",
               target: bool = False) -> ml_collections.ConfigDict:
  """The fine-tuning config of one run of `task` (see the module docstring).

  Args:
    config: the stage's config.
    task: a task name.
    examples: training examples (0 = all).
    seed: the run's seed (model init, dropout, data order).
    init_from: run folder whose fine-tuned encoder initialises the run.
    target: whether this is a target run of the sweep (transfer.target).

  Returns:
    A resolved copy of `config` for the run; it evaluates on validation.
  """
  family = tasks_lib.get_task(task).family
  c = config.copy_and_resolve_references()
  groups = [("all",), (family,)] + (
      [("target",), ("target", family)] if target else [])
  with c.unlocked():
    c.task = task
    c.update(FAMILY_DEFAULTS[family])
    c.train_examples = examples
    for group in groups:
      values = c.transfer
      for part in group:
        values = values.get(part) if values is not None else None
      apply_group(c, values, "transfer." + ".".join(group))
    c.seed = seed
    c.init_from = init_from
    c.eval_split = "validation"
  return c


def apply_group(c: ml_collections.ConfigDict,
                values: ml_collections.ConfigDict | None, where: str) -> None:
  """Sets the fields of override group `values` (config.<where>) that are
  set (not None) on the unlocked run config `c`."""
  for key, value in (values or {}).items():
    if value is None or isinstance(value, ml_collections.ConfigDict):
      continue
    if key not in c or isinstance(c[key], ml_collections.ConfigDict):
      raise ConfigError(f"config.{where}.{key} is not a training field")
    c[key] = value


def source_run_dir(workdir: str, name: str) -> str:
  """The folder of the source run of task `name`: <workdir>/sources/<name>."""
  return os.path.join(workdir, "sources", files.safe_name(name))


@contextlib.contextmanager
def run_lock(run_dir: str) -> Iterator[None]:
  """Holds the lock of a run folder (``.<name>.lock`` next to it); waits
  while another worker holds it.

  The processes of one multi-host job run every step together, as one
  worker: they take no lock (one of them waiting would stall the others'
  collectives), so such jobs must not share a workdir with other workers.
  """
  if jax.process_count() > 1:
    yield
    return
  parent, name = os.path.split(os.path.normpath(run_dir))
  path = os.path.join(parent, f".{name}.lock")
  with files.try_lock(path) as got:
    if got:
      yield
      return
  logging.info("waiting for %s (another worker is running it)", run_dir)
  with files.lock(path):
    yield


def settings_diff(recorded: Mapping[str, Any] | None,
                  wanted: Mapping[str, Any]) -> str:
  """'' if equal; else the differing fields ('field: <recorded> there,
  <wanted> here; ...')."""
  if recorded is None:
    return "no settings recorded"
  wanted = json.loads(files.to_json(wanted))  # As it reads back from JSON.
  keys = sorted(set(recorded) | set(wanted))
  return "; ".join(f"{k}: {recorded.get(k)!r} there, {wanted.get(k)!r} here"
                   for k in keys if recorded.get(k) != wanted.get(k))


def mismatch_error(run_dir: str, diff: str) -> ConfigError:
  return ConfigError(
      f"{run_dir}: holds a run of other settings ({diff}); use "
      "--config.overwrite=true to redo it, or another --workdir")


def claim_run(run_dir: str, settings: Mapping[str, Any], *,
              overwrite: bool) -> None:
  """Makes `run_dir` a run of `settings` (call it holding `run_lock`).

  A folder that holds nothing is given `settings` (``settings.json``). One
  that holds a run of other settings, or of unrecorded ones, is a
  ConfigError naming the differing fields; with `overwrite` it is deleted
  and started afresh.
  """
  sharding.on_writer(lambda: _claim_run(run_dir, settings, overwrite))


def _claim_run(run_dir: str, settings: Mapping[str, Any],
               overwrite: bool) -> None:
  path = os.path.join(run_dir, SETTINGS)
  if os.path.exists(path):
    diff = settings_diff(files.read_json(path), settings)
  elif os.path.isdir(run_dir) and os.listdir(run_dir):
    diff = settings_diff(None, settings)
  else:
    diff = ""
  if diff:
    if not overwrite:
      raise mismatch_error(run_dir, diff)
    logging.info("%s: discarding a run of other settings (%s)", run_dir, diff)
    shutil.rmtree(run_dir)
  if diff or not os.path.exists(path):
    files.write_json(path, settings)


def finetune_source(config: ml_collections.ConfigDict, run_dir: str) -> None:
  """Fine-tunes a source once (resumed if interrupted); keeps its best model.

  One process at a time: others wait for the run's lock, then find it
  finished and reuse it. The build_library stage fine-tunes its tasks here
  too, so a sweep in the same workdir reuses them.
  """
  with run_lock(run_dir):
    claim_run(run_dir, runs.run_settings(config),
              overwrite=config.overwrite)
    if not runs.is_finished(run_dir, config):
      progress.say(f"fine-tuning source {config.task} in {run_dir}")
      train_lib.train_and_evaluate(config, run_dir)
    # The optimizer state is only needed to resume; the best model stays.
    sharding.on_writer(lambda: shutil.rmtree(
        os.path.join(run_dir, checkpoint.LATEST), ignore_errors=True))
