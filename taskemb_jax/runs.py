"""A training run on disk: its identity, its state, resuming it.

A run's workdir holds ``identity.json`` (what the run computes: task, data
and base-model fingerprints, settings; written before anything else),
``task.json`` (what a later stage needs to load its model), the latest and
best checkpoints (`taskemb_jax.checkpoint`) and ``metrics.json``. A workdir
resumes or reuses only a run of the same identity (`run_identity`,
`is_finished`); `resume` brings a workdir killed at any instant back to its
latest checkpoint.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any

import ml_collections
from absl import logging
from flax import nnx

from taskemb_jax import checkpoint
from taskemb_jax import data
from taskemb_jax import encoders
from taskemb_jax import files
from taskemb_jax import progress
from taskemb_jax import sharding
from taskemb_jax import tasks as tasks_lib
from taskemb_jax.errors import ConfigError


def task_info(config, task: tasks_lib.Task, labels,
              spec: encoders.ModelSpec) -> dict[str, Any]:
  """task.json: what a later stage needs to rebuild and load the model."""
  return {
      "task": task.name, "kind": task.kind, "family": task.family,
      "labels": list(labels) if labels else None, "metric": task.metric,
      "model": config.model, "model_dir": spec.weights_dir,
      "tokenizer_dir": spec.tokenizer_dir,
      "bert_config": dataclasses.asdict(spec.config),
      "max_length": config.max_length, "dtype": config.dtype,
      "init_from": config.init_from,
  }


# Config fields that change what a training run computes; two runs with
# equal settings (and equal data and base model) give the same result.
RUN_SETTINGS = (
    "task", "data_dir", "model", "tokenizer", "init_from", "dropout", "dtype",
    "max_length", "doc_stride", "max_query_length", "train_examples",
    "data_seed", "eval_split", "max_eval_examples", "learning_rate",
    "warmup_proportion", "weight_decay", "max_grad_norm", "adam_epsilon",
    "batch_size", "num_epochs", "seed", "freeze_encoder")


def run_settings(config: ml_collections.ConfigDict) -> dict[str, Any]:
  """The config fields of `RUN_SETTINGS` as a plain dict (JSON-able)."""
  return {k: config.get(k) for k in RUN_SETTINGS}


def used_records(config, task: tasks_lib.Task
                 ) -> tuple[list[dict], list[dict], list[dict]]:
  """(train records trained on, all train records, eval records used)."""
  all_train = task.load("train", config.data_dir or None)
  train = data.subsample(all_train, config.train_examples, config.data_seed)
  val = data.subsample(task.load(config.eval_split, config.data_dir or None),
                       config.max_eval_examples, 0)
  return train, all_train, val


def run_identity(config, task: tasks_lib.Task, spec: encoders.ModelSpec,
                 train_records: list[dict], eval_records: list[dict]
                 ) -> dict[str, Any]:
  """What a run computes: equal identities give equal results.

  The task, fingerprints of the records trained and evaluated on (after
  subsampling), of the base model's weights (random presets: of their
  sizes) and tokenizer, of the run `init_from` names, and `run_settings`.
  """
  base = encoders.base_fingerprints(spec)
  return {
      "task": task.name,
      "train_data": checkpoint.records_fingerprint(train_records),
      "eval_data": checkpoint.records_fingerprint(eval_records),
      "base_model": {"name": config.model, "weights": base["model"],
                     "tokenizer": base["tokenizer"]},
      "init_from_run": (checkpoint.identity_fingerprint(config.init_from)
                        or "unrecorded") if config.init_from else "",
      "settings": run_settings(config),
  }


def config_identity(config: ml_collections.ConfigDict) -> dict[str, Any]:
  """`run_identity` of the run `config` describes (loads its data)."""
  task = tasks_lib.get_task(config.task)
  train, _, val = used_records(config, task)
  return run_identity(config, task, encoders.spec_from_config(config), train,
                      val)


def finished_summary(workdir: str, num_epochs: int) -> dict[str, Any] | None:
  """The summary of a run in `workdir` that completed `num_epochs` epochs
  and holds its best model; None if there is none (identity unchecked)."""
  path = os.path.join(workdir, checkpoint.METRICS)
  if not os.path.exists(path):
    return None
  m = files.read_json(path)
  m = m if isinstance(m, dict) else {}
  history, best = m.get("history") or [], m.get("best") or {}
  if (not isinstance(best, dict) or len(history) < num_epochs or
      best.get("step") not in checkpoint.steps(workdir, checkpoint.BEST)):
    return None
  return {"task": m.get("task"), "metric": m.get("metric"), "best": best,
          "final": history[-1], "history": history}


def is_finished(workdir: str, config: ml_collections.ConfigDict) -> bool:
  """Whether `workdir` holds a finished run of `config`'s identity.

  A finished run of another identity is a one-line ConfigError naming the
  fields that differ; with config.overwrite it is not finished (and
  `train_and_evaluate` starts it over).
  """
  recorded = checkpoint.read_identity(workdir)
  settings = recorded.get("settings") if isinstance(recorded, dict) else None
  num_epochs = (settings or {}).get("num_epochs", config.num_epochs)
  if finished_summary(workdir, num_epochs) is None:
    return False
  try:
    checkpoint.check_identity(workdir, config_identity(config))
  except ConfigError:
    if config.get("overwrite", False):
      return False
    raise
  return True


@dataclasses.dataclass
class RunState:
  """Where a run stands: what the latest checkpoint's metadata holds."""

  step: int = 0
  history: list[dict[str, Any]] = dataclasses.field(default_factory=list)
  best: dict[str, Any] = dataclasses.field(default_factory=dict)
  epoch_loss: tuple[float, float] = (0.0, 0.0)  # Of a partly trained epoch.

  def meta(self) -> dict[str, Any]:
    return {"step": self.step, "history": self.history, "best": self.best,
            "epoch_loss": list(self.epoch_loss)}


def _resume_plan(workdir: str, step: int) -> str:
  """'resume', 'rebest' (the best model is that of the latest checkpoint
  and was not saved yet) or 'restart' (the best model is lost)."""
  meta = checkpoint.read_meta(workdir, checkpoint.LATEST, step)
  best = (meta.get("best") or {}).get("step")
  if best is None or best in checkpoint.steps(workdir, checkpoint.BEST):
    return "resume"
  if best == step:
    return "rebest"
  logging.warning("%s: the best model of step %d is missing; starting over",
                  workdir, best)
  return "restart"


def resume(workdir: str, task: tasks_lib.Task, state: nnx.State, *,
           save_latest: bool) -> tuple[nnx.State, RunState]:
  """Restores the latest checkpoint into `state` and makes the workdir agree
  with it; without one (or with save_latest off) starts over.

  Whatever instant a run was killed at, the workdir is brought to the state
  of its latest checkpoint: temporaries removed, a best model of a later
  step (the killed future) removed, a best model saved with the latest
  checkpoint but not yet on its own re-saved, metrics.json rewritten.
  """
  checkpoint.remove_temporaries(workdir)
  step = checkpoint.latest_step(workdir) if save_latest else None
  plan = "restart" if step is None else _resume_plan(workdir, step)
  if plan == "restart":
    checkpoint.discard(workdir, (checkpoint.LATEST, checkpoint.BEST,
                                 checkpoint.METRICS))
    return state, RunState()
  state, meta = checkpoint.restore(workdir, checkpoint.LATEST, state)
  checkpoint.keep_only(workdir, checkpoint.LATEST, step)
  run = RunState(meta["step"], meta["history"], meta["best"],
                 tuple(meta.get("epoch_loss", (0.0, 0.0))))
  if plan == "rebest":
    checkpoint.save(workdir, checkpoint.BEST, step, state[0],
                    {"step": step, "metrics": run.best})
  checkpoint.keep_only(workdir, checkpoint.BEST, run.best.get("step"))
  write_metrics(workdir, task, run)
  progress.say(f"resumed from {workdir} at step {run.step}")
  return state, run


def write_metrics(workdir: str, task: tasks_lib.Task, run: RunState,
                   final: bool = False) -> dict[str, Any]:
  summary = {"task": task.name, "metric": task.metric, "best": run.best}
  if final:
    summary["final"] = run.history[-1] if run.history else {}
  summary["history"] = run.history
  sharding.on_writer(lambda: files.write_json(
      os.path.join(workdir, checkpoint.METRICS), summary))
  return summary
