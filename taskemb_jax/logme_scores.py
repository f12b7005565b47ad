"""LogME of fine-tuned source models on a target's data (a ranking method).

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
from taskemb_jax import heads
from taskemb_jax import ranking
from taskemb_jax import recipe
from taskemb_jax import sharding
from taskemb_jax import tasks as tasks_lib
from taskemb_jax import train as train_lib
from taskemb_jax.errors import UserError

MAX_TOKENS = 20000
SCORES = "logme_scores.json"


def features(model: heads.TaskModel, split: train_lib.Split, kind: str,
             config, mesh) -> tuple[np.ndarray, np.ndarray]:
  """(features [n, hidden], targets [n]) of a target split under a model."""
  graphdef = nnx.graphdef(model.bert)
  state = sharding.put_replicated(nnx.state(model.bert), mesh)

  def hidden(s, b):
    bert = nnx.merge(graphdef, s)
    return bert(b["input_ids"], b["token_type_ids"],
                b["attention_mask"]).last_hidden_state

  step = jax.jit(hidden, in_shardings=(sharding.replicated(mesh),
                                       sharding.data_sharding(mesh)))
  feats, targets = [], []
  for batch in train_lib.global_batches(split, config.eval_batch_size, config,
                                        shuffle=False):
    h = np.asarray(sharding.to_host(step(state, sharding.put_batch(
        batch, mesh))), np.float32)
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
  """LogME of the best model of `source_run` on the target's training data."""
  model, _, tokenizer = train_lib.load_finetuned(source_run)
  task = tasks_lib.get_task(target)
  cfg = recipe.run_config(config, target,
                          examples=config.evaluate.logme_examples, seed=0)
  records = task.load("train", config.data_dir or None)
  labels = train_lib.label_names(task, records)
  split = train_lib.load_split(task, "train", cfg, tokenizer, labels,
                               max_examples=cfg.train_examples,
                               seed=cfg.data_seed, records=records)
  f, t = features(model, split, task.kind, cfg, mesh)
  regression = task.kind == "regression"
  return float(ranking.logme(f.astype(np.float64),
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
    cache = checkpoint.read_json(cache_path)
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
      checkpoint.write_json(cache_path, cache)
  return scores
