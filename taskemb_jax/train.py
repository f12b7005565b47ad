"""Fine-tuning and evaluation: jit-compiled steps, the epoch loop.

`train_and_evaluate(config, workdir)` fine-tunes BERT on one task, evaluates
on the validation split after every epoch, keeps the latest and the best
checkpoint (`taskemb_jax.checkpoint`) and resumes from the latest one when
restarted. The steps are top-level functions jit-compiled with the model
state replicated and the batch split over the mesh's ``data`` axis, once per
process and model structure: the learning-rate schedule is an argument of
the train step (`optimizer.schedule_args`), so runs of any dataset size, number of
epochs or learning rate reuse the compiled steps.

A run is safe to kill at any instant: at an epoch end the latest checkpoint
is saved first, then the best model, then metrics.json, and `resume` brings
the workdir back to its latest checkpoint whatever was left half done. The
workdir records the run's identity (`run_identity`) before anything else and
resumes or reuses only a run of the same identity. Training stops at the
first non-finite loss, gradient norm or weight, before anything of that
epoch is saved.
"""

from __future__ import annotations

import collections
import dataclasses
import functools
import math
import os
from typing import Any, Mapping, Sequence

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from absl import logging
from flax import nnx

from taskemb_jax import checkpoint
from taskemb_jax import data
from taskemb_jax import decoding
from taskemb_jax import encoders
from taskemb_jax import files
from taskemb_jax import heads
from taskemb_jax import input_pipeline
from taskemb_jax import metrics as metrics_lib
from taskemb_jax import optimizer as optimizer_lib
from taskemb_jax import progress
from taskemb_jax import runs
from taskemb_jax import sharding
from taskemb_jax import tasks as tasks_lib
from taskemb_jax import validate
from taskemb_jax.errors import ConfigError, DataError, UserError


# ----------------------------------------------------------------------------
# Steps.
# ----------------------------------------------------------------------------


def train_step(graphdef: nnx.GraphDef, state: nnx.State,
               batch: Mapping[str, jax.Array], dropout_key: jax.Array,
               schedule: Mapping[str, jax.Array],
               kind: str) -> tuple[nnx.State, dict[str, jax.Array]]:
  """One optimizer step on a global batch.

  Args:
    graphdef, state: `nnx.split((model, optimizer))`, the optimizer's
      transformation from `optimizer.create_optimizer`.
    batch: input_pipeline batch, arrays [batch, ...] sharded over ``data``.
    dropout_key: the step's dropout randomness.
    schedule: the run's learning-rate schedule (`optimizer.schedule_args`).
    kind: the task kind (static).
  Returns:
    the new state and {'loss_sum', 'count', 'grad_norm'} (scalars).
  """
  model, optimizer = nnx.merge(graphdef, state)

  def loss_fn(model):
    logits = model(batch, rngs=nnx.Rngs(dropout=dropout_key))
    total, count = heads.batch_loss(kind, logits, batch)
    return total / jnp.maximum(count, 1.0), (total, count)

  grads, (total, count) = nnx.grad(loss_fn, has_aux=True)(model)
  return _apply_grads(graphdef, nnx.state((model, optimizer)), grads,
                      schedule), {
      "loss_sum": total, "count": count, "grad_norm": optax.global_norm(grads)}


@functools.partial(jax.jit, static_argnums=0)
def _apply_grads(graphdef: nnx.GraphDef, state: nnx.State, grads: nnx.State,
                 schedule: Mapping[str, jax.Array]) -> nnx.State:
  """The optimizer's update of `nnx.split((model, optimizer))`'s state.

  Its own jit, inlined into the train step's program: its shapes do not
  depend on the batch, so it is traced once per process, not once per
  length bucket (a third of a step's trace time).
  """
  model, optimizer = nnx.merge(graphdef, state)
  optimizer.update(model, grads, schedule=schedule)
  return nnx.state((model, optimizer))


def eval_step(graphdef: nnx.GraphDef, state: nnx.State,
              batch: Mapping[str, jax.Array],
              kind: str) -> dict[str, jax.Array]:
  """Deterministic forward pass: predictions plus loss sums for the batch."""
  model = nnx.merge(graphdef, state)
  logits = model(batch)
  out = heads.predictions(kind, logits, batch)
  if kind != "qa":
    out["logits"] = logits
  if _has_labels(kind, batch):
    out["loss_sum"], out["count"] = heads.batch_loss(kind, logits, batch)
  return out


def _has_labels(kind: str, batch: Mapping[str, Any]) -> bool:
  key = {"qa": "start_position", "tagging": "labels"}.get(kind, "label")
  return key in batch


def steps_for(model: nnx.Module, kind: str, mesh,
              optimizer: nnx.Optimizer | None = None) -> "Steps":
  """The `Steps` of `model` (and `optimizer`) on `mesh`."""
  return Steps(model, kind, mesh, optimizer)


# Compiled once per process and program: a step's program depends on the
# model's structure (not its weights), the kind, the mesh and the
# optimizer's transformation (not the run's length or learning rate).
@functools.lru_cache(maxsize=64)
def _eval_fn(model_def: nnx.GraphDef, kind: str, mesh):
  return jax.jit(lambda s, b: eval_step(model_def, s, b, kind),
                 in_shardings=(sharding.replicated(mesh),
                               sharding.data_sharding(mesh)))


@functools.lru_cache(maxsize=64)
def _train_fn(train_def: nnx.GraphDef, kind: str, mesh):
  repl = sharding.replicated(mesh)
  return jax.jit(
      lambda s, b, k, sched: train_step(train_def, s, b, k, sched, kind),
      in_shardings=(repl, sharding.data_sharding(mesh), repl, repl),
      out_shardings=(repl, repl), donate_argnums=(0,))


class Steps:
  """The jit-compiled train and eval steps of one model on one mesh.

  `train(state, batch, key, schedule)` takes the state of `nnx.split((model,
  optimizer))` (donated) and the run's `optimizer.schedule_args`;
  `eval(model_state, batch)` that of `nnx.split(model)`. Models of equal
  structure share the compiled steps, in this process, whatever their
  weights; the eval step does not depend on the optimizer.
  """

  def __init__(self, model: nnx.Module, kind: str, mesh,
               optimizer: nnx.Optimizer | None = None):
    self.mesh = mesh
    self.eval = _eval_fn(nnx.graphdef(model), kind, mesh)
    if optimizer is not None:
      self.train = _train_fn(nnx.graphdef((model, optimizer)), kind, mesh)


# ----------------------------------------------------------------------------
# Evaluation.
# ----------------------------------------------------------------------------


def run_model(steps: Steps, state, split: data.Split, kind: str, *,
              batch_size: int, max_length: int,
              name: str = "eval") -> dict[str, Any]:
  """Runs eval_step over every feature of the split.

  Returns {'pred' | 'start_logits' | 'end_logits' | 'logits': list of
  per-feature arrays trimmed to the feature's length, for the features this
  process holds (`split.share`, in order: all of them with one process),
  'loss_sum', 'count' (of the whole split)}.
  """
  share = split.share
  out: dict[str, list] = {}
  loss_sum = count = 0.0
  bar = progress.Progress(name, split.num_features)
  per_token = kind in ("qa", "tagging")
  for rows, batch in data.planned_batches(split, batch_size, max_length,
                                          shuffle=False, packed=True):
    # Every process gets the whole global batch's outputs and keeps those
    # of the features it holds.
    res = sharding.to_host(steps.eval(state, sharding.put_batch(
        batch, steps.mesh)))
    loss_sum += float(res.pop("loss_sum", 0.0))
    count += float(res.pop("count", 0.0))
    mine = [(row, int(i) - share.start) for row, i in enumerate(rows)
            if i in share]
    for key, value in res.items():
      slot = out.setdefault(key, [None] * len(share))
      for row, j in mine:  # Per-token outputs cut back to the feature.
        slot[j] = (value[row][:split.lengths[share.start + j]] if per_token
                   else value[row])
    bar.update(int((rows >= 0).sum()))
  return {**out, "loss_sum": loss_sum, "count": count}


def decode_share(kind: str, outputs: Mapping[str, Any], split: data.Split,
                 labels: Sequence[str] | None) -> list[Any]:
  """`decoding.decode_records` of the records of this process's share."""
  return decoding.decode_records(
      kind, outputs, split.features, split.share_records, labels,
      allow_no_answer=kind == "qa" and any(not r["answers"]
                                           for r in split.records))


def compute_metrics(kind: str, outputs: Mapping[str, Any], split: data.Split,
                    labels: Sequence[str] | None) -> dict[str, float]:
  """Task metrics of the whole split from run_model outputs (host side).

  Each process decodes the records it holds; the decoded records of all
  processes are gathered (a collective), so every process computes the
  same metrics over every record exactly once.
  """
  res: dict[str, float] = {}
  if outputs.get("count"):
    res["loss"] = outputs["loss_sum"] / outputs["count"]
  decoded = sharding.gather_objects(decode_share(kind, outputs, split,
                                                 labels))
  recs = split.records
  if len(decoded) != len(recs):
    raise RuntimeError(f"{len(decoded)} records decoded, {len(recs)} read")
  if kind == "classification":
    pred, gold = np.asarray(decoded, np.int64).reshape(-1, 2).T
    cm = metrics_lib.confusion_matrix(pred, gold, len(labels))
    res.update(metrics_lib.classification_metrics(cm))
  elif kind == "regression":
    pairs = np.asarray(decoded, np.float64).reshape(-1, 2)
    res.update(metrics_lib.regression_metrics(
        pairs[:, 0].astype(np.float32), pairs[:, 1]))
  elif kind == "qa":
    ids = [decoding.record_id(r, i) for i, r in enumerate(recs)]
    twice = [i for i, c in collections.Counter(ids).items() if c > 1]
    if twice:
      raise DataError(f"QA record id {twice[0]!r} occurs twice")
    preds = dict(zip(ids, decoded))
    refs = {i: [a["text"] for a in r["answers"]] for i, r in zip(ids, recs)}
    res.update(metrics_lib.squad_metrics(preds, refs))
  else:
    res.update(metrics_lib.tagging_metrics(decoded,
                                           [r["tags"] for r in recs]))
  return {k: float(v) for k, v in res.items()}


# ----------------------------------------------------------------------------
# The training loop.
# ----------------------------------------------------------------------------


class NonFiniteError(UserError):
  """Training reached a non-finite loss, gradient or weight."""


@dataclasses.dataclass(frozen=True)
class LoopSettings:
  """The settings the epoch loop reads (unpacked from the run's config)."""

  batch_size: int
  max_length: int
  num_epochs: int
  seed: int
  learning_rate: float
  save_latest: bool
  checkpoint_every_steps: int

  @classmethod
  def from_config(cls, config: ml_collections.ConfigDict) -> "LoopSettings":
    return cls(config.batch_size, config.max_length, config.num_epochs,
               config.seed, config.learning_rate, bool(config.save_latest),
               config.checkpoint_every_steps)


@dataclasses.dataclass
class _Loop:
  """What the steps of a run share (see `train_and_evaluate`)."""

  settings: LoopSettings
  workdir: str
  task: tasks_lib.Task
  steps: Steps
  mesh: Any
  train: data.Split
  steps_per_epoch: int
  progress: progress.Progress
  key: jax.Array
  schedule: Mapping[str, jax.Array]


def _add_step_loss(loss: list[float], step: int, m: Mapping[str, Any],
                   epoch: int, loop: _Loop) -> None:
  """Adds one step's loss sums (read from the device) to `loss`; stops at
  a non-finite loss or gradient norm."""
  total, count = float(m["loss_sum"]), float(m["count"])
  norm = float(m["grad_norm"])
  if not (math.isfinite(total) and math.isfinite(norm)):
    _stop(loop, step, epoch, f"the training loss is {total / max(count, 1):g} "
          f"and the gradient norm {norm:g}")
  loss[0] += total
  loss[1] += count


@jax.jit
def _all_finite(tree: Any) -> jax.Array:
  leaves = [jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(tree)
            if jnp.issubdtype(x.dtype, jnp.floating)]
  return jnp.all(jnp.stack(leaves)) if leaves else jnp.bool_(True)


def _check_weights(loop: _Loop, state: nnx.State, step: int, epoch: int):
  if not bool(_all_finite(state[0])):
    _stop(loop, step, epoch, "the model weights are not finite")


def _stop(loop: _Loop, step: int, epoch: int, what: str):
  c = loop.settings
  raise NonFiniteError(
      f"step {step} (epoch {epoch + 1}/{c.num_epochs}) of {loop.task.name}: "
      f"{what}; stopped before saving anything of this epoch (earlier "
      f"checkpoints in {loop.workdir} are kept); try a lower "
      f"config.learning_rate (now {c.learning_rate:g}) or check the "
      "training data")


def train_epoch(loop: _Loop, state: nnx.State, run: runs.RunState, epoch: int
                ) -> tuple[nnx.State, float]:
  """Trains the (rest of the) epoch; returns the state and its train loss.

  Each step's loss is read after the next step is dispatched, so the check
  for non-finite values does not stall the device.
  """
  config, spe = loop.settings, loop.steps_per_epoch
  loss = list(run.epoch_loss) if run.step > epoch * spe else [0.0, 0.0]
  pending = None
  done = max(run.step - epoch * spe, 0)  # Trained before a restart.
  for batch in data.global_batches(
      loop.train, config.batch_size, config.max_length, shuffle=True,
      seed=config.seed, epoch=epoch, skip=done):
    state, m = loop.steps.train(state, sharding.put_batch(batch, loop.mesh),
                                jax.random.fold_in(loop.key, run.step),
                                loop.schedule)
    run.step += 1
    if pending is not None:
      _add_step_loss(loss, *pending, epoch, loop)
    pending = (run.step, m)
    loop.progress.update(config.batch_size)
    if (config.save_latest and config.checkpoint_every_steps and
        run.step % config.checkpoint_every_steps == 0 and run.step % spe):
      _add_step_loss(loss, *pending, epoch, loop)
      pending = None
      _check_weights(loop, state, run.step, epoch)
      run.epoch_loss = (loss[0], loss[1])
      checkpoint.save(loop.workdir, checkpoint.LATEST, run.step, state,
                      run.meta())
  if pending is not None:
    _add_step_loss(loss, *pending, epoch, loop)
  _check_weights(loop, state, run.step, epoch)
  return state, loss[0] / max(loss[1], 1.0)


def end_epoch(loop: _Loop, state: nnx.State, run: runs.RunState,
              result: dict[str, Any], held: nnx.State | None, last: bool
              ) -> nnx.State | None:
  """Records an evaluated epoch; returns the best model still to be written.

  With save_latest: the latest checkpoint first (it holds the best model
  too), then the best model, then metrics.json; `resume` repairs a kill
  between any two of these. Without, a killed run starts over, so the best
  model is written once, when the run ends: until then it is held in memory
  (`held`, a copy: the train step donates `state`).
  """
  run.history.append(result)
  metric = loop.task.metric
  improved = not run.best or result[metric] > run.best[metric]
  if improved:
    run.best = dict(result)
  run.epoch_loss = (0.0, 0.0)
  if loop.settings.save_latest:
    checkpoint.save(loop.workdir, checkpoint.LATEST, run.step, state,
                    run.meta())
    if improved:
      checkpoint.save(loop.workdir, checkpoint.BEST, run.step, state[0],
                      {"step": run.step, "metrics": result})
  elif improved:
    held = state[0] if last else jax.tree.map(lambda x: x.copy(), state[0])
  runs.write_metrics(loop.workdir, loop.task, run)
  return held


def train_and_evaluate(config: ml_collections.ConfigDict,
                       workdir: str) -> dict[str, Any]:
  """Fine-tunes on config.task; returns the final and best metrics.

  Writes into `workdir`: identity.json (first), task.json, metrics.json
  (one entry per epoch), checkpoints/ (latest, for resuming) and best/
  (best validation metric). Resumes a run of the same identity (a finished
  one is returned as it is); a run of another identity is a ConfigError,
  or with config.overwrite is discarded and trained anew.
  """
  if not workdir:
    raise ConfigError("the train stage needs --workdir")
  validate.check_config(config)
  task = tasks_lib.get_task(config.task)
  spec = encoders.spec_from_config(config)
  train_used, train_records, val_used = runs.used_records(config, task)
  checkpoint.claim(workdir, runs.run_identity(config, task, spec, train_used,
                                              val_used), config.overwrite)
  done = runs.finished_summary(workdir, config.num_epochs)
  if done is not None:
    logging.info("%s: finished run of %s", workdir, task.name)
    checkpoint.remove_temporaries(workdir)
    checkpoint.keep_only(workdir, checkpoint.BEST, done["best"]["step"])
    sharding.on_writer(lambda: files.write_json(
        os.path.join(workdir, checkpoint.METRICS), done))
    return done
  tokenizer = input_pipeline.load_tokenizer(spec.tokenizer_dir)
  labels = data.label_names(task, train_records)
  window = data.Window.from_config(config)
  train = data.load_split(task, "train", tokenizer, labels, window,
                          records=train_used)
  val = data.load_split(task, config.eval_split, tokenizer, labels, window,
                        records=val_used)
  progress.say(f"fine-tuning on {task.name} ({task.kind}): "
               f"{len(train.records)} train examples, {config.num_epochs} "
               f"epochs, evaluated on {len(val.records)} "
               f"{config.eval_split} examples")

  mesh = sharding.make_mesh(config.num_devices)
  sharding.check_batch_size(config.batch_size, mesh, "batch_size")
  sharding.check_batch_size(config.eval_batch_size, mesh, "eval_batch_size")
  steps_per_epoch = data.num_batches(train, config.batch_size,
                                     config.max_length)
  total_steps = steps_per_epoch * config.num_epochs
  model = encoders.create_model(spec, task.kind, len(labels or ()),
                                seed=config.seed, dtype=config.dtype,
                                init_from=config.init_from)
  optimizer = nnx.Optimizer(
      model, optimizer_lib.create_optimizer(
          **optimizer_lib.optimizer_settings(config)), wrt=nnx.Param)
  info = runs.task_info(config, task, labels, spec)
  sharding.on_writer(lambda: files.write_json(
      os.path.join(workdir, checkpoint.TASK_INFO), info))
  state, run = runs.resume(workdir, task, nnx.state((model, optimizer)),
                           save_latest=config.save_latest)
  settings = LoopSettings.from_config(config)
  loop = _Loop(settings, workdir, task,
               steps_for(model, task.kind, mesh, optimizer), mesh, train,
               steps_per_epoch,
               progress.Progress("train", total_steps * config.batch_size),
               jax.random.key(config.seed),
               sharding.put_replicated(optimizer_lib.schedule_args(
                   total_steps, config.learning_rate,
                   config.warmup_proportion), mesh))
  loop.progress.done = run.step * config.batch_size
  state = sharding.put_replicated(state, mesh)
  held = None  # The best model not written yet (without save_latest).
  for epoch in range(run.step // max(steps_per_epoch, 1), config.num_epochs):
    state, train_loss = train_epoch(loop, state, run, epoch)
    outputs = run_model(loop.steps, state[0], val, task.kind,
                        batch_size=config.eval_batch_size,
                        max_length=config.max_length)
    result = compute_metrics(task.kind, outputs, val, labels)
    result.update(epoch=epoch + 1, step=run.step, train_loss=train_loss)
    progress.say(f"epoch {epoch + 1}/{config.num_epochs}: {task.metric} "
                 f"{result[task.metric]:.4f}, train loss {train_loss:.4f}")
    logging.info("epoch %d/%d: %s", epoch + 1, config.num_epochs,
                 " ".join(f"{k} {v:.4f}" for k, v in result.items()
                          if isinstance(v, float)))
    held = end_epoch(loop, state, run, result, held,
                     last=epoch + 1 == config.num_epochs)
  if held is not None:
    checkpoint.save(workdir, checkpoint.BEST, run.best["step"], held,
                    {"step": run.best["step"], "metrics": run.best})
  return runs.write_metrics(workdir, task, run, final=True)


def evaluate_run(workdir: str, split: str, *, data_dir: str | None = None,
                 window: data.Window | None = None, batch_size: int = 64,
                 max_examples: int = 0, num_devices: int = -1,
                 dtype: str = "float32") -> dict[str, float]:
  """Metrics of the best checkpoint of the run in `workdir` on `split`.

  The run's own max_length is used; `window` gives the QA stride and query
  cut (default: scaled to it).
  """
  model, info, tokenizer = encoders.load_finetuned(workdir, dtype=dtype)
  task = tasks_lib.get_task(info["task"])
  labels = info["labels"]
  window = dataclasses.replace(window or data.Window(info["max_length"]),
                               max_length=info["max_length"])
  split_data = data.load_split(task, split, tokenizer, labels, window,
                               data_dir=data_dir, max_examples=max_examples,
                               seed=0)
  mesh = sharding.make_mesh(num_devices)
  steps = steps_for(model, info["kind"], mesh)
  outputs = run_model(steps, sharding.put_replicated(nnx.state(model), mesh),
                      split_data, info["kind"], batch_size=batch_size,
                      max_length=window.max_length, name=split)
  return compute_metrics(info["kind"], outputs, split_data, labels)
