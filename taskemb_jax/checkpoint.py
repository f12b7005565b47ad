"""Checkpoints of a training run in its workdir, with orbax.

Layout of a workdir:

* ``checkpoints/<step>/``: the latest full training state (model and
  optimizer) and its metadata (epoch, step, best metric so far); written at
  every epoch end (and every `checkpoint_every_steps`), one kept.
* ``best/<step>/``: the model parameters of the best epoch on the
  validation metric, for transfer, TaskEmb, prediction and export.
* ``task.json``: what the run trained (task, kind, labels, model, tokenizer).

Orbax writes each checkpoint under a temporary name and renames it when
complete, so a killed process leaves the previous checkpoint intact.
"""

from __future__ import annotations

import json
import os
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp
from flax import nnx

from taskemb_jax.errors import UserError

LATEST, BEST = "checkpoints", "best"


def _manager(workdir: str, which: str):
  options = ocp.CheckpointManagerOptions(max_to_keep=1,
                                         enable_async_checkpointing=False)
  return ocp.CheckpointManager(os.path.join(os.path.abspath(workdir), which),
                               options=options)


def save(workdir: str, which: str, step: int, state: Any,
         meta: dict[str, Any]) -> None:
  """Saves an nnx.State (or pure dict) and JSON metadata as `step`."""
  tree = state if isinstance(state, dict) else nnx.to_pure_dict(state)
  with _manager(workdir, which) as mngr:
    mngr.save(step, args=ocp.args.Composite(
        state=ocp.args.StandardSave(tree), meta=ocp.args.JsonSave(meta)),
              force=True)
    mngr.wait_until_finished()


def latest_step(workdir: str, which: str = LATEST) -> int | None:
  """The newest complete checkpoint's step (unfinished ones have tmp names)."""
  folder = os.path.join(workdir, which)
  steps = [int(d) for d in os.listdir(folder)
           if d.isdigit()] if os.path.isdir(folder) else []
  return max(steps) if steps else None


def restore(workdir: str, which: str, target: nnx.State | None = None
            ) -> tuple[Any, dict[str, Any]]:
  """Restores the newest checkpoint of `which` into `target` (in place).

  `target` gives shapes, dtypes and shardings; without it the arrays come
  back as numpy in a nested dict (integer keys restored). Returns
  (state or dict, metadata).
  """
  step = latest_step(workdir, which)
  if step is None:
    raise UserError(f"{os.path.join(workdir, which)}: no checkpoint found")
  with _manager(workdir, which) as mngr:
    if target is None:
      out = mngr.restore(step, args=ocp.args.Composite(
          state=ocp.args.StandardRestore(), meta=ocp.args.JsonRestore()))
      tree = jax.tree.map(np.asarray, out["state"])
      return nnx.restore_int_paths(tree), dict(out["meta"])
    abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct,
                            nnx.to_pure_dict(target))
    out = mngr.restore(step, args=ocp.args.Composite(
        state=ocp.args.StandardRestore(abstract),
        meta=ocp.args.JsonRestore()))
  nnx.replace_by_pure_dict(target, out["state"])
  return target, dict(out["meta"])


def write_json(path: str, obj: Any) -> None:
  """Writes JSON atomically (temporary file, then rename)."""
  tmp = f"{path}.tmp{os.getpid()}"
  with open(tmp, "w") as f:
    json.dump(obj, f, indent=2, default=_json_default)
    f.write("\n")
  os.replace(tmp, path)


def read_json(path: str) -> Any:
  """Reads a JSON file; a malformed one is a UserError naming file and line."""
  try:
    with open(path) as f:
      return json.load(f)
  except json.JSONDecodeError as e:
    raise UserError(f"{path}:{e.lineno}: not valid JSON: {e.msg}") from None


def _json_default(x):
  if isinstance(x, (np.generic,)):
    return x.item()
  if isinstance(x, np.ndarray):
    return x.tolist()
  raise TypeError(f"not JSON serialisable: {type(x).__name__}")


def read_task_info(workdir: str) -> dict[str, Any]:
  path = os.path.join(workdir, "task.json")
  try:
    with open(path) as f:
      return json.load(f)
  except FileNotFoundError as e:
    raise UserError(f"{path}: missing; is {workdir!r} the workdir of a "
                    "training run?") from e
