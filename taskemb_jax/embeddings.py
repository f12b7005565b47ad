"""Task embeddings: TextEmb (averaged BERT states) and TaskEmb (Fisher).

**TextEmb** of a task: the pretrained encoder's last hidden states averaged
over each example's non-padding tokens ([CLS] and [SEP] included), then over
the examples (for QA, every window is an example). One vector [hidden].

**TaskEmb** of a task: run the model fine-tuned on the task deterministically
and, for every example i and component c with activation h ([tokens, d] or
[d]), average the squared gradient of the example's own loss L_i over its
non-padding tokens, then over the examples:

  F_c = (1/N) sum_i (1/|T_i|) sum_{t in T_i} (dL_i / dh_{i,t})^2.

Estimators (`estimator`):

* ``empirical`` (default): L_i with the gold labels (the empirical Fisher).
* ``sampled``: labels drawn from the model's predictive distribution,
  `num_samples` draws averaged (classification: softmax; regression:
  N(prediction, sigma^2); QA: start and end drawn independently; tagging:
  every labelled token) -- the "theoretical" Fisher.
* ``original``: the published PyTorch code's estimator, for comparison: per
  batch, the gradient of the batch-mean loss is summed over tokens and
  examples, squared and divided by the batch's token count; these are summed
  over batches and divided by the number of examples.

Because examples do not interact inside BERT, the gradient of sum_i L_i with
respect to a zero perturbation added at a component holds every example's
and token's own gradient: one backward pass per batch (`fisher_step`).
Parameter Fisher (``params/<name>``) needs true per-example gradients:
`jax.vmap(jax.grad(...))` over chunks of examples (`param_fisher_step`).
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any, Mapping, Sequence

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from absl import logging
from flax import nnx

from taskemb_jax import checkpoint
from taskemb_jax import heads
from taskemb_jax import input_pipeline
from taskemb_jax import library as library_lib
from taskemb_jax import pretrained
from taskemb_jax import recipe
from taskemb_jax import sharding
from taskemb_jax import tasks as tasks_lib
from taskemb_jax import train as train_lib
from taskemb_jax.errors import ConfigError, UserError
from taskemb_jax.model import component_names
from taskemb_jax.progress import Progress

Array = jax.Array
ESTIMATORS = ("empirical", "sampled", "original")
FINETUNE_MODES = ("full", "head", "none")


# ----------------------------------------------------------------------------
# Steps.
# ----------------------------------------------------------------------------


def textemb_step(graphdef: nnx.GraphDef, state: nnx.State,
                 batch: Mapping[str, Array]) -> dict[str, Array]:
  """Sum over the batch's examples of their mean last hidden state.

  Returns {'sum': [hidden] float32, 'count': number of real examples}.
  """
  model = nnx.merge(graphdef, state)
  out = model.bert(batch["input_ids"], batch["token_type_ids"],
                   batch["attention_mask"])
  mask = batch["attention_mask"].astype(jnp.float32)  # [batch, length]
  mean = (out.last_hidden_state.astype(jnp.float32) * mask[..., None]).sum(1)
  mean = mean / jnp.maximum(mask.sum(1, keepdims=True), 1.0)
  w = batch["weights"]
  return {"sum": (mean * w[:, None]).sum(0), "count": w.sum()}


def _zeros(batch: Mapping[str, Array], hidden: int,
           components: Sequence[str]) -> dict[str, Array]:
  b, t = batch["input_ids"].shape
  return {c: jnp.zeros((b, hidden) if c == "pooler" else (b, t, hidden),
                       jnp.float32) for c in components}


def sample_labels(kind: str, logits: Array, batch: Mapping[str, Array],
                  key: Array, sigma: float) -> dict[str, Array]:
  """Labels drawn from the model's predictive distribution (same keys)."""
  out = dict(batch)
  if kind == "classification":
    out["label"] = jax.random.categorical(key, logits).astype(jnp.int32)
  elif kind == "regression":
    out["label"] = logits[:, 0] + sigma * jax.random.normal(
        key, logits[:, 0].shape)
  elif kind == "qa":
    lg = heads.mask_padding(logits, batch["attention_mask"])
    ks, ke = jax.random.split(key)
    out["start_position"] = jax.random.categorical(ks, lg[..., 0]).astype(
        jnp.int32)
    out["end_position"] = jax.random.categorical(ke, lg[..., 1]).astype(
        jnp.int32)
  else:
    drawn = jax.random.categorical(key, logits).astype(jnp.int32)
    out["labels"] = jnp.where(batch["labels"] != heads.IGNORE, drawn,
                              heads.IGNORE)
  return out


def fisher_step(graphdef: nnx.GraphDef, state: nnx.State,
                batch: Mapping[str, Array], key: Array, *, kind: str,
                components: tuple[str, ...], estimator: str = "empirical",
                num_samples: int = 1, sigma: float = 0.25
                ) -> dict[str, Array]:
  """Fisher sums of one batch for every component, from one backward pass.

  Args:
    graphdef, state: `nnx.split(model)` of a TaskModel.
    batch: input_pipeline batch [batch, length] with labels and 'weights'.
    key: randomness of the sampled estimator.
  Returns:
    {component: [hidden] float32 sum over the batch's examples of the
    per-example Fisher (token-averaged), 'count': number of real examples}.
    With estimator='original', the per-batch value of the original code.
  """
  model = nnx.merge(graphdef, state)
  hidden = model.bert.cfg.hidden_size
  w = batch["weights"]
  mask = batch["attention_mask"].astype(jnp.float32)
  zeros = _zeros(batch, hidden, components)

  def total_loss(perturb, labelled):
    logits = model(labelled, perturb=perturb)
    return (heads.per_example_loss(kind, logits, labelled) * w).sum()

  if estimator == "original":
    def mean_loss(perturb):
      total, count = heads.batch_loss(kind, model(batch, perturb=perturb),
                                      batch)
      return total / jnp.maximum(count, 1.0)
    g = jax.grad(mean_loss)(zeros)
    tokens = jnp.maximum(mask.sum(), 1.0)
    out = {}
    for c in components:
      if c == "pooler":
        s = (g[c] * w[:, None]).sum(0)
      else:
        s = (g[c] * mask[..., None]).sum((0, 1))
      out[c] = jnp.square(s) / tokens
    return {**out, "count": w.sum()}

  if estimator == "empirical":
    sq = jax.tree.map(jnp.square, jax.grad(total_loss)(zeros, batch))
  elif estimator == "sampled":
    logits = jax.lax.stop_gradient(model(batch))

    def one_draw(acc, k):
      g = jax.grad(total_loss)(zeros, sample_labels(kind, logits, batch, k,
                                                     sigma))
      return jax.tree.map(lambda a, x: a + jnp.square(x), acc, g), None
    sq, _ = jax.lax.scan(one_draw, zeros, jax.random.split(key, num_samples))
    sq = jax.tree.map(lambda x: x / num_samples, sq)
  else:
    raise ValueError(f"unknown estimator {estimator!r}")
  return {**token_average(sq, mask, w), "count": w.sum()}


def token_average(sq: Mapping[str, Array], mask: Array,
                  w: Array) -> dict[str, Array]:
  """Per-example mean over non-padding tokens, summed over examples.

  sq: {component: [batch, length, hidden] or [batch, hidden]};
  mask: [batch, length]; w: [batch] example weights -> {component: [hidden]}.
  """
  ntok = jnp.maximum(mask.sum(1), 1.0)  # [batch]
  out = {}
  for c, x in sq.items():
    if x.ndim == 3:
      x = (x * mask[..., None]).sum(1) / ntok[:, None]
    out[c] = (x * w[:, None]).sum(0)
  return out


def param_fisher_step(graphdef: nnx.GraphDef, state: nnx.State,
                      batch: Mapping[str, Array], *, kind: str,
                      chunk: int) -> dict[str, Any]:
  """Per-example squared parameter gradients, summed over the batch.

  The batch is cut into chunks of `chunk` examples; within a chunk the
  per-example gradients come from `jax.vmap(jax.grad(loss_i))`, so memory
  is bounded by `chunk` copies of the gradient. Returns {'params': a pytree
  like the encoder's parameters, 'count'}.
  """
  model = nnx.merge(graphdef, state)
  gd, params, rest = nnx.split(model, nnx.Param, ...)

  def loss_i(p, example):
    m = nnx.merge(gd, p, rest)
    one = jax.tree.map(lambda x: x[None], example)
    return heads.per_example_loss(kind, m(one), one)[0]

  per_example = jax.vmap(jax.grad(loss_i), in_axes=(None, 0))
  b = batch["input_ids"].shape[0]
  if b % chunk:
    raise ConfigError(f"batch size {b} is not a multiple of the parameter "
                      f"Fisher chunk {chunk}")
  chunks = jax.tree.map(lambda x: x.reshape(b // chunk, chunk, *x.shape[1:]),
                        dict(batch))

  def body(acc, ex):
    g = per_example(params, ex)
    w = ex["weights"]
    return jax.tree.map(
        lambda a, x: a + (jnp.square(x) * w.reshape(-1, *[1] * (x.ndim - 1))
                          ).sum(0), acc, g), None
  zero = jax.tree.map(jnp.zeros_like, params)
  total, _ = jax.lax.scan(body, zero, chunks)
  return {"params": total, "count": batch["weights"].sum()}


def per_example_activation_grads(model: heads.TaskModel,
                                 batch: Mapping[str, Array],
                                 components: Sequence[str]) -> dict[str, Array]:
  """dL_i/dh for every example by `vmap` over single examples (for tests).

  Independent of the batched trick in `fisher_step`: each example is its own
  batch of one. Returns {component: [batch, length, hidden] or
  [batch, hidden]}.
  """
  hidden = model.bert.cfg.hidden_size
  kind = model.kind

  def grad_one(example):
    one = jax.tree.map(lambda x: x[None], example)
    zeros = _zeros(one, hidden, components)

    def loss(p):
      return heads.per_example_loss(kind, model(one, perturb=p), one)[0]
    return jax.tree.map(lambda x: x[0], jax.grad(loss)(zeros))
  return jax.vmap(grad_one)(dict(batch))


# ----------------------------------------------------------------------------
# Streaming over a dataset.
# ----------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class FisherOptions:
  """How TaskEmb is computed; recorded in the task library."""

  estimator: str = "empirical"
  num_samples: int = 1
  sigma: float = 0.25
  components: tuple[str, ...] = ()
  param_fisher: bool = False
  param_chunk: int = 8
  seed: int = 0


def compute_textemb(model: heads.TaskModel, split: train_lib.Split, config,
                    mesh) -> tuple[np.ndarray, int]:
  """TextEmb [hidden] of a tokenized split, and the number of examples."""
  state = sharding.put_replicated(nnx.state(model), mesh)
  graphdef = nnx.graphdef(model)
  step = jax.jit(lambda s, b: textemb_step(graphdef, s, b),
                 in_shardings=(sharding.replicated(mesh),
                               sharding.data_sharding(mesh)))
  total, count = None, 0.0
  progress = Progress("textemb", len(split.features["input_ids"]))
  for batch in train_lib.global_batches(split, config.eval_batch_size, config,
                                        shuffle=False):
    out = step(state, sharding.put_batch(batch, mesh))
    total = out["sum"] if total is None else total + out["sum"]
    count += float(out["count"])
    progress.update(int((batch["index"] >= 0).sum()))
  vec = np.asarray(sharding.to_host(total), np.float64) / max(count, 1.0)
  return _finite(vec.astype(np.float32), "textemb"), int(count)


def compute_taskemb(model: heads.TaskModel, split: train_lib.Split, config,
                    mesh, options: FisherOptions
                    ) -> tuple[dict[str, np.ndarray], int]:
  """TaskEmb {component: [hidden]} (plus params/<name> if asked) of a split."""
  kind = model.kind
  comps = options.components or tuple(component_names(
      model.bert.cfg, pooler=kind in ("classification", "regression")))
  graphdef = nnx.graphdef(model)
  state = sharding.put_replicated(nnx.state(model), mesh)
  repl, data = sharding.replicated(mesh), sharding.data_sharding(mesh)
  step = jax.jit(
      lambda s, b, k: fisher_step(graphdef, s, b, k, kind=kind,
                                  components=comps,
                                  estimator=options.estimator,
                                  num_samples=options.num_samples,
                                  sigma=options.sigma),
      in_shardings=(repl, data, repl))
  pstep = None
  if options.param_fisher:
    pstep = jax.jit(lambda s, b: param_fisher_step(
        graphdef, s, b, kind=kind, chunk=options.param_chunk),
                    in_shardings=(repl, data))
  sums: dict[str, Any] = {}
  count = 0.0
  key = jax.random.key(options.seed)
  progress = Progress("taskemb", len(split.features["input_ids"]))
  for i, batch in enumerate(train_lib.global_batches(
      split, config.eval_batch_size, config, shuffle=False)):
    dev_batch = sharding.put_batch(batch, mesh)
    out = step(state, dev_batch, jax.random.fold_in(key, i))
    count += float(out.pop("count"))
    if pstep is not None:
      p = pstep(state, dev_batch)["params"]
      out.update({f"params/{k}": v for k, v in
                  pretrained.flatten(nnx.to_pure_dict(p)).items()})
    for c, v in out.items():
      sums[c] = v if c not in sums else sums[c] + v
    progress.update(int((batch["index"] >= 0).sum()))
  result = {}
  for c, v in sums.items():
    arr = np.asarray(sharding.to_host(v), np.float64) / max(count, 1.0)
    result[c] = _finite(arr.astype(np.float32), f"taskemb component {c}")
  return result, int(count)


def _finite(x: np.ndarray, what: str) -> np.ndarray:
  if not np.all(np.isfinite(x)):
    raise FloatingPointError(
        f"{what}: {int((~np.isfinite(x)).sum())} non-finite values; refusing "
        "to store them (check the learning rate / the fine-tuned model)")
  return x


# ----------------------------------------------------------------------------
# Stages.
# ----------------------------------------------------------------------------


def _embed_split(config, task: tasks_lib.Task, tokenizer, labels,
                 records) -> train_lib.Split:
  """The training split used for embeddings (subset of embed.num_examples)."""
  return train_lib.load_split(task, "train", config, tokenizer, labels,
                              max_examples=config.embed.num_examples,
                              seed=config.embed.seed, records=records)


def base_fingerprints(spec: train_lib.ModelSpec) -> dict[str, str]:
  """Identity of the base model (weights + config) and of the tokenizer."""
  if spec.weights_dir:
    model_fp = pretrained.fingerprint(spec.weights_dir)
  else:
    import hashlib  # pylint: disable=import-outside-toplevel
    model_fp = "random-" + hashlib.sha256(
        repr(spec.config).encode()).hexdigest()[:12]
  tok_fp = pretrained.fingerprint(spec.tokenizer_dir,
                                  files=pretrained.TOKENIZER_FILES[:3])
  return {"model": model_fp, "tokenizer": tok_fp}


def textemb_stage(config: ml_collections.ConfigDict, workdir: str
                  ) -> np.ndarray:
  """Computes TextEmb of config.task and stores it in config.library."""
  del workdir
  task = tasks_lib.get_task(config.task)
  spec = train_lib.model_spec(config)
  tokenizer = input_pipeline.load_tokenizer(spec.tokenizer_dir)
  records = task.load("train", config.data_dir or None)
  labels = train_lib.label_names(task, records)
  split = _embed_split(config, task, tokenizer, labels, records)
  model = train_lib.create_model(spec, task.kind, len(labels or ()), seed=0,
                                 dtype=config.dtype)
  mesh = sharding.make_mesh(config.num_devices)
  vec, n = compute_textemb(model, split, config, mesh)
  options = {"max_length": config.max_length, "dtype": config.dtype,
             "num_examples": n, "seed": config.embed.seed}
  library_lib.add(config.library, task_entry(task, n, spec),
                  textemb=vec, textemb_options=options,
                  overwrite=config.overwrite)
  logging.info("TextEmb of %s (%d examples) added to %s", task.name, n,
               config.library)
  return vec


def task_entry(task: tasks_lib.Task, n: int,
               spec: train_lib.ModelSpec) -> dict[str, Any]:
  return {"name": task.name, "kind": task.kind, "family": task.family,
          "metric": task.metric, "size": task.size, "num_examples": n,
          "base": base_fingerprints(spec), "model": spec.weights_dir or "random"}


def fisher_options(config) -> FisherOptions:
  e = config.embed
  if e.estimator not in ESTIMATORS:
    raise ConfigError(f"config.embed.estimator={e.estimator!r}; use one of "
                      f"{ESTIMATORS}")
  comps = tuple(c for c in e.components.split(",") if c) \
      if e.components != "all" else ()
  return FisherOptions(estimator=e.estimator, num_samples=e.num_samples,
                       sigma=e.sigma, components=comps,
                       param_fisher=e.param_fisher, param_chunk=e.param_chunk,
                       seed=e.seed)


def finetuned_model(config, task, spec, workdir, records
                    ) -> tuple[heads.TaskModel, tuple[str, ...] | None]:
  """The model TaskEmb differentiates, per config.embed.finetune, and labels.

  'full': the best checkpoint of the fine-tuning run in config.embed.finetuned
  (default <workdir>/finetune), trained there first unless finished (and
  resumed if interrupted);
  'head': the same with the encoder frozen; 'none': the pretrained encoder
  with a random head.
  """
  mode = config.embed.finetune
  if mode not in FINETUNE_MODES:
    raise ConfigError(f"config.embed.finetune={mode!r}; use one of "
                      f"{FINETUNE_MODES}")
  if mode == "none":
    labels = train_lib.label_names(task, records)
    return train_lib.create_model(spec, task.kind, len(labels or ()),
                                  seed=config.seed, dtype=config.dtype), labels
  run_dir = config.embed.finetuned
  if not run_dir:
    if not workdir:
      raise ConfigError("TaskEmb with embed.finetune='full'|'head' needs "
                        "--workdir (to fine-tune into) or embed.finetuned")
    run_dir = os.path.join(workdir, "finetune")
  cfg = config.copy_and_resolve_references()
  with cfg.unlocked():
    cfg.freeze_encoder = mode == "head"
  if not train_lib.is_finished(run_dir, cfg):
    train_lib.train_and_evaluate(cfg, run_dir)
  model, info, _ = train_lib.load_finetuned(run_dir, dtype=config.dtype)
  if info["task"] != task.name:
    raise ConfigError(f"config.embed.finetuned={run_dir!r} was trained on "
                      f"{info['task']!r}, not {task.name!r}")
  return model, tuple(info["labels"]) if info["labels"] else None


def taskemb_stage(config: ml_collections.ConfigDict, workdir: str
                  ) -> dict[str, np.ndarray]:
  """Computes TaskEmb of config.task and stores it in config.library."""
  task = tasks_lib.get_task(config.task)
  spec = train_lib.model_spec(config)
  options = fisher_options(config)
  records = task.load("train", config.data_dir or None)
  model, labels = finetuned_model(config, task, spec, workdir, records)
  tokenizer = input_pipeline.load_tokenizer(spec.tokenizer_dir)
  split = _embed_split(config, task, tokenizer, labels, records)
  mesh = sharding.make_mesh(config.num_devices)
  emb, n = compute_taskemb(model, split, config, mesh, options)
  recorded = dataclasses.asdict(options)
  recorded.update(finetune=config.embed.finetune, max_length=config.max_length,
                  dtype=config.dtype, num_examples=n,
                  components=sorted(c for c in emb if not c.startswith(
                      "params/")))
  library_lib.add(config.library, task_entry(task, n, spec), taskemb=emb,
                  taskemb_options=recorded, overwrite=config.overwrite)
  logging.info("TaskEmb of %s (%d examples, %d components) added to %s",
               task.name, n, len(emb), config.library)
  return emb


def build_library_stage(config: ml_collections.ConfigDict,
                        workdir: str) -> list[str]:
  """Embeds every task of config.transfer.sources into config.library.

  Each task is fine-tuned exactly like a source of the transfer sweep
  (`recipe.run_config`: the class defaults, the sweep's overrides,
  transfer.source_examples examples, transfer.source_seed) into
  <workdir>/sources/<task>, so a sweep in the same workdir reuses these
  runs. Tasks already in the library are skipped (resumable) unless
  config.overwrite.
  """
  if not workdir:
    raise ConfigError("the build_library stage needs --workdir")
  names = [n for n in config.transfer.sources.split(",") if n]
  if not names:
    raise ConfigError("config.transfer.sources lists no task to embed")
  have = set(library_lib.tasks(config.library)) if os.path.isdir(
      config.library) else set()
  for k, name in enumerate(names, 1):
    if name in have and not config.overwrite:
      entry = library_lib.load(config.library, name)["entry"]
      if "textemb" in entry and "taskemb" in entry:
        logging.info("library: %s already embedded", name)
        continue
    logging.info("library: task %d/%d: %s", k, len(names), name)
    cfg = recipe.run_config(config, name,
                            examples=config.transfer.source_examples,
                            seed=config.transfer.source_seed)
    run_dir = recipe.source_run_dir(workdir, name)
    recipe.finetune_source(cfg, run_dir)
    with cfg.unlocked():
      cfg.embed.finetuned = run_dir
      cfg.overwrite = True
    textemb_stage(cfg, workdir)
    taskemb_stage(cfg, workdir)
  return names
