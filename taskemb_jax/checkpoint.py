"""The files of a training run in its workdir: checkpoints, identity, metrics.

Layout of a workdir:

* ``identity.json``: what the run computes (task, fingerprints of its train
  and eval data and of the base model, the settings that change the
  result); written before anything else, checked on every resume or reuse.
* ``task.json``: what the run trained (task, kind, labels, model, tokenizer).
* ``checkpoints/<step>/``: the latest full training state (model and
  optimizer) and its metadata (step, history, best metrics so far); written
  at every epoch end (and every `checkpoint_every_steps`), one kept.
* ``best/<step>/``: the model parameters of the best epoch on the
  validation metric, for transfer, TaskEmb, prediction and export.
* ``metrics.json``: the per-epoch history and the best epoch (strict JSON).

Orbax writes each checkpoint under a temporary name and renames it when
complete, so a killed process leaves the previous checkpoint intact; the
temporaries it leaves are removed by `remove_temporaries`. `save` is
idempotent: saving a step that exists (or one older than a saved one)
replaces what is there.

With several processes every function here is called by all of them:
`save` is orbax's collective save (process 0 writes the files of
replicated arrays and the metadata); the identity file, removals and
renames are done by process 0 alone (`sharding.on_writer`), which the
others wait for; reads are done by every process.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import uuid
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp
from flax import nnx

from taskemb_jax import files
from taskemb_jax import pretrained
from taskemb_jax import sharding
from taskemb_jax.errors import ConfigError, UserError

LATEST, BEST = "checkpoints", "best"
IDENTITY, TASK_INFO, METRICS = "identity.json", "task.json", "metrics.json"
# What a run leaves in its workdir, discarded when it is started over.
RUN_FILES = (LATEST, BEST, METRICS, TASK_INFO, "result.json")
_ORBAX_TMP = ".orbax-checkpoint-tmp"

# Strict JSON files (non-finite floats as null), written atomically.
write_json = files.write_json
read_json = files.read_json


# ----------------------------------------------------------------------------
# Checkpoints.
# ----------------------------------------------------------------------------


def _manager(workdir: str, which: str):
  options = ocp.CheckpointManagerOptions(max_to_keep=1,
                                         enable_async_checkpointing=False)
  return ocp.CheckpointManager(os.path.join(os.path.abspath(workdir), which),
                               options=options)


def save(workdir: str, which: str, step: int, state: Any,
         meta: dict[str, Any]) -> None:
  """Saves an nnx.State (or pure dict) and JSON metadata as `step`.

  Steps >= `step` already in the folder (a killed run's future) are removed
  first, older ones once the new one is complete: the folder then holds
  exactly `step`.
  """
  tree = state if isinstance(state, dict) else nnx.to_pure_dict(state)
  folder = os.path.join(workdir, which)

  def remove_future():
    for s in steps(workdir, which):
      if s >= step:
        _remove_dir(os.path.join(folder, str(s)))
  sharding.on_writer(remove_future)
  with _manager(workdir, which) as mngr:
    mngr.save(step, args=ocp.args.Composite(
        state=ocp.args.StandardSave(tree), meta=ocp.args.JsonSave(meta)),
              force=True)
    mngr.wait_until_finished()
  keep_only(workdir, which, step)


def steps(workdir: str, which: str = LATEST) -> list[int]:
  """The complete checkpoints' steps, ascending (unfinished ones have tmp
  names)."""
  folder = os.path.join(workdir, which)
  if not os.path.isdir(folder):
    return []
  return sorted(int(d) for d in os.listdir(folder) if d.isdigit())


def latest_step(workdir: str, which: str = LATEST) -> int | None:
  """The newest complete checkpoint's step."""
  found = steps(workdir, which)
  return found[-1] if found else None


def keep_only(workdir: str, which: str, step: int | None) -> None:
  """Removes every checkpoint of `which` but `step` (all of them if None)."""
  def remove():
    for s in steps(workdir, which):
      if s != step:
        _remove_dir(os.path.join(workdir, which, str(s)))
  sharding.on_writer(remove)


def read_meta(workdir: str, which: str, step: int | None = None
              ) -> dict[str, Any]:
  """The JSON metadata of a checkpoint (default: the newest), arrays unread."""
  step = latest_step(workdir, which) if step is None else step
  if step is None:
    raise UserError(f"{os.path.join(workdir, which)}: no checkpoint found")
  with _manager(workdir, which) as mngr:
    out = mngr.restore(step, args=ocp.args.Composite(
        meta=ocp.args.JsonRestore()))
  return dict(out["meta"])


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
  if target is None:
    return _restore_to_host(workdir, which, step)
  with _manager(workdir, which) as mngr:
    abstract = jax.tree.map(_restore_target, nnx.to_pure_dict(target))
    out = mngr.restore(step, args=ocp.args.Composite(
        state=ocp.args.StandardRestore(abstract),
        meta=ocp.args.JsonRestore()))
  nnx.replace_by_pure_dict(target, out["state"])
  return target, dict(out["meta"])


def _restore_target(x: Any) -> jax.ShapeDtypeStruct:
  """Shape, dtype and sharding a leaf of a restore target asks for.

  A leaf without a sharding (numpy weights, e.g. of a model started from
  another run's encoder) is read onto this process's first device: never
  onto the devices that saved the checkpoint, which another topology (a
  job of another process or device count) does not have.
  """
  out = ocp.utils.to_shape_dtype_struct(x)
  if getattr(out, "sharding", None) is None:
    out = jax.ShapeDtypeStruct(out.shape, out.dtype, sharding=(
        jax.sharding.SingleDeviceSharding(jax.local_devices()[0])))
  return out


def _restore_to_host(workdir: str, which: str, step: int
                     ) -> tuple[Any, dict[str, Any]]:
  """The arrays of a checkpoint as numpy, whatever devices (how many, of
  how many processes) saved it: read onto this process's first device."""
  device = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
  options = ocp.CheckpointManagerOptions(enable_async_checkpointing=False)
  with ocp.CheckpointManager(
      os.path.join(os.path.abspath(workdir), which), options=options,
      item_handlers={"state": ocp.StandardCheckpointHandler(),
                     "meta": ocp.JsonCheckpointHandler()}) as mngr:
    saved = mngr.item_metadata(step)["state"]
    abstract = jax.tree.map(
        lambda m: jax.ShapeDtypeStruct(m.shape, m.dtype, sharding=device),
        saved)
    out = mngr.restore(step, args=ocp.args.Composite(
        state=ocp.args.StandardRestore(abstract),
        meta=ocp.args.JsonRestore()))
  tree = jax.tree.map(np.asarray, out["state"])
  return nnx.restore_int_paths(tree), dict(out["meta"])


def remove_temporaries(workdir: str) -> None:
  """Deletes what a killed writer left: orbax's ``*.orbax-checkpoint-tmp*``
  folders (and folders half removed by `discard`) in the workdir,
  checkpoints/ and best/, and ``.tmp-*`` files in the workdir.

  Call it only while no other job writes this run.
  """
  def remove():
    for folder in (workdir, os.path.join(workdir, LATEST),
                   os.path.join(workdir, BEST)):
      if os.path.isdir(folder):
        for name in os.listdir(folder):
          if _ORBAX_TMP in name:
            _remove_dir(os.path.join(folder, name))
    files.remove_temporaries(workdir)
  sharding.on_writer(remove)


def discard(workdir: str, names: tuple[str, ...] = RUN_FILES) -> None:
  """Removes a run's files (checkpoints, best model, metrics, ...)."""
  def remove():
    for name in names:
      path = os.path.join(workdir, name)
      if os.path.isdir(path):
        _remove_dir(path)
      else:
        with contextlib.suppress(FileNotFoundError):
          os.remove(path)
  sharding.on_writer(remove)


def _remove_dir(path: str) -> None:
  """Removes a folder; renamed first, so a kill never leaves a partial
  folder under a checkpoint's name (only a temporary that is cleaned up)."""
  trash = path if _ORBAX_TMP in os.path.basename(path) else (
      f"{path}{_ORBAX_TMP}-removed-{uuid.uuid4().hex[:8]}")
  try:
    os.replace(path, trash)
  except FileNotFoundError:
    return
  shutil.rmtree(trash, ignore_errors=True)


# ----------------------------------------------------------------------------
# Identity of a run.
# ----------------------------------------------------------------------------


def read_identity(workdir: str) -> dict[str, Any] | None:
  """The recorded identity; None if the workdir holds none."""
  path = os.path.join(workdir, IDENTITY)
  return files.read_json(path) if os.path.exists(path) else None


def holds_run(workdir: str) -> bool:
  """Whether `workdir` holds files of a run (or its identity)."""
  return any(os.path.exists(os.path.join(workdir, name))
             for name in (IDENTITY, *RUN_FILES))


def check_identity(workdir: str, identity: dict[str, Any]) -> None:
  """Raises a one-line ConfigError unless `workdir` holds no run or a run
  of `identity` (a JSON-able dict)."""
  if not holds_run(workdir):
    return
  old = read_identity(workdir)
  new = json.loads(files.to_json(identity))  # As read back from the file.
  if old == new:
    return
  if old is None:
    what = "files of a run without a recorded identity"
  else:
    what = "another run: " + identity_diff(old, new)
  raise ConfigError(f"{workdir} holds {what}; start it over with "
                    "--config.overwrite=true or use another --workdir")


def claim(workdir: str, identity: dict[str, Any], overwrite: bool) -> None:
  """Records `identity` in `workdir` before anything else is written there.

  A workdir holding a run of another identity (or of none recorded) is a
  ConfigError, or with `overwrite` that run's files are discarded. A run of
  the same identity is kept (resumed or reused). Process 0 decides and
  writes; its error is every process's.
  """
  def claim_it():
    try:
      check_identity(workdir, identity)
    except ConfigError:
      if not overwrite:
        raise
      discard(workdir, (IDENTITY, *RUN_FILES))
    if read_identity(workdir) is None:
      files.write_json(os.path.join(workdir, IDENTITY), identity)
  sharding.on_writer(claim_it)


def identity_diff(old: dict[str, Any], new: dict[str, Any],
                  max_fields: int = 4) -> str:
  """'field old -> new, ...' for the fields that differ, values shortened;
  the task first, then the base model, the settings and the data."""
  a, b = _flatten(old), _flatten(new)
  order = ("task", "base_model", "init_from_run", "settings", "train_data",
           "eval_data")
  keys = sorted((k for k in set(a) | set(b) if a.get(k) != b.get(k)),
                key=lambda k: (next((i for i, p in enumerate(order)
                                     if k.split(".")[0] == p), len(order)), k))
  if "task" in keys and "settings.task" in keys:
    keys.remove("settings.task")  # The same change twice.
  parts = [f"{k} {_short(a.get(k))} -> {_short(b.get(k))}"
           for k in keys[:max_fields]]
  if len(keys) > max_fields:
    parts.append(f"and {len(keys) - max_fields} more")
  return ", ".join(parts)


def _flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
  if not isinstance(tree, dict):
    return {prefix: tree}
  out: dict[str, Any] = {}
  for k, v in tree.items():
    out.update(_flatten(v, f"{prefix}.{k}" if prefix else str(k)))
  return out


def _short(value: Any, n: int = 40) -> str:
  text = repr(value) if isinstance(value, str) else files.to_json(
      value, indent=None)
  text = text.replace("\n", " ")
  if len(text) <= n:
    return text
  return f"{text[:n // 2 - 1]}...{text[-n // 2 + 2:]}"


def read_task_info(workdir: str) -> dict[str, Any]:
  path = os.path.join(workdir, TASK_INFO)
  if not os.path.exists(path):
    raise UserError(f"{path}: missing; is {workdir!r} the workdir of a "
                    "training run?")
  return files.read_json(path)


# ----------------------------------------------------------------------------
# Fingerprints.
# ----------------------------------------------------------------------------


_FINGERPRINTS: dict[tuple, str] = {}


def file_fingerprint(folder: str, names: tuple[str, ...]) -> str:
  """`pretrained.fingerprint` of `names` in `folder`, hashed once per process
  while the files keep their size and modification time."""
  stats = []
  for name in names:
    with contextlib.suppress(FileNotFoundError):
      st = os.stat(os.path.join(folder, name))
      stats.append((name, st.st_size, st.st_mtime_ns))
  key = (os.path.abspath(folder), tuple(names), tuple(stats))
  if key not in _FINGERPRINTS:
    _FINGERPRINTS[key] = pretrained.fingerprint(folder, files=names)
  return _FINGERPRINTS[key]


def records_fingerprint(records: list[dict[str, Any]]) -> dict[str, Any]:
  """{'records': n, 'sha256': short hash of the records' JSON, in order}."""
  h = hashlib.sha256()
  for r in records:
    h.update(json.dumps(r, sort_keys=True, ensure_ascii=False,
                        default=repr).encode("utf-8"))
    h.update(b"\n")
  return {"records": len(records), "sha256": h.hexdigest()[:16]}


def identity_fingerprint(workdir: str) -> str:
  """A short hash of the identity recorded in `workdir` ('' if none)."""
  old = read_identity(workdir)
  if old is None:
    return ""
  return hashlib.sha256(files.to_json(old, sort_keys=True).encode()
                        ).hexdigest()[:16]
