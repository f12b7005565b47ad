"""The task library on disk: embeddings of many tasks, safe to share.

Layout::

  <library>/manifest.json     {"version": 1, "tasks": {name: entry}}
  <library>/<task>/textemb.npy       [hidden] float32
  <library>/<task>/taskemb.npz       one [hidden] array per component
  <library>/<task>/entry.json        the task's manifest entry

An entry records the task (name, kind, family, metric, size, number of
examples embedded), the fingerprints of the base model (weights + config)
and tokenizer, the options of each embedding, and the sha256 of its files.

Writes are atomic: a new version of a task's folder is written completely
under a temporary name, swapped in by renames, and the manifest (itself
written to a temporary file and renamed) is updated last. A run killed at
any point leaves every task either at its old or at its new version;
`open_library` finishes or rolls back an interrupted swap. Replacing an
embedding that exists needs `overwrite=True`; embeddings computed from
different base models, tokenizers or options are never compared
(`check_compatible`).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import shutil
import tempfile
from typing import Any, Mapping, Sequence

import numpy as np

from taskemb_jax.errors import LibraryError

VERSION = 1
MANIFEST = "manifest.json"
TEXTEMB, TASKEMB, ENTRY = "textemb.npy", "taskemb.npz", "entry.json"
# Options that may differ between tasks of one comparison (data, not method).
PER_TASK_OPTIONS = ("num_examples", "components", "seed")


def _safe(name: str) -> str:
  """A folder name for a task name (user tasks may contain '/' or ':')."""
  safe = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "task"
  if safe != name:
    safe += "-" + hashlib.sha1(name.encode()).hexdigest()[:8]
  return safe


def _write_atomic(path: str, data: bytes) -> None:
  folder = os.path.dirname(path)
  fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=folder)
  try:
    with os.fdopen(fd, "wb") as f:
      f.write(data)
      f.flush()
      os.fsync(f.fileno())
    os.replace(tmp, path)
  except BaseException:
    if os.path.exists(tmp):
      os.remove(tmp)
    raise


def _npy_bytes(array: np.ndarray) -> bytes:
  buf = io.BytesIO()
  np.save(buf, np.asarray(array, np.float32))
  return buf.getvalue()


def _npz_bytes(arrays: Mapping[str, np.ndarray]) -> bytes:
  buf = io.BytesIO()
  np.savez(buf, **{k: np.asarray(v, np.float32) for k, v in arrays.items()})
  return buf.getvalue()


def _sha(data: bytes) -> str:
  return hashlib.sha256(data).hexdigest()


def _read_manifest(lib: str) -> dict[str, Any]:
  path = os.path.join(lib, MANIFEST)
  if not os.path.exists(path):
    return {"version": VERSION, "tasks": {}}
  try:
    with open(path) as f:
      manifest = json.load(f)
  except json.JSONDecodeError as e:
    raise LibraryError(f"{path}:{e.lineno}: not valid JSON: {e.msg}") from e
  if manifest.get("version") != VERSION or not isinstance(
      manifest.get("tasks"), dict):
    raise LibraryError(f"{path}: not a task library manifest of version "
                       f"{VERSION}")
  return manifest


def _write_manifest(lib: str, manifest: dict[str, Any]) -> None:
  _write_atomic(os.path.join(lib, MANIFEST),
                (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode())


def open_library(lib: str, create: bool = False) -> dict[str, Any]:
  """Reads a library's manifest after finishing any interrupted write.

  An interrupted swap leaves ``.<task>.new`` / ``.<task>.old`` folders: a
  complete new version is moved in (roll forward), otherwise the old one is
  restored; the manifest is brought in line with the task folders' own
  entry.json. Leftover temporary folders are removed.
  """
  if not os.path.isdir(lib):
    if not create:
      raise LibraryError(f"{lib}: no task library here")
    os.makedirs(lib, exist_ok=True)
  manifest = _read_manifest(lib)
  changed = False
  for d in sorted(os.listdir(lib)):
    m = re.fullmatch(r"\.(.+)\.(new|old)", d)
    if not m:
      continue
    folder, which = m.group(1), m.group(2)
    final = os.path.join(lib, folder)
    staged = os.path.join(lib, d)
    if which == "new" and not os.path.exists(final) and _complete(staged):
      os.replace(staged, final)
    elif which == "old" and not os.path.exists(final):
      os.replace(staged, final)
    else:
      shutil.rmtree(staged, ignore_errors=True)
  for d in sorted(os.listdir(lib)):
    path = os.path.join(lib, d, ENTRY)
    if d.startswith(".") or not os.path.exists(path):
      continue
    with open(path) as f:
      entry = json.load(f)
    if manifest["tasks"].get(entry["name"]) != entry:
      manifest["tasks"][entry["name"]] = entry
      changed = True
  if changed:
    _write_manifest(lib, manifest)
  return manifest


def _complete(folder: str) -> bool:
  """A staged task folder whose every file matches its recorded hash."""
  try:
    with open(os.path.join(folder, ENTRY)) as f:
      entry = json.load(f)
    for name, digest in entry["files"].items():
      with open(os.path.join(folder, name), "rb") as g:
        if _sha(g.read()) != digest:
          return False
    return True
  except (OSError, ValueError, KeyError):
    return False


def add(lib: str, task: Mapping[str, Any], *,
        textemb: np.ndarray | None = None,
        textemb_options: Mapping[str, Any] | None = None,
        taskemb: Mapping[str, np.ndarray] | None = None,
        taskemb_options: Mapping[str, Any] | None = None,
        overwrite: bool = False) -> dict[str, Any]:
  """Adds or updates a task's embeddings; returns its new entry.

  `task` holds name, kind, family, metric, size, num_examples and `base`
  (fingerprints of base model and tokenizer). An embedding the entry already
  has is replaced only with `overwrite`; the other one is kept, provided
  both come from the same base model and tokenizer.
  """
  manifest = open_library(lib, create=True)
  name = task["name"]
  old = manifest["tasks"].get(name)
  for what, new in (("textemb", textemb), ("taskemb", taskemb)):
    if new is not None and old and what in old and not overwrite:
      raise LibraryError(
          f"{lib}: task {name!r} already has a {what}; pass "
          "--config.overwrite=True to replace it")
  if old and old["base"] != task["base"]:
    keep = [w for w in ("textemb", "taskemb") if w in old and
            {"textemb": textemb, "taskemb": taskemb}[w] is None]
    if keep and not overwrite:
      raise LibraryError(
          f"{lib}: task {name!r} holds a {keep[0]} from another base model "
          f"or tokenizer ({old['base']} vs {task['base']}); pass "
          "--config.overwrite=True to drop it")
    if keep:
      old = None  # The other embedding is dropped with the old base.
  folder = _safe(name)
  final = os.path.join(lib, folder)
  files: dict[str, bytes] = {}
  entry: dict[str, Any] = {k: v for k, v in task.items()}
  for what, fname, new, opts, to_bytes in (
      ("textemb", TEXTEMB, textemb, textemb_options, _npy_bytes),
      ("taskemb", TASKEMB, taskemb, taskemb_options, _npz_bytes)):
    if new is not None:
      _check_finite(new, what, name)
      files[fname] = to_bytes(new)
      entry[what] = dict(opts or {})
    elif old and what in old:
      with open(os.path.join(final, fname), "rb") as f:
        files[fname] = f.read()
      entry[what] = old[what]
  entry["files"] = {f: _sha(b) for f, b in files.items()}
  entry["folder"] = folder

  staged = os.path.join(lib, f".{folder}.new")
  shutil.rmtree(staged, ignore_errors=True)
  os.makedirs(staged)
  for fname, data in files.items():
    _write_atomic(os.path.join(staged, fname), data)
  _write_atomic(os.path.join(staged, ENTRY),
                (json.dumps(entry, indent=2, sort_keys=True) + "\n").encode())
  backup = os.path.join(lib, f".{folder}.old")
  if os.path.exists(final):
    os.replace(final, backup)
  os.replace(staged, final)
  manifest["tasks"][name] = entry
  _write_manifest(lib, manifest)
  shutil.rmtree(backup, ignore_errors=True)
  return entry


def _check_finite(x, what: str, name: str) -> None:
  arrays = x.values() if isinstance(x, Mapping) else [x]
  for a in arrays:
    if not np.all(np.isfinite(np.asarray(a))):
      raise LibraryError(f"task {name!r}: {what} has non-finite values; "
                         "not stored")


def load(lib: str, name: str) -> dict[str, Any]:
  """One task: {'entry', 'textemb' ([hidden] or None), 'taskemb' (dict)}."""
  manifest = open_library(lib)
  if name not in manifest["tasks"]:
    raise LibraryError(f"{lib}: no task {name!r} (has: "
                       f"{', '.join(sorted(manifest['tasks'])) or 'none'})")
  entry = manifest["tasks"][name]
  folder = os.path.join(lib, entry["folder"])
  out: dict[str, Any] = {"entry": entry, "textemb": None, "taskemb": {}}
  if "textemb" in entry:
    out["textemb"] = np.load(os.path.join(folder, TEXTEMB))
  if "taskemb" in entry:
    with np.load(os.path.join(folder, TASKEMB)) as z:
      out["taskemb"] = {k: z[k] for k in z.files}
  return out


def tasks(lib: str) -> list[str]:
  return sorted(open_library(lib)["tasks"])


def remove(lib: str, name: str) -> None:
  """Removes a task (manifest first, then its folder)."""
  manifest = open_library(lib)
  entry = manifest["tasks"].pop(name, None)
  if entry is None:
    raise LibraryError(f"{lib}: no task {name!r}")
  _write_manifest(lib, manifest)
  shutil.rmtree(os.path.join(lib, entry["folder"]), ignore_errors=True)


def comparable_options(options: Mapping[str, Any]) -> dict[str, Any]:
  """The embedding options that must agree for two tasks to be compared."""
  return {k: v for k, v in options.items() if k not in PER_TASK_OPTIONS}


def check_compatible(entries: Sequence[Mapping[str, Any]],
                     what: str) -> None:
  """Raises LibraryError unless all entries' `what` embeddings compare.

  `what` is 'textemb' or 'taskemb'. Requires the same base model and
  tokenizer fingerprints and the same method options.
  """
  if not entries:
    return
  ref = entries[0]
  for e in entries:
    if what not in e:
      raise LibraryError(f"task {e['name']!r} has no {what}")
    if e["base"] != ref["base"]:
      raise LibraryError(
          f"tasks {ref['name']!r} and {e['name']!r} were embedded with "
          f"different base models or tokenizers ({ref['base']} vs "
          f"{e['base']}); their {what}s cannot be compared")
    a, b = comparable_options(ref[what]), comparable_options(e[what])
    if a != b:
      diff = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
      raise LibraryError(
          f"tasks {ref['name']!r} and {e['name']!r} have {what}s computed "
          f"with different options ({', '.join(diff)}): "
          f"{ {k: a.get(k) for k in diff} } vs { {k: b.get(k) for k in diff} }")
