"""Fine-tuning and evaluation: optimizer, jit-compiled steps, the epoch loop.

`train_and_evaluate(config, workdir)` fine-tunes BERT on one task, evaluates
on the validation split after every epoch, keeps the latest and the best
checkpoint (`taskemb_jax.checkpoint`) and resumes from the latest one when
restarted. The steps are top-level functions jit-compiled with the model
state replicated and the batch split over the mesh's ``data`` axis.

A run is safe to kill at any instant: at an epoch end the latest checkpoint
is saved first, then the best model, then metrics.json, and `resume` brings
the workdir back to its latest checkpoint whatever was left half done. The
workdir records the run's identity (`run_identity`) before anything else and
resumes or reuses only a run of the same identity. Training stops at the
first non-finite loss, gradient norm or weight, before anything of that
epoch is saved.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
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
from taskemb_jax import files
from taskemb_jax import heads
from taskemb_jax import input_pipeline
from taskemb_jax import metrics as metrics_lib
from taskemb_jax import pretrained
from taskemb_jax import sharding
from taskemb_jax import tasks as tasks_lib
from taskemb_jax import validate
from taskemb_jax.errors import ConfigError, UserError
from taskemb_jax.model import PRESETS, BertConfig
from taskemb_jax.progress import Progress

DTYPES = {name: getattr(jnp, name) for name in validate.DTYPES}


# ----------------------------------------------------------------------------
# Model and optimizer.
# ----------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class ModelSpec:
  """Where the encoder comes from: sizes, optional weights, tokenizer."""

  config: BertConfig
  weights_dir: str | None  # HF folder with pretrained weights; None = random.
  tokenizer_dir: str


def model_spec(config: ml_collections.ConfigDict) -> ModelSpec:
  """Resolves config.model / config.tokenizer.

  config.model: a preset of random weights ('tiny', 'base', 'large'), a
  packaged pretrained preset ('minilm-l6'), a local Hugging Face folder or a
  hub name. config.tokenizer: '' = the model's own (random presets use the
  'minilm-l6' uncased WordPiece vocabulary).
  """
  name = config.model
  if name in PRESETS and name not in pretrained.PACKAGED:
    cfg, weights = PRESETS[name], None
    tok = config.tokenizer or pretrained.resolve_model_dir("minilm-l6")
  else:
    weights = pretrained.resolve_model_dir(name)
    cfg = pretrained.read_config(weights)
    tok = config.tokenizer or weights
  validate.check_max_length(config, cfg)
  if config.get("dropout", -1.0) >= 0:
    cfg = cfg.replace(hidden_dropout_prob=config.dropout,
                      attention_probs_dropout_prob=config.dropout)
  if os.path.isdir(tok) is False:
    tok = pretrained.resolve_model_dir(tok)
  return ModelSpec(cfg, weights, tok)


def create_model(spec: ModelSpec, kind: str, num_labels: int, *, seed: int,
                 dtype: str = "float32",
                 init_from: str = "") -> heads.TaskModel:
  """A TaskModel with pretrained encoder weights (or random) and a fresh head.

  `init_from`: the workdir of an earlier fine-tuning run; its best encoder
  (not its head) replaces the pretrained one (intermediate-task transfer).
  """
  if dtype not in DTYPES:
    raise ConfigError(f"config.dtype={dtype!r}; use one of {sorted(DTYPES)}")
  model = heads.TaskModel(spec.config, kind, num_labels, dtype=DTYPES[dtype],
                          rngs=nnx.Rngs(seed))
  if init_from:
    params, _ = checkpoint.restore(init_from, checkpoint.BEST)
    state = nnx.state(model, nnx.Param)
    pure = nnx.to_pure_dict(state)
    src = params["bert"]
    if jax.tree.map(np.shape, src) != jax.tree.map(np.shape, pure["bert"]):
      raise ConfigError(f"config.init_from={init_from!r}: its encoder has "
                        "other sizes than config.model")
    pure["bert"] = src
    nnx.replace_by_pure_dict(state, pure)
    nnx.update(model, state)
  elif spec.weights_dir:
    missing = pretrained.load_encoder(model, spec.weights_dir)
    if missing:
      logging.warning("not in %s, left at random init: %s", spec.weights_dir,
                      ", ".join(missing))
  return model


def decay_mask(params: Any) -> Any:
  """True for weights that get weight decay: kernels and embeddings.

  Biases and LayerNorm parameters are not decayed (as in BERT).
  """
  def leaf(path, _):
    return getattr(path[-1], "key", None) in ("kernel", "embedding")
  return jax.tree_util.tree_map_with_path(leaf, params)


def create_optimizer(config: ml_collections.ConfigDict,
                     num_train_steps: int) -> optax.GradientTransformation:
  """AdamW with linear warm-up and linear decay to 0, global-norm clipping.

  With config.freeze_encoder only the head is trained. Equal settings give
  the same (cached) object, so runs with equal settings share compiled steps.
  """
  return _optimizer(config.learning_rate, config.warmup_proportion,
                    num_train_steps, config.weight_decay, config.max_grad_norm,
                    config.adam_epsilon,
                    bool(config.get("freeze_encoder", False)))


@functools.lru_cache(maxsize=32)
def _optimizer(learning_rate: float, warmup_proportion: float,
               num_train_steps: int, weight_decay: float, max_grad_norm: float,
               adam_epsilon: float, freeze_encoder: bool
               ) -> optax.GradientTransformation:
  warmup = int(warmup_proportion * num_train_steps)
  schedule = optax.join_schedules(
      [optax.linear_schedule(0.0, learning_rate, max(warmup, 1)),
       optax.linear_schedule(learning_rate, 0.0,
                             max(num_train_steps - warmup, 1))], [warmup])
  tx = optax.chain(
      optax.clip_by_global_norm(max_grad_norm),
      optax.adamw(schedule, b1=0.9, b2=0.999, eps=adam_epsilon,
                  weight_decay=weight_decay, mask=decay_mask))
  if freeze_encoder:
    # Train the head only (TaskEmb's 'head' mode): encoder updates are zero.
    def label(params):
      return jax.tree_util.tree_map_with_path(
          lambda path, _: ("frozen" if getattr(path[0], "key", None) == "bert"
                           else "train"), params)
    tx = optax.multi_transform({"train": tx, "frozen": optax.set_to_zero()},
                               label)
  return tx


# ----------------------------------------------------------------------------
# Steps.
# ----------------------------------------------------------------------------


def train_step(graphdef: nnx.GraphDef, state: nnx.State,
               batch: Mapping[str, jax.Array], dropout_key: jax.Array,
               kind: str) -> tuple[nnx.State, dict[str, jax.Array]]:
  """One optimizer step on a global batch.

  Args:
    graphdef, state: `nnx.split((model, optimizer))`.
    batch: input_pipeline batch, arrays [batch, ...] sharded over ``data``.
    dropout_key: the step's dropout randomness.
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
  optimizer.update(model, grads)
  return nnx.state((model, optimizer)), {
      "loss_sum": total, "count": count, "grad_norm": optax.global_norm(grads)}


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


_STEPS_CACHE: dict[Any, "Steps"] = {}


def steps_for(model: nnx.Module, kind: str, mesh,
              optimizer: nnx.Optimizer | None = None) -> "Steps":
  """`Steps` of this model structure, reused across runs with equal
  structure, optimizer settings and mesh (no retracing or recompiling)."""
  key = (nnx.graphdef(model if optimizer is None else (model, optimizer)),
         kind, mesh)
  if key not in _STEPS_CACHE:
    _STEPS_CACHE[key] = Steps(model, kind, mesh, optimizer)
  return _STEPS_CACHE[key]


class Steps:
  """The jit-compiled train and eval steps of one model on one mesh.

  `train(state, batch, key)` takes the state of `nnx.split((model,
  optimizer))` (donated); `eval(model_state, batch)` that of
  `nnx.split(model)`.
  """

  def __init__(self, model: nnx.Module, kind: str, mesh,
               optimizer: nnx.Optimizer | None = None):
    self.mesh = mesh
    repl = sharding.replicated(mesh)
    data = sharding.data_sharding(mesh)
    model_def = nnx.graphdef(model)
    self.eval = jax.jit(lambda s, b: eval_step(model_def, s, b, kind),
                        in_shardings=(repl, data))
    if optimizer is not None:
      train_def = nnx.graphdef((model, optimizer))
      self.train = jax.jit(
          lambda s, b, k: train_step(train_def, s, b, k, kind),
          in_shardings=(repl, data, repl), out_shardings=(repl, repl),
          donate_argnums=(0,))


# ----------------------------------------------------------------------------
# Data.
# ----------------------------------------------------------------------------


@dataclasses.dataclass
class Split:
  """One split of a task, tokenized: records, features and label names."""

  records: list[dict]
  features: dict[str, list]


def subsample(records: list[dict], n: int, seed: int) -> list[dict]:
  """`n` records drawn without replacement with `seed` (all if n <= 0)."""
  if n <= 0 or n >= len(records):
    return records
  idx = np.sort(np.random.default_rng(seed).choice(len(records), n,
                                                   replace=False))
  return [records[i] for i in idx]


def label_names(task: tasks_lib.Task, train_records: list[dict]
                ) -> tuple[str, ...] | None:
  tasks_lib.check_trainable(task, train_records)
  if task.kind in ("regression", "qa"):
    return None
  return task.labels or input_pipeline.label_vocabulary(task.kind,
                                                        train_records)


def load_split(task: tasks_lib.Task, split: str, config, tokenizer,
               labels: Sequence[str] | None, *, max_examples: int = 0,
               seed: int = 0, records: list[dict] | None = None) -> Split:
  """Loads (or takes) records, subsamples them and tokenizes them."""
  if records is None:
    records = task.load(split, config.data_dir or None)
  records = subsample(records, max_examples, seed)
  label_to_id = {n: i for i, n in enumerate(labels)} if labels else None
  stride, query = qa_window(config)
  features = input_pipeline.encode(
      task.kind, records, tokenizer, max_length=config.max_length,
      label_to_id=label_to_id, doc_stride=stride, max_query_length=query)
  return Split(records, features)


def qa_window(config) -> tuple[int, int]:
  """(doc_stride, max_query_length); -1 in the config = scaled to max_length.

  For max_length 384 the automatic values are the paper's 128 and 64.
  """
  query = config.max_query_length
  if query < 0:
    query = min(64, config.max_length * 3 // 8)
  stride = config.doc_stride
  if stride < 0:
    stride = min(128, config.max_length // 3)
  return stride, query


def global_batches(split: Split, batch_size: int, config, *, shuffle: bool,
                   seed: int = 0, epoch: int = 0):
  """This process's rows of every global batch (see input_pipeline.batches)."""
  return input_pipeline.batches(
      split.features, batch_size,
      buckets=input_pipeline.bucket_lengths(config.max_length),
      shuffle=shuffle, seed=seed, epoch=epoch,
      num_shards=jax.process_count(), shard_index=jax.process_index())


# ----------------------------------------------------------------------------
# Evaluation.
# ----------------------------------------------------------------------------


def run_model(steps: Steps, state, split: Split, config, kind: str,
              name: str = "eval") -> dict[str, Any]:
  """Runs eval_step over every feature; outputs in feature order.

  Returns {'pred' | 'start_logits' | 'end_logits' | 'logits': list of
  per-feature arrays trimmed to the feature's length, 'loss_sum', 'count'}.
  """
  n = len(split.features["input_ids"])
  lengths = [len(x) for x in split.features["input_ids"]]
  out: dict[str, list] = {}
  loss_sum = count = 0.0
  progress = Progress(name, n)
  per_token = kind in ("qa", "tagging")
  for batch in global_batches(split, config.eval_batch_size, config,
                              shuffle=False):
    res = sharding.to_host(steps.eval(state, sharding.put_batch(
        batch, steps.mesh)))
    index = batch["index"]
    if jax.process_count() > 1:  # The rows of all processes, in order.
      index = sharding.to_host(sharding.put_batch({"index": index},
                                                  steps.mesh))["index"]
    loss_sum += float(res.pop("loss_sum", 0.0))
    count += float(res.pop("count", 0.0))
    for key, value in res.items():
      slot = out.setdefault(key, [None] * n)
      for row, i in enumerate(index):
        if i >= 0:  # Per-token outputs are cut back to the feature's length.
          slot[i] = value[row][:lengths[i]] if per_token else value[row]
    progress.update(int((index >= 0).sum()))
  return {**out, "loss_sum": loss_sum, "count": count}


def compute_metrics(kind: str, outputs: Mapping[str, Any], split: Split,
                    labels: Sequence[str] | None) -> dict[str, float]:
  """Task metrics from run_model outputs (host side)."""
  res: dict[str, float] = {}
  if outputs.get("count"):
    res["loss"] = outputs["loss_sum"] / outputs["count"]
  feats, recs = split.features, split.records
  if kind == "classification":
    gold = np.asarray(feats["label"])
    cm = metrics_lib.confusion_matrix(np.asarray(outputs["pred"]), gold,
                                      len(labels))
    res.update(metrics_lib.classification_metrics(cm))
  elif kind == "regression":
    res.update(metrics_lib.regression_metrics(
        np.asarray(outputs["pred"]), np.asarray(feats["label"])))
  elif kind == "qa":
    answers = input_pipeline.postprocess_qa(
        outputs["start_logits"], outputs["end_logits"], feats, recs,
        allow_no_answer=any(not r["answers"] for r in recs))
    preds = {rid: a["text"] for rid, a in answers.items()}
    refs = {r["id"]: [a["text"] for a in r["answers"]] for r in recs}
    res.update(metrics_lib.squad_metrics(preds, refs))
  else:
    pred_tags = input_pipeline.decode_tags(outputs["pred"], feats, recs,
                                           list(labels))
    res.update(metrics_lib.tagging_metrics(pred_tags,
                                           [r["tags"] for r in recs]))
  return {k: float(v) for k, v in res.items()}


# ----------------------------------------------------------------------------
# The identity of a run.
# ----------------------------------------------------------------------------


def _task_info(config, task, labels, spec: ModelSpec) -> dict[str, Any]:
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
  train = subsample(all_train, config.train_examples, config.data_seed)
  val = subsample(task.load(config.eval_split, config.data_dir or None),
                  config.max_eval_examples, 0)
  return train, all_train, val


def run_identity(config, task: tasks_lib.Task, spec: ModelSpec,
                 train_records: list[dict], eval_records: list[dict]
                 ) -> dict[str, Any]:
  """What a run computes: equal identities give equal results.

  The task, fingerprints of the records trained and evaluated on (after
  subsampling), of the base model's weights (random presets: of their
  sizes) and tokenizer, of the run `init_from` names, and `run_settings`.
  """
  if spec.weights_dir:
    weights = checkpoint.file_fingerprint(spec.weights_dir,
                                          ("config.json", "model.safetensors"))
  else:
    weights = "random-" + hashlib.sha256(
        repr(spec.config).encode()).hexdigest()[:12]
  return {
      "task": task.name,
      "train_data": checkpoint.records_fingerprint(train_records),
      "eval_data": checkpoint.records_fingerprint(eval_records),
      "base_model": {"name": config.model, "weights": weights,
                     "tokenizer": checkpoint.file_fingerprint(
                         spec.tokenizer_dir, pretrained.TOKENIZER_FILES[:3])},
      "init_from_run": (checkpoint.identity_fingerprint(config.init_from)
                        or "unrecorded") if config.init_from else "",
      "settings": run_settings(config),
  }


def config_identity(config: ml_collections.ConfigDict) -> dict[str, Any]:
  """`run_identity` of the run `config` describes (loads its data)."""
  task = tasks_lib.get_task(config.task)
  train, _, val = used_records(config, task)
  return run_identity(config, task, model_spec(config), train, val)


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


# ----------------------------------------------------------------------------
# The training loop.
# ----------------------------------------------------------------------------


class NonFiniteError(UserError):
  """Training reached a non-finite loss, gradient or weight."""


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


@dataclasses.dataclass
class _Loop:
  """What the steps of a run share (see `train_and_evaluate`)."""

  config: ml_collections.ConfigDict
  workdir: str
  task: tasks_lib.Task
  steps: Steps
  mesh: Any
  train: Split
  steps_per_epoch: int
  progress: Progress
  key: jax.Array


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


def resume(workdir: str, config, task: tasks_lib.Task, state: nnx.State
           ) -> tuple[nnx.State, RunState]:
  """Restores the latest checkpoint into `state` and makes the workdir agree
  with it; without one (or with save_latest off) starts over.

  Whatever instant a run was killed at, the workdir is brought to the state
  of its latest checkpoint: temporaries removed, a best model of a later
  step (the killed future) removed, a best model saved with the latest
  checkpoint but not yet on its own re-saved, metrics.json rewritten.
  """
  checkpoint.remove_temporaries(workdir)
  step = checkpoint.latest_step(workdir) if config.save_latest else None
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
  _write_metrics(workdir, task, run)
  logging.info("resumed from %s at step %d", workdir, run.step)
  return state, run


def _write_metrics(workdir: str, task: tasks_lib.Task, run: RunState,
                   final: bool = False) -> dict[str, Any]:
  summary = {"task": task.name, "metric": task.metric, "best": run.best}
  if final:
    summary["final"] = run.history[-1] if run.history else {}
  summary["history"] = run.history
  files.write_json(os.path.join(workdir, checkpoint.METRICS), summary)
  return summary


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
  c = loop.config
  raise NonFiniteError(
      f"step {step} (epoch {epoch + 1}/{c.num_epochs}) of {loop.task.name}: "
      f"{what}; stopped before saving anything of this epoch (earlier "
      f"checkpoints in {loop.workdir} are kept); try a lower "
      f"config.learning_rate (now {c.learning_rate:g}) or check the "
      "training data")


def train_epoch(loop: _Loop, state: nnx.State, run: RunState, epoch: int
                ) -> tuple[nnx.State, float]:
  """Trains the (rest of the) epoch; returns the state and its train loss.

  Each step's loss is read after the next step is dispatched, so the check
  for non-finite values does not stall the device.
  """
  config, spe = loop.config, loop.steps_per_epoch
  loss = list(run.epoch_loss) if run.step > epoch * spe else [0.0, 0.0]
  pending = None
  for i, batch in enumerate(global_batches(
      loop.train, config.batch_size, config, shuffle=True, seed=config.seed,
      epoch=epoch)):
    if epoch * spe + i < run.step:
      continue  # Already trained before a restart.
    state, m = loop.steps.train(state, sharding.put_batch(batch, loop.mesh),
                                jax.random.fold_in(loop.key, run.step))
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


def end_epoch(loop: _Loop, state: nnx.State, run: RunState,
              result: dict[str, Any]) -> None:
  """Records an evaluated epoch: the latest checkpoint first (it holds the
  best model too), then the best model, then metrics.json; `resume` repairs
  a kill between any two of these."""
  run.history.append(result)
  metric = loop.task.metric
  improved = not run.best or result[metric] > run.best[metric]
  if improved:
    run.best = dict(result)
  run.epoch_loss = (0.0, 0.0)
  if loop.config.save_latest:
    checkpoint.save(loop.workdir, checkpoint.LATEST, run.step, state,
                    run.meta())
  if improved:
    checkpoint.save(loop.workdir, checkpoint.BEST, run.step, state[0],
                    {"step": run.step, "metrics": result})
  _write_metrics(loop.workdir, loop.task, run)


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
  spec = model_spec(config)
  train_used, train_records, val_used = used_records(config, task)
  checkpoint.claim(workdir, run_identity(config, task, spec, train_used,
                                         val_used), config.overwrite)
  done = finished_summary(workdir, config.num_epochs)
  if done is not None:
    logging.info("%s: finished run of %s", workdir, task.name)
    checkpoint.remove_temporaries(workdir)
    checkpoint.keep_only(workdir, checkpoint.BEST, done["best"]["step"])
    files.write_json(os.path.join(workdir, checkpoint.METRICS), done)
    return done
  tokenizer = input_pipeline.load_tokenizer(spec.tokenizer_dir)
  labels = label_names(task, train_records)
  train = load_split(task, "train", config, tokenizer, labels,
                     records=train_used)
  val = load_split(task, config.eval_split, config, tokenizer, labels,
                   records=val_used)
  logging.info("task %s (%s): %d train records (%d features), %d %s records",
               task.name, task.kind, len(train.records),
               len(train.features["input_ids"]), len(val.records),
               config.eval_split)

  mesh = sharding.make_mesh(config.num_devices)
  sharding.check_batch_size(config.batch_size, mesh, "batch_size")
  sharding.check_batch_size(config.eval_batch_size, mesh, "eval_batch_size")
  buckets = input_pipeline.bucket_lengths(config.max_length)
  steps_per_epoch = input_pipeline.num_batches(train.features,
                                               config.batch_size, buckets)
  total_steps = steps_per_epoch * config.num_epochs
  model = create_model(spec, task.kind, len(labels or ()), seed=config.seed,
                       dtype=config.dtype, init_from=config.init_from)
  optimizer = nnx.Optimizer(model, create_optimizer(config, total_steps),
                            wrt=nnx.Param)
  files.write_json(os.path.join(workdir, checkpoint.TASK_INFO),
                   _task_info(config, task, labels, spec))
  state, run = resume(workdir, config, task, nnx.state((model, optimizer)))
  loop = _Loop(config, workdir, task, steps_for(model, task.kind, mesh,
                                                optimizer),
               mesh, train, steps_per_epoch,
               Progress("train", total_steps * config.batch_size),
               jax.random.key(config.seed))
  loop.progress.done = run.step * config.batch_size
  state = sharding.put_replicated(state, mesh)
  for epoch in range(run.step // max(steps_per_epoch, 1), config.num_epochs):
    state, train_loss = train_epoch(loop, state, run, epoch)
    outputs = run_model(loop.steps, state[0], val, config, task.kind)
    result = compute_metrics(task.kind, outputs, val, labels)
    result.update(epoch=epoch + 1, step=run.step, train_loss=train_loss)
    logging.info("epoch %d/%d: %s", epoch + 1, config.num_epochs,
                 " ".join(f"{k} {v:.4f}" for k, v in result.items()
                          if isinstance(v, float)))
    end_epoch(loop, state, run, result)
  return _write_metrics(workdir, task, run, final=True)


# ----------------------------------------------------------------------------
# Loading a fine-tuned run; prediction.
# ----------------------------------------------------------------------------


def evaluate_run(workdir: str, config: ml_collections.ConfigDict, split: str,
                 max_examples: int = 0) -> dict[str, float]:
  """Metrics of the best checkpoint of the run in `workdir` on `split`."""
  model, info, tokenizer = load_finetuned(workdir, dtype=config.dtype)
  task = tasks_lib.get_task(info["task"])
  labels = info["labels"]
  cfg = config.copy_and_resolve_references()
  with cfg.unlocked():
    cfg.max_length = info["max_length"]
  data = load_split(task, split, cfg, tokenizer, labels,
                    max_examples=max_examples, seed=0)
  mesh = sharding.make_mesh(config.num_devices)
  steps = steps_for(model, info["kind"], mesh)
  outputs = run_model(steps, sharding.put_replicated(nnx.state(model), mesh),
                      data, cfg, info["kind"], name=split)
  return compute_metrics(info["kind"], outputs, data, labels)


def load_finetuned(workdir: str, which: str = checkpoint.BEST,
                   dtype: str = "float32"):
  """(model, task info, tokenizer) of a training run's best checkpoint."""
  info = checkpoint.read_task_info(workdir)
  cfg = BertConfig(**info["bert_config"])
  labels = info["labels"]
  model = heads.TaskModel(cfg, info["kind"], len(labels or ()),
                          dtype=DTYPES[dtype], rngs=nnx.Rngs(0))
  state = nnx.state(model, nnx.Param)
  state, _ = checkpoint.restore(workdir, which, state)
  nnx.update(model, state)
  tokenizer = input_pipeline.load_tokenizer(info["tokenizer_dir"])
  return model, info, tokenizer


def predict(config: ml_collections.ConfigDict, workdir: str) -> str:
  """Writes per-example predictions of the run in `workdir` as JSON Lines.

  Input: config.predict_file (a file in a generic format of the run's kind)
  or else config.eval_split of config.task. Output: config.predict_output
  (default <workdir>/predictions.jsonl). Returns the output path.
  """
  model, info, tokenizer = load_finetuned(workdir, dtype=config.dtype)
  kind, labels = info["kind"], info["labels"]
  if config.predict_file:
    task = tasks_lib.local_file_task(config.predict_file, kind)
    records = task.load("test")
  else:
    task = tasks_lib.get_task(config.task or info["task"])
    records = task.load(config.eval_split, config.data_dir or None)
  cfg = config.copy_and_resolve_references()
  with cfg.unlocked():
    cfg.max_length = info["max_length"]
  has_labels = _records_have_labels(kind, records)
  split = load_split(task, "", cfg, tokenizer, labels,
                     records=records if has_labels else
                     _placeholder_labels(kind, records, labels))
  mesh = sharding.make_mesh(config.num_devices)
  state = nnx.state(model)
  steps = steps_for(model, kind, mesh)
  outputs = run_model(steps, sharding.put_replicated(state, mesh), split, cfg,
                      kind, name="predict")
  rows = _prediction_rows(kind, outputs, split, labels)
  out_path = config.predict_output or os.path.join(workdir,
                                                   "predictions.jsonl")
  files.write_text(out_path, "".join(files.to_json(row, indent=None) + "\n"
                                    for row in rows))
  if has_labels:
    m = compute_metrics(kind, outputs, split, labels)
    logging.info("metrics on the labelled input: %s", m)
  return out_path


def _records_have_labels(kind: str, records: list[dict]) -> bool:
  if kind == "qa":
    return True
  key = "tags" if kind == "tagging" else "label"
  return all(r.get(key) is not None for r in records)


def _placeholder_labels(kind: str, records: list[dict], labels) -> list[dict]:
  """Unlabelled records get a valid placeholder label (never reported)."""
  if kind == "tagging":
    return [dict(r, tags=[labels[0]] * len(r["tokens"])) for r in records]
  return [dict(r, label=labels[0] if labels else 0.0) for r in records]


def _prediction_rows(kind, outputs, split: Split, labels) -> list[dict]:
  recs, feats = split.records, split.features
  if kind == "classification":
    rows = []
    for i, r in enumerate(recs):
      logits = np.asarray(outputs["logits"][i], np.float64)
      p = np.exp(logits - logits.max())
      rows.append({"index": i, "label": labels[int(outputs["pred"][i])],
                   "logits": logits.round(6).tolist(),
                   "probabilities": (p / p.sum()).round(6).tolist()})
    return rows
  if kind == "regression":
    return [{"index": i, "prediction": float(outputs["pred"][i])}
            for i in range(len(recs))]
  if kind == "qa":
    answers = input_pipeline.postprocess_qa(
        outputs["start_logits"], outputs["end_logits"], feats, recs,
        allow_no_answer=True)
    return [{"id": r["id"], "answer": answers[r["id"]]["text"],
             "score": float(answers[r["id"]]["score"]),
             "null_score": float(answers[r["id"]]["null_score"])}
            for r in recs]
  tags = input_pipeline.decode_tags(outputs["pred"], feats, recs, labels)
  word_logits = _word_logits(outputs["logits"], feats, len(recs))
  return [{"index": i, "tokens": r["tokens"], "tags": tags[i],
           "logits": word_logits[i]} for i, r in enumerate(recs)]


def _word_logits(logits, features, n) -> list[list[list[float]]]:
  """Per record, the logits of each word's first sub-token (truncated: [])."""
  out: list[dict[int, list[float]]] = [dict() for _ in range(n)]
  for f, lg in enumerate(logits):
    rec = features["example_index"][f]
    seen = set()
    for t, w in enumerate(features["word_ids"][f]):
      if w is not None and w not in seen:
        seen.add(w)
        out[rec][w] = np.asarray(lg[t]).round(5).tolist()
  return [[d[w] for w in sorted(d)] for d in out]


def export(config: ml_collections.ConfigDict, workdir: str) -> str:
  """Writes the best model of the run in `workdir` as a Hugging Face folder."""
  model, info, _ = load_finetuned(workdir)
  out = config.export_dir or os.path.join(workdir, "hf_export")
  pretrained.export_hf(model, out, kind=info["kind"],
                       label_names=tuple(info["labels"] or ()),
                       tokenizer_dir=info["tokenizer_dir"],
                       config=BertConfig(**info["bert_config"]))
  logging.info("exported %s (%s) to %s", info["task"], info["kind"], out)
  return out
