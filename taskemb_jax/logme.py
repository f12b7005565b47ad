"""LogME: its maths, and scores of fine-tuned source models on target data.

LogME (You et al., 2021) scores a feature extractor by the Bayesian evidence
of a linear model from its features to the target's labels. Here the
extractor is each *source's fine-tuned encoder* (the source runs of a
transfer sweep), the data the target's training examples:

* classification / regression: one feature per example, the mean of the
  last hidden states over its non-padding tokens; labels as in the task;
* tagging: one feature per word (its first sub-token), the tag as label;
* QA: one feature per context token, labelled 1 inside the answer span and
  0 elsewhere (windows without the answer: all 0).

Token-level targets are capped at `MAX_TOKENS` tokens, drawn with a fixed
seed. Cost: one forward pass of the target's examples per source model,
against TaskEmb's one forward and backward pass per task (sources and target
each once), so LogME grows with sources x targets and TaskEmb with tasks.

`logme(features, targets)` is the score itself (You et al., "LogME:
Practical Assessment of Pre-trained Models for Transfer Learning", ICML
2021), host-side numpy in float64; `scores_for_matrix` computes it for every
measured pair of a transfer matrix (the evaluate stage's `logme` method).
"""

from __future__ import annotations

import os
import time
from typing import Any, Mapping

import jax
import numpy as np
from absl import logging
from flax import nnx

from taskemb_jax import checkpoint
from taskemb_jax import data
from taskemb_jax import encoders
from taskemb_jax import files
from taskemb_jax import heads
from taskemb_jax import recipe
from taskemb_jax import sharding
from taskemb_jax import tasks as tasks_lib
from taskemb_jax.errors import UserError

MAX_TOKENS = 20000
SCORES = "logme_scores.json"


# ----------------------------------------------------------------------------
# The LogME score.


_LOGME_EPS = 1e-5  # Added to the alpha/beta denominators, as in the paper's code.
_LOGME_TOL = 1e-8  # Relative change of alpha / beta at which iteration stops.
_LOGME_MAX_ITER = 1000


def _compact_svd(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """Features [n, d] -> (u [n, k], squared singular values [k]), k = rank."""
  u, s, _ = np.linalg.svd(features, full_matrices=False)
  tol = s.max(initial=0.0) * max(features.shape) * np.finfo(np.float64).eps
  keep = s > tol
  return u[:, keep], s[keep] ** 2


def _column_evidence(
    u: np.ndarray, sigma: np.ndarray, d: int, y: np.ndarray,
    tol: float, max_iter: int,
) -> tuple[float, float, float]:
  """Maximised log evidence / n for one target column, and its alpha, beta.

  Args:
    u: [n, k] left singular vectors of the features (rank k).
    sigma: [k] squared singular values (eigenvalues of F^T F).
    d: feature dimension (the prior is over all d weights).
    y: [n] target column.
  """
  n = y.shape[0]
  x2 = (u.T @ y) ** 2  # [k] squared projections onto the column space.
  res_x2 = max(float(y @ y - x2.sum()), 0.0)  # Part of y outside that space.

  def fit_terms(alpha: float, beta: float) -> tuple[float, float, float]:
    # With t = alpha / beta the posterior mean is m = V diag(s / (t + s^2)) U^T y.
    t = alpha / beta
    gamma = float((sigma / (sigma + t)).sum())  # Effective number of params.
    m2 = float((sigma * x2 / (sigma + t) ** 2).sum())  # ||m||^2
    res2 = float((x2 * (t / (sigma + t)) ** 2).sum()) + res_x2  # ||y - F m||^2
    return gamma, m2, res2

  alpha, beta = 1.0, 1.0
  for _ in range(max_iter):
    gamma, m2, res2 = fit_terms(alpha, beta)
    new_alpha = gamma / (m2 + _LOGME_EPS)
    new_beta = (n - gamma) / (res2 + _LOGME_EPS)
    t, new_t = alpha / beta, new_alpha / new_beta
    alpha, beta = new_alpha, new_beta
    if abs(new_t - t) <= tol * t:
      break
  _, m2, res2 = fit_terms(alpha, beta)
  # log|A| for A = alpha I_d + beta F^T F: d - k eigenvalues are alpha.
  log_det_a = np.log(alpha + beta * sigma).sum() + (d - sigma.shape[0]) * np.log(alpha)
  evidence = (d / 2.0 * np.log(alpha) + n / 2.0 * np.log(beta)
              - 0.5 * log_det_a - beta / 2.0 * res2 - alpha / 2.0 * m2
              - n / 2.0 * np.log(2.0 * np.pi))
  return float(evidence / n), float(alpha), float(beta)


def _target_columns(targets: np.ndarray, n: int, regression: bool) -> np.ndarray:
  """Targets -> [n, m] float64 columns (one-hot over the present classes)."""
  targets = np.asarray(targets)
  if targets.shape[0] != n:
    raise ValueError(f"{targets.shape[0]} targets for {n} feature rows")
  if regression:
    columns = targets.astype(np.float64).reshape(n, -1)
    if not np.isfinite(columns).all():
      raise ValueError("regression targets must be finite")
    return columns
  if targets.ndim != 1 or not np.issubdtype(targets.dtype, np.integer):
    raise ValueError(
        f"classification targets must be [n] int class ids, got "
        f"{targets.dtype} {targets.shape}")
  classes = np.unique(targets)
  return (targets[:, None] == classes[None, :]).astype(np.float64)


def logme_evidence(
    features: np.ndarray, y: np.ndarray, tol: float = _LOGME_TOL,
    max_iter: int = _LOGME_MAX_ITER,
) -> tuple[float, float, float]:
  """LogME for a single real-valued target column, with its alpha and beta.

  Args:
    features: [n, d] features.
    y: [n] target values.
    tol: stop when alpha / beta changes by at most this relative amount.
    max_iter: cap on fixed-point iterations.

  Returns:
    (maximised log evidence / n, prior precision alpha, noise precision beta).
  """
  features = np.asarray(features, dtype=np.float64)
  y = np.asarray(y, dtype=np.float64).reshape(-1)
  if features.ndim != 2 or features.shape[0] != y.shape[0]:
    raise ValueError(f"expected features [n, d] and y [n], got "
                     f"{features.shape} and {y.shape}")
  u, sigma = _compact_svd(features)
  if sigma.size == 0:
    raise ValueError("features are all zero")
  return _column_evidence(u, sigma, features.shape[1], y, tol, max_iter)


def logme(
    features: np.ndarray, targets: np.ndarray, regression: bool = False
) -> float:
  """LogME score of features for a labelled target task (higher = better).

  For each target column, the evidence p(y | F, alpha, beta) of the model
  y = F w + noise, w ~ N(0, I / alpha), noise ~ N(0, I / beta), is maximised
  over alpha and beta by the fixed-point iteration of You et al. (2021,
  Algorithms 1-2), computed from the compact SVD of F (so n < d is cheap).
  The score is the mean over columns of log evidence / n.

  Differences from the reference code (github.com/thuml/LogME): iteration
  runs to a tight tolerance (not at most 11 steps), the evidence is
  evaluated at the final alpha and beta, log|A| includes the d - rank(F)
  eigenvalues equal to alpha (the reference omits them when n < d), and
  classification uses one column per class present in `targets` (not
  0 .. max id).

  Args:
    features: [n, d] features (e.g. a source model's embeddings of the
      target task's examples).
    targets: [n] int class ids (classification) or [n] / [n, m] real values
      (regression).
    regression: whether `targets` are real values.

  Returns:
    The LogME score (a float, comparable across features for the same task).
  """
  features = np.asarray(features, dtype=np.float64)
  if features.ndim != 2 or not np.isfinite(features).all():
    raise ValueError(f"features must be a finite [n, d] array, got {features.shape}")
  n, d = features.shape
  columns = _target_columns(targets, n, regression)  # [n, m]
  u, sigma = _compact_svd(features)
  if sigma.size == 0:
    raise ValueError("features are all zero")
  evidences = [_column_evidence(
      u, sigma, d, columns[:, j], _LOGME_TOL, _LOGME_MAX_ITER)[0]
               for j in range(columns.shape[1])]
  return float(np.mean(evidences))


# ----------------------------------------------------------------------------
# Scores of source models on a target's data.


def features(model: heads.TaskModel, split: data.Split, kind: str, mesh, *,
             batch_size: int, max_length: int
             ) -> tuple[np.ndarray, np.ndarray]:
  """(features [n, hidden], targets [n]) of a target split under a model,
  in the split's order (the same on every process of a job)."""
  graphdef = nnx.graphdef(model.bert)
  state = sharding.put_replicated(nnx.state(model.bert), mesh)

  def hidden(s, b):
    bert = nnx.merge(graphdef, s)
    return bert(b["input_ids"], b["token_type_ids"],
                b["attention_mask"]).last_hidden_state

  step = jax.jit(hidden, in_shardings=(sharding.replicated(mesh),
                                       sharding.data_sharding(mesh)))
  feats, targets = [], []
  for batch in data.global_batches(split, batch_size, max_length,
                                   shuffle=False):
    dev_batch = sharding.put_batch(batch, mesh)
    h = np.asarray(sharding.to_host(step(state, dev_batch)), np.float32)
    if jax.process_count() > 1:  # h is the global batch's: so is the batch.
      batch = sharding.to_host(dev_batch)
    real = batch["weights"] > 0
    mask = batch["attention_mask"] > 0
    if kind in ("classification", "regression"):
      m = mask[..., None].astype(np.float32)
      mean = (h * m).sum(1) / np.maximum(m.sum(1), 1.0)
      feats.append(mean[real])
      targets.append(batch["label"][real])
    elif kind == "tagging":
      sel = (batch["labels"] != heads.IGNORE) & real[:, None]
      feats.append(h[sel])
      targets.append(batch["labels"][sel])
    else:
      pos = np.arange(h.shape[1])[None]
      ctx = (batch["token_type_ids"] > 0) & mask & real[:, None]
      start = batch["start_position"][:, None]
      end = batch["end_position"][:, None]
      inside = (pos >= start) & (pos <= end) & (start > 0)
      feats.append(h[ctx])
      targets.append(inside[ctx].astype(np.int32))
  f, t = np.concatenate(feats), np.concatenate(targets)
  if len(f) > MAX_TOKENS:
    idx = np.sort(np.random.default_rng(0).choice(len(f), MAX_TOKENS,
                                                  replace=False))
    f, t = f[idx], t[idx]
  return f, t


def logme_score(source_run: str, target: str, config, mesh) -> float:
  """LogME of the best model of `source_run` on the target's training data.

  The data is that of the sweep's target runs (restart 0: their windows and
  examples, config.transfer.target's groups included), capped at
  config.evaluate.logme_examples examples.
  """
  model, _, tokenizer = encoders.load_finetuned(source_run)
  task = tasks_lib.get_task(target)
  cfg = recipe.run_config(config, target,
                          examples=config.transfer.target_examples,
                          seed=0, target=True)
  cap = config.evaluate.logme_examples
  if cap and (not cfg.train_examples or cfg.train_examples > cap):
    cfg.train_examples = cap
  records = task.load("train", config.data_dir or None)
  labels = data.label_names(task, records)
  split = data.load_split(task, "train", tokenizer, labels,
                          data.Window.from_config(cfg),
                          max_examples=cfg.train_examples,
                          seed=cfg.data_seed, records=records)
  f, t = features(model, split, task.kind, mesh,
                  batch_size=cfg.eval_batch_size, max_length=cfg.max_length)
  regression = task.kind == "regression"
  return float(logme(f.astype(np.float64),
                             t.astype(np.float64 if regression else np.int64),
                             regression=regression))


def scores_for_matrix(config, matrix: Mapping[str, Any],
                      matrix_path: str) -> dict[str, dict[str, float]]:
  """LogME of every measured (target, source) pair, cached next to the matrix.

  Source models are the source runs of the sweep (<sweep>/sources/<task>);
  the cache (logme_scores.json: scores and seconds per pair) makes the
  computation resumable.
  """
  sweep = matrix_path if os.path.isdir(matrix_path) else os.path.dirname(
      matrix_path)
  cache_path = os.path.join(sweep, SCORES)
  cache: dict[str, Any] = {"scores": {}, "seconds": {}}
  if os.path.exists(cache_path):
    cache = files.read_json(cache_path)
  scores, seconds = cache["scores"], cache["seconds"]
  mesh = sharding.make_mesh(config.num_devices)
  for tgt in matrix["targets"]:
    for src in matrix["pairs"].get(tgt, {}):
      if src in scores.get(tgt, {}):
        continue
      run = recipe.source_run_dir(sweep, src)
      if checkpoint.latest_step(run, checkpoint.BEST) is None:
        raise UserError(f"LogME needs the fine-tuned source model {run}/best "
                        "(kept by the transfer stage)")
      start = time.perf_counter()
      scores.setdefault(tgt, {})[src] = logme_score(run, tgt, config, mesh)
      seconds.setdefault(tgt, {})[src] = time.perf_counter() - start
      logging.info("LogME %s -> %s: %.4f (%.1f s)", src, tgt,
                   scores[tgt][src], seconds[tgt][src])
      sharding.on_writer(lambda: files.write_json(cache_path, cache))
  return scores
