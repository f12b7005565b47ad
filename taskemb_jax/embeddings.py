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
import functools
from typing import Any, Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from taskemb_jax import data as data_lib
from taskemb_jax import heads
from taskemb_jax import pretrained
from taskemb_jax import sharding
from taskemb_jax.errors import ConfigError
from taskemb_jax.model import component_names
from taskemb_jax.progress import Progress

Array = jax.Array
ESTIMATORS = ("empirical", "sampled", "original")


# ----------------------------------------------------------------------------
# Steps.
# ----------------------------------------------------------------------------


def textemb_step(graphdef: nnx.GraphDef, state: nnx.State,
                 batch: Mapping[str, Array]) -> dict[str, Array]:
  """Sum over the batch's examples of their mean last hidden state.

  Args:
    graphdef, state: `nnx.split` of the encoder (a `model.Bert`; the task
      head plays no part).
    batch: input_pipeline batch [batch, length] with 'weights'.
  Returns {'sum': [hidden] float32, 'count': number of real examples}.
  """
  bert = nnx.merge(graphdef, state)
  out = bert(batch["input_ids"], batch["token_type_ids"],
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


# The jit-compiled steps, once per process and program: keyed by what the
# program depends on (the model's structure, the mesh and the static
# options), never by the weights or the dataset.
@functools.lru_cache(maxsize=32)
def _textemb_fn(bert_def: nnx.GraphDef, mesh):
  return jax.jit(lambda s, b: textemb_step(bert_def, s, b),
                 in_shardings=(sharding.replicated(mesh),
                               sharding.data_sharding(mesh)))


@functools.lru_cache(maxsize=32)
def _fisher_fn(graphdef: nnx.GraphDef, mesh, kind: str,
               components: tuple[str, ...], estimator: str, num_samples: int,
               sigma: float):
  repl, rows = sharding.replicated(mesh), sharding.data_sharding(mesh)
  return jax.jit(
      lambda s, b, k: fisher_step(graphdef, s, b, k, kind=kind,
                                  components=components, estimator=estimator,
                                  num_samples=num_samples, sigma=sigma),
      in_shardings=(repl, rows, repl))


@functools.lru_cache(maxsize=32)
def _param_fisher_fn(graphdef: nnx.GraphDef, mesh, kind: str, chunk: int):
  return jax.jit(lambda s, b: param_fisher_step(graphdef, s, b, kind=kind,
                                                chunk=chunk),
                 in_shardings=(sharding.replicated(mesh),
                               sharding.data_sharding(mesh)))


def compute_textemb(model: heads.TaskModel, split: data_lib.Split, mesh, *,
                    batch_size: int, max_length: int
                    ) -> tuple[np.ndarray, int]:
  """TextEmb [hidden] of a tokenized split, and the number of examples.

  Batches of `batch_size` examples padded to the buckets of `max_length`.
  """
  graphdef, state = nnx.split(model.bert)
  state = sharding.put_replicated(state, mesh)
  step = _textemb_fn(graphdef, mesh)
  total, count = None, 0.0
  progress = Progress("textemb", split.num_features)
  for rows, batch in data_lib.planned_batches(split, batch_size, max_length,
                                              shuffle=False, packed=True):
    out = step(state, sharding.put_batch(batch, mesh))
    total = out["sum"] if total is None else total + out["sum"]
    count += float(out["count"])
    progress.update(int((rows >= 0).sum()))
  vec = np.asarray(sharding.to_host(total), np.float64) / max(count, 1.0)
  return _finite(vec.astype(np.float32), "textemb"), int(count)


def compute_taskemb(model: heads.TaskModel, split: data_lib.Split, mesh,
                    options: FisherOptions, *, batch_size: int,
                    max_length: int) -> tuple[dict[str, np.ndarray], int]:
  """TaskEmb {component: [hidden]} (plus params/<name> if asked) of a split.

  Batches of `batch_size` examples padded to the buckets of `max_length`.
  """
  kind = model.kind
  comps = options.components or tuple(component_names(
      model.bert.cfg, pooler=kind in ("classification", "regression")))
  graphdef, state = nnx.split(model)
  state = sharding.put_replicated(state, mesh)
  step = _fisher_fn(graphdef, mesh, kind, tuple(comps), options.estimator,
                    int(options.num_samples), float(options.sigma))
  pstep = (_param_fisher_fn(graphdef, mesh, kind, int(options.param_chunk))
           if options.param_fisher else None)
  sums: dict[str, Any] = {}
  count = 0.0
  key = jax.random.key(options.seed)
  progress = Progress("taskemb", split.num_features)
  for i, (rows, batch) in enumerate(data_lib.planned_batches(
      split, batch_size, max_length, shuffle=False, packed=True)):
    dev_batch = sharding.put_batch(batch, mesh)
    out = step(state, dev_batch, jax.random.fold_in(key, i))
    count += float(out.pop("count"))
    if pstep is not None:
      p = pstep(state, dev_batch)["params"]
      out.update({f"params/{k}": v for k, v in
                  pretrained.flatten(nnx.to_pure_dict(p)).items()})
    for c, v in out.items():
      sums[c] = v if c not in sums else sums[c] + v
    progress.update(int((rows >= 0).sum()))
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
