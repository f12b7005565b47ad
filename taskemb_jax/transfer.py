"""Transfer experiments (the ground truth) and the evaluation of rankings.

`transfer_stage`: for every (source, target) pair of a data regime, fine-tune
on the source (once, reused), then fine-tune on the target starting from the
source's encoder with a fresh head, over R random restarts, plus the
baseline without an intermediate task. Every finished run leaves a small
``result.json``; a sweep killed halfway continues where it stopped, and
several workers can share a sweep (``transfer.shard = "i/n"``) since results
merge from the files.

Workdir layout::

  sources/<source>/                 source fine-tuning run (best/ kept)
  runs/<target>/<source>/seed<r>/   target run from that source
  runs/<target>/_none/seed<r>/      baseline run (no intermediate task)
  transfer_matrix.json, transfer_matrix.csv

`evaluate_stage`: reads a transfer matrix, ranks the sources of every
target with every method (`taskemb_jax.rank`) and scores the rankings
(ρ, NDCG, Regret@k, Spearman; in-class and all-class).
"""

from __future__ import annotations

import ast
import csv
import io
import json
import os
import shutil
from typing import Any, Sequence

import jax
import ml_collections
import numpy as np
from absl import logging

from taskemb_jax import checkpoint
from taskemb_jax import ranking
from taskemb_jax import tasks as tasks_lib
from taskemb_jax import train as train_lib
from taskemb_jax.errors import ConfigError, UserError

BASELINE = "_none"
MATRIX = "transfer_matrix.json"


def _names(spec: str) -> list[str]:
  return [n.strip() for n in spec.split(",") if n.strip()]


def safe_name(name: str) -> str:
  """A folder name for a task name (user tasks hold '/' and ':')."""
  return "".join(c if c.isalnum() or c in "-._" else "_" for c in name)


def run_config(config: ml_collections.ConfigDict, task: str, *,
               examples: int, seed: int, init_from: str = "",
               target: bool = False) -> ml_collections.ConfigDict:
  """The fine-tuning config of one run: the paper's defaults for the task's
  class, then the sweep's overrides (transfer.overrides, then
  transfer.<class>_overrides, then for target runs transfer.target_overrides).
  """
  family = tasks_lib.get_task(task).family
  c = config.copy_and_resolve_references()
  with c.unlocked():
    c.task = task
    c.update(tasks_lib.FAMILY_DEFAULTS[family])
    fields = ["overrides", f"{family}_overrides"]
    if target:
      fields.append("target_overrides")
    for field in fields:
      for key, value in parse_overrides(config.transfer[field],
                                        f"config.transfer.{field}").items():
        if key not in c or isinstance(c[key], ml_collections.ConfigDict):
          raise ConfigError(f"config.transfer.{field}: {key!r} is not a "
                            "config field")
        c[key] = type(c[key])(value)
    c.train_examples = examples
    c.seed = seed
    c.init_from = init_from
    c.eval_split = "validation"
  return c


def parse_overrides(spec: str, where: str) -> dict[str, Any]:
  """ "a=1,b=x" -> {'a': 1, 'b': 'x'} (values as Python literals or text)."""
  out = {}
  for item in filter(None, (x.strip() for x in spec.split(","))):
    key, sep, value = item.partition("=")
    if not sep:
      raise ConfigError(f"{where}: {item!r} is not field=value")
    try:
      out[key.strip()] = ast.literal_eval(value.strip())
    except (ValueError, SyntaxError):
      out[key.strip()] = value.strip()
  return out


def _finished_result(run_dir: str) -> dict[str, Any] | None:
  path = os.path.join(run_dir, "result.json")
  if os.path.exists(path):
    with open(path) as f:
      return json.load(f)
  return None


def _run(config, run_dir: str, *, keep_checkpoints: bool) -> dict[str, Any]:
  """Fine-tunes (or resumes) one run; scores its best epoch on the test split."""
  done = _finished_result(run_dir)
  if done is not None:
    return done
  summary = train_lib.train_and_evaluate(config, run_dir)
  result = {"task": config.task, "metric": summary["metric"],
            "validation": summary["best"], "seed": config.seed,
            "init_from": config.init_from}
  split = config.transfer.eval_split
  if split != "validation":
    result[split] = train_lib.evaluate_run(
        run_dir, config, split, max_examples=config.transfer.max_eval_examples)
  result["score"] = result[split][summary["metric"]]
  checkpoint.write_json(os.path.join(run_dir, "result.json"), result)
  if not keep_checkpoints:
    shutil.rmtree(os.path.join(run_dir, checkpoint.LATEST), ignore_errors=True)
    shutil.rmtree(os.path.join(run_dir, checkpoint.BEST), ignore_errors=True)
  return result


def finetune_source(config, run_dir: str) -> None:
  """Fine-tunes a source once (resumed if interrupted); keeps its best model.

  The build_library stage fine-tunes its tasks here too, so a sweep in the
  same workdir reuses them.
  """
  if not train_lib.is_finished(run_dir, config):
    train_lib.train_and_evaluate(config, run_dir)
  # The optimizer state is only needed to resume; the best model stays.
  shutil.rmtree(os.path.join(run_dir, checkpoint.LATEST), ignore_errors=True)


def plan(config) -> list[tuple[str, str, int]]:
  """Every (target, source or BASELINE, restart) run of the sweep, in order."""
  sources = _names(config.transfer.sources)
  targets = _names(config.transfer.targets) or sources
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
    run_dir = os.path.join(workdir, "runs", safe_name(target), safe_name(source),
                           f"seed{r}")
    if _finished_result(run_dir) is not None:
      continue
    init = ""
    if source != BASELINE:
      init = os.path.join(workdir, "sources", safe_name(source))
      finetune_source(run_config(config, source, examples=t.source_examples,
                                 seed=t.source_seed), init)
    logging.info("run %d/%d: %s -> %s, restart %d", k + 1, len(mine),
                 source, target, r)
    cfg = run_config(config, target, examples=t.target_examples, seed=r,
                     init_from=init, target=True)
    _run(cfg, run_dir, keep_checkpoints=t.keep_checkpoints)
  matrix = merge(config, workdir)
  if jax.process_index() == 0:
    write_matrix(matrix, workdir)
  return matrix


def merge(config, workdir: str) -> dict[str, Any]:
  """The transfer matrix from every finished run found in `workdir`."""
  sources = _names(config.transfer.sources)
  targets = _names(config.transfer.targets) or sources
  matrix: dict[str, Any] = {
      "regime": config.transfer.regime, "sources": sources,
      "targets": targets, "restarts": config.transfer.restarts,
      "eval_split": config.transfer.eval_split, "metric": {},
      "baseline": {}, "pairs": {}, "complete": True}
  for tgt in targets:
    matrix["metric"][tgt] = tasks_lib.get_task(tgt).metric
    cells = {}
    for src in [BASELINE] + [s for s in sources if s != tgt]:
      scores = []
      for r in range(config.transfer.restarts):
        res = _finished_result(os.path.join(workdir, "runs", safe_name(tgt),
                                            safe_name(src), f"seed{r}"))
        if res is not None:
          scores.append(float(res["score"]))
      if len(scores) < config.transfer.restarts:
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


def write_matrix(matrix: dict[str, Any], workdir: str) -> None:
  checkpoint.write_json(os.path.join(workdir, MATRIX), matrix)
  buf = io.StringIO()
  w = csv.writer(buf)
  w.writerow(["target", "source", "metric", "mean", "std", "gain", "runs"])
  for tgt in matrix["targets"]:
    base = matrix["baseline"].get(tgt)
    if base:
      w.writerow([tgt, BASELINE, matrix["metric"][tgt], f"{base['mean']:.6g}",
                  f"{base['std']:.6g}", "", len(base["runs"])])
    for src, cell in matrix["pairs"][tgt].items():
      w.writerow([tgt, src, matrix["metric"][tgt], f"{cell['mean']:.6g}",
                  f"{cell['std']:.6g}",
                  f"{cell['gain']:.6g}" if "gain" in cell else "",
                  len(cell["runs"])])
  tmp = os.path.join(workdir, "transfer_matrix.csv.tmp")
  with open(tmp, "w") as f:
    f.write(buf.getvalue())
  os.replace(tmp, os.path.join(workdir, "transfer_matrix.csv"))


def read_matrix(path: str) -> dict[str, Any]:
  if os.path.isdir(path):
    path = os.path.join(path, MATRIX)
  try:
    with open(path) as f:
      return json.load(f)
  except FileNotFoundError:
    raise UserError(f"{path}: no transfer matrix (run the transfer stage "
                    "first)") from None
  except json.JSONDecodeError as e:
    raise UserError(f"{path}:{e.lineno}: not valid JSON: {e.msg}") from None
