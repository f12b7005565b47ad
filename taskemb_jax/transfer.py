"""The transfer sweep (the ground truth of rankings) and its matrix.

`transfer_stage`: for every (source, target) pair of a data regime,
fine-tune on the source (once, reused; `taskemb_jax.recipe`), then fine-tune
on the target starting from the source's encoder with a fresh head, over R
random restarts, plus the baseline without an intermediate task. Every
finished run leaves a small ``result.json`` that records the run's settings
and ``seconds``, the wall time of the life that finished it (fine-tuning,
resumed or not, and scoring; a resumed run's earlier lives are not in it);
a sweep killed halfway continues where it stopped, and a finished run is
reused only if its settings are this config's (otherwise an error, or with
``config.overwrite`` a rerun).

Several workers can share a sweep (``transfer.shard = "i/n"``,
`launch/sweep_workers.sh`): every run folder has a lock file next to it, so
a source is fine-tuned by one worker while the others wait and then reuse
it, and a target run is done by one worker; the matrix is merged from the
result files under a lock of its own.

Workdir layout (folder names are `files.safe_name` of the task names)::

  sources/<source>/                 source fine-tuning run (best/ kept)
  runs/<target>/<source>/seed<r>/   target run from that source
  runs/<target>/_none/seed<r>/      baseline run (no intermediate task)
  transfer_matrix.json, transfer_matrix.csv

The `evaluate` stage (`taskemb_jax.evaluation`) scores rankings against
the matrix.
"""

from __future__ import annotations

import os
import shutil
import time
from typing import Any

import ml_collections
import numpy as np
from absl import logging

from taskemb_jax import checkpoint
from taskemb_jax import files
from taskemb_jax.matrix import (  # noqa: F401  pylint: disable=unused-import
    BASELINE, MATRIX, MATRIX_CSV, read_matrix, write_matrix)
from taskemb_jax import data
from taskemb_jax import recipe
from taskemb_jax import runs
from taskemb_jax import sharding
from taskemb_jax import tasks as tasks_lib
from taskemb_jax import train as train_lib
from taskemb_jax import progress
from taskemb_jax.errors import ConfigError

RESULT = "result.json"


def target_run_dir(workdir: str, target: str, source: str,
                   restart: int) -> str:
  """The folder of one target run (`source` may be BASELINE)."""
  return os.path.join(workdir, "runs", files.safe_name(target),
                      files.safe_name(source), f"seed{restart}")


def source_config(config, source: str) -> ml_collections.ConfigDict:
  """The fine-tuning config of a source run of the sweep."""
  t = config.transfer
  return recipe.run_config(config, source, examples=t.source_examples,
                           seed=t.source_seed)


def target_config(config, workdir: str, target: str, source: str,
                  restart: int) -> ml_collections.ConfigDict:
  """The fine-tuning config of a target run (from `source`'s encoder)."""
  init = "" if source == BASELINE else recipe.source_run_dir(workdir, source)
  return recipe.run_config(config, target,
                           examples=config.transfer.target_examples,
                           seed=restart, init_from=init, target=True)


def target_run(config, workdir: str, target: str, source: str,
               restart: int) -> tuple[ml_collections.ConfigDict,
                                        dict[str, Any]]:
  """The config of a target run and what identifies it: its training
  settings (init_from relative to the workdir), those of its source run
  (``source.<field>``) and the split and size of its scoring."""
  cfg = target_config(config, workdir, target, source, restart)
  s = runs.run_settings(cfg)
  if s.get("init_from"):
    s["init_from"] = os.path.relpath(s["init_from"], workdir)
  if source != BASELINE:
    s.update((f"source.{k}", v) for k, v in runs.run_settings(
        source_config(config, source)).items())
  s["transfer.eval_split"] = cfg.transfer.eval_split
  s["transfer.max_eval_examples"] = cfg.transfer.max_eval_examples
  return cfg, s


def _read_result(run_dir: str) -> dict[str, Any] | None:
  path = os.path.join(run_dir, RESULT)
  return files.read_json(path) if os.path.exists(path) else None


def finished_result(run_dir: str, settings: dict[str, Any], *,
                    overwrite: bool) -> dict[str, Any] | None:
  """The result of the finished run in `run_dir` if it is a run of
  `settings`; None if there is none (or, with `overwrite`, a stale one);
  a ConfigError naming the differing fields otherwise."""
  res = _read_result(run_dir)
  if res is None:
    return None
  diff = recipe.settings_diff(res.get("settings"), settings)
  if not diff:
    return res
  if overwrite:
    return None
  raise recipe.mismatch_error(run_dir, diff)


def _run(cfg, run_dir: str, settings: dict[str, Any], *,
         keep_checkpoints: bool) -> dict[str, Any]:
  """Fine-tunes (or resumes) one target run under its lock; scores its best
  epoch on the sweep's split and writes result.json."""
  with recipe.run_lock(run_dir):
    done = finished_result(run_dir, settings, overwrite=cfg.overwrite)
    if done is not None:  # Done by another worker meanwhile.
      return done
    recipe.claim_run(run_dir, settings, overwrite=cfg.overwrite)
    start = time.monotonic()
    summary = train_lib.train_and_evaluate(cfg, run_dir)
    result = {"task": cfg.task, "metric": summary["metric"],
              "validation": summary["best"], "seed": cfg.seed,
              "init_from": settings["init_from"], "settings": settings}
    split = cfg.transfer.eval_split
    if split != "validation":
      result[split] = train_lib.evaluate_run(
          run_dir, split, data_dir=cfg.data_dir or None,
          window=data.Window.from_config(cfg),
          batch_size=cfg.eval_batch_size,
          max_examples=cfg.transfer.max_eval_examples,
          num_devices=cfg.num_devices, dtype=cfg.dtype)
    result["score"] = result[split][summary["metric"]]
    result["seconds"] = round(time.monotonic() - start, 1)

    def write():
      files.write_json(os.path.join(run_dir, RESULT), result)
      if not keep_checkpoints:
        for which in (checkpoint.LATEST, checkpoint.BEST):
          shutil.rmtree(os.path.join(run_dir, which), ignore_errors=True)
    sharding.on_writer(write)
    return result


def plan(config) -> list[tuple[str, str, int]]:
  """Every (target, source or BASELINE, restart) run of the sweep, in order."""
  sources = files.comma_list(config.transfer.sources)
  targets = files.comma_list(config.transfer.targets) or sources
  if not sources or not targets:
    raise ConfigError("config.transfer.sources is empty")
  for name in set(sources) | set(targets):
    tasks_lib.get_task(name)  # Unknown names fail before any work.
  runs = []
  for r in range(config.transfer.restarts):
    for t in targets:
      runs.append((t, BASELINE, r))
      runs += [(t, s, r) for s in sources if s != t]
  return runs


def _shard(spec: str) -> tuple[int, int]:
  try:
    i, n = (int(x) for x in spec.split("/"))
    assert 0 <= i < n
    return i, n
  except (ValueError, AssertionError):
    raise ConfigError(f"config.transfer.shard={spec!r}; use 'i/n' with "
                      "0 <= i < n") from None


def transfer_stage(config: ml_collections.ConfigDict,
                   workdir: str) -> dict[str, Any]:
  """Runs (this worker's share of) the sweep, then merges the matrix."""
  if not workdir:
    raise ConfigError("the transfer stage needs --workdir")
  t = config.transfer
  worker, workers = _shard(t.shard)
  runs = plan(config)
  mine = [r for i, r in enumerate(runs) if i % workers == worker]
  logging.info("transfer sweep: %d runs, %d for worker %d/%d", len(runs),
               len(mine), worker, workers)
  for k, (target, source, r) in enumerate(mine):
    run_dir = target_run_dir(workdir, target, source, r)
    cfg, settings = target_run(config, workdir, target, source, r)
    if finished_result(run_dir, settings, overwrite=cfg.overwrite):
      continue
    if source != BASELINE:
      recipe.finetune_source(source_config(config, source),
                             recipe.source_run_dir(workdir, source))
    progress.say(f"run {k + 1}/{len(mine)}: {source} -> {target}, "
                 f"restart {r}")
    _run(cfg, run_dir, settings, keep_checkpoints=t.keep_checkpoints)
  # Merged and written under one lock, so that the last writer of
  # concurrent workers writes the most complete matrix; the processes of
  # one multi-process worker read the matrix process 0 wrote.
  def merge_and_write():
    with files.lock(os.path.join(workdir, MATRIX + ".lock")):
      matrix = merge(config, workdir)
      write_matrix(matrix, workdir)
      return matrix
  matrix = sharding.on_writer(merge_and_write)
  return matrix if sharding.is_writer() else read_matrix(workdir)


def merge(config, workdir: str) -> dict[str, Any]:
  """The transfer matrix from every finished run found in `workdir`.

  Only runs of this config's settings count; a run of other settings is a
  ConfigError (with config.overwrite it counts as not done).
  """
  sources = files.comma_list(config.transfer.sources)
  targets = files.comma_list(config.transfer.targets) or sources
  restarts = config.transfer.restarts
  matrix: dict[str, Any] = {
      "regime": config.transfer.regime, "sources": sources,
      "targets": targets, "restarts": restarts,
      "eval_split": config.transfer.eval_split, "metric": {},
      "baseline": {}, "pairs": {}, "complete": True}
  for tgt in targets:
    matrix["metric"][tgt] = tasks_lib.get_task(tgt).metric
    cells = {}
    for src in [BASELINE] + [s for s in sources if s != tgt]:
      scores = []
      for r in range(restarts):
        res = finished_result(target_run_dir(workdir, tgt, src, r),
                              target_run(config, workdir, tgt, src, r)[1],
                              overwrite=config.overwrite)
        if res is not None:
          scores.append(float(res["score"]))
      if len(scores) < restarts:
        matrix["complete"] = False
      if scores:
        cells[src] = {"mean": float(np.mean(scores)),
                      "std": float(np.std(scores, ddof=1)) if len(scores) > 1
                      else 0.0, "runs": scores}
    base = cells.pop(BASELINE, None)
    if base:
      matrix["baseline"][tgt] = base
    for src, cell in cells.items():
      if base and base["mean"] != 0:
        cell["gain"] = (cell["mean"] - base["mean"]) / abs(base["mean"])
    matrix["pairs"][tgt] = cells
  return matrix
