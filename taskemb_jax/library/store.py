"""The task library's files: reading, writing and repairing, safe to share.

Layout::

  <library>/manifest.json            {"version": 1, "tasks": {name: entry}}
  <library>/<folder>/textemb.npy     [hidden] float32
  <library>/<folder>/taskemb.npz     one [hidden] array per component
  <library>/<folder>/entry.json      the task's manifest entry
  <library>/.lock, .lock.turn        lock files (``fcntl.flock``)

An entry records the task (name, kind, family, metric, size, number of
examples embedded), the fingerprints of the base model (weights + config)
and tokenizer, the options of each embedding, its folder and the sha256 of
its files. A task's folder is `files.safe_name` of its name; an entry that
names any other folder, or other files, is refused (`LibraryError`) and
nothing outside the library is ever read or deleted for it.

Sharing. Every change (`add`, `remove`, `repair`) holds the exclusive lock
on ``.lock`` for its whole read-modify-write; readers (`open_library`,
`tasks`, `load`) hold the shared lock while they read and change nothing.
Both pass ``.lock.turn`` first (writers hold it, readers pass it shared), so
a waiting writer is not starved by a stream of readers.
A new version of a task is written completely into a uniquely named
``.<folder>.new-<id>`` folder; the current folder is renamed to
``.<folder>.old-<id>``, the new one renamed into place, the manifest
(written atomically) updated, and the old version deleted. A writer killed
at any point leaves every task at its old or its new version: readers read
the version the manifest names (the task's folder, or the ``.old-*``
backup whose entry.json is that entry), and the next writer first repairs
the library under the lock (`repair`): it deletes staging folders and
``.tmp-*`` files, restores a backup whose folder is missing, records a
complete folder the manifest does not name yet, and deletes stale backups.

Embeddings must be finite and not all zeros (a zero vector has no direction
to compare); `load` checks each file's recorded sha256. Replacing an
embedding that exists needs `overwrite=True`; embeddings computed from
different base models, tokenizers or options are never compared
(`check_compatible`).

Which embeddings are usable and comparable is `taskemb_jax.library.checks`.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import re
import shutil
import uuid
import zipfile
from typing import Any, Callable, Iterator, Mapping, Sequence, TypeVar

import numpy as np

from taskemb_jax import files
from taskemb_jax.errors import LibraryError, UserError

VERSION = 1
MANIFEST = "manifest.json"
LOCK, TURN = ".lock", ".lock.turn"
TEXTEMB, TASKEMB, ENTRY = "textemb.npy", "taskemb.npz", "entry.json"
FILES = {"textemb": TEXTEMB, "taskemb": TASKEMB}
# Options that may differ between tasks of one comparison (data, not method).
# Input lengths differ by class, as in the paper (QA's windows are longer).
PER_TASK_OPTIONS = ("num_examples", "components", "seed", "max_length",
                    "finetune_dtype")
# Staging and backup folders of an unfinished write: .<folder>.new|old-<id>.
_SIDE = re.compile(r"\.(.+)\.(new|old)(-[A-Za-z0-9_]+)?")
_T = TypeVar("_T")


def folder_of(name: Any) -> str:
  """The folder of task `name` in a library (`files.safe_name`)."""
  if not isinstance(name, str) or not name:
    raise LibraryError(f"a task name must be a non-empty string, not {name!r}")
  folder = files.safe_name(name)
  if folder == MANIFEST:
    raise LibraryError(f"task name {name!r} is reserved by the library")
  return folder


# ----------------------------------------------------------------------------
# Reading: shared lock, no changes.


def _read_manifest(lib: str) -> dict[str, Any]:
  if not os.path.isdir(lib):
    raise LibraryError(f"{lib}: no task library here")
  path = os.path.join(lib, MANIFEST)
  if not os.path.exists(path):
    return {"version": VERSION, "tasks": {}}
  try:
    manifest = files.read_json(path)
  except UserError as e:
    raise LibraryError(str(e)) from None
  if not isinstance(manifest, dict) or manifest.get("version") != VERSION \
      or not isinstance(manifest.get("tasks"), dict):
    raise LibraryError(f"{path}: not a task library manifest of version "
                       f"{VERSION}")
  return manifest


def _reading(lib: str, read: Callable[[], _T]) -> _T:
  """`read()` under the library's shared lock.

  A library that no writer has locked yet has no lock files: it is read
  without them (reading creates nothing), and read again under the lock if a
  writer created them meanwhile. Waits as long as a writer holds the lock.
  """
  turn = os.path.join(lib, TURN)
  if not os.path.exists(turn):
    try:
      result = read()
    except (LibraryError, OSError):
      if not os.path.exists(turn):
        raise
    else:
      if not os.path.exists(turn):
        return result
  with contextlib.ExitStack() as held:
    with files.lock(turn, shared=True):
      held.enter_context(files.lock(os.path.join(lib, LOCK), shared=True))
    return read()


def open_library(lib: str, create: bool = False) -> dict[str, Any]:
  """The library's manifest, read under the shared lock; changes nothing.

  With `create`, a missing library folder is made (empty). What a killed
  writer left is repaired by the next writer (`repair`); readers read
  around it.
  """
  if create:
    os.makedirs(lib, exist_ok=True)
  return _reading(lib, lambda: _read_manifest(lib))


def tasks(lib: str) -> list[str]:
  """Names of the library's tasks, sorted."""
  return sorted(open_library(lib)["tasks"])


def _checked_entry(lib: str, name: str, entry: Any) -> dict[str, Any]:
  """The manifest's entry of `name` if it names the task's own folder/files."""
  where = f"{os.path.join(lib, MANIFEST)}: task {name!r}"
  if not isinstance(entry, dict) or entry.get("name") != name:
    raise LibraryError(f"{where}: malformed entry (not an object with this "
                       "name)")
  folder = folder_of(name)
  if entry.get("folder") != folder:
    raise LibraryError(f"{where}: folder {entry.get('folder')!r} is not the "
                       f"task's folder {folder!r}; refusing to use it")
  hashes = entry.get("files")
  want = sorted(FILES[w] for w in FILES if w in entry)
  if not isinstance(hashes, dict) or sorted(hashes) != want or not all(
      isinstance(h, str) for h in hashes.values()):
    raise LibraryError(f"{where}: 'files' must hold the sha256 of exactly "
                       f"{want}, not {hashes!r}")
  return entry


def _entry_json(folder: str) -> Any:
  try:
    with open(os.path.join(folder, ENTRY), encoding="utf-8") as f:
      return json.load(f)
  except (OSError, ValueError):
    return None


def _sha(data: bytes) -> str:
  return hashlib.sha256(data).hexdigest()


def _complete(folder: str, entry: Mapping[str, Any]) -> bool:
  """Whether every file of `entry` in `folder` matches its recorded hash."""
  try:
    for fname, digest in entry["files"].items():
      with open(os.path.join(folder, fname), "rb") as f:
        if _sha(f.read()) != digest:
          return False
    return True
  except OSError:
    return False


def _version_folder(lib: str, entry: Mapping[str, Any]) -> str:
  """The folder holding the version of a task that the manifest names."""
  folder = entry["folder"]
  backups = sorted(d for d in os.listdir(lib) if _side_of(d) == (folder,
                                                                 "old"))
  for d in [folder] + backups:
    if _entry_json(os.path.join(lib, d)) == entry:
      return os.path.join(lib, d)
  if _complete(os.path.join(lib, folder), entry):
    return os.path.join(lib, folder)
  raise LibraryError(f"{os.path.join(lib, folder)}: missing or not the "
                     f"version of task {entry['name']!r} that {MANIFEST} "
                     "names")


def _side_of(d: str) -> tuple[str, str] | None:
  m = _SIDE.fullmatch(d)
  return (m.group(1), m.group(2)) if m else None


def _read_file(folder: str, fname: str, entry: Mapping[str, Any],
               verify: bool) -> bytes:
  path = os.path.join(folder, fname)
  try:
    with open(path, "rb") as f:
      data = f.read()
  except OSError as e:
    raise LibraryError(f"{path}: cannot read it ({e.strerror})") from None
  if verify and _sha(data) != entry["files"][fname]:
    raise LibraryError(f"{path}: sha256 does not match the entry of task "
                       f"{entry['name']!r} in {MANIFEST} (damaged or changed)")
  return data


def _arrays(path: str, data: bytes) -> Any:
  try:
    if path.endswith(TEXTEMB):
      return np.load(io.BytesIO(data))
    with np.load(io.BytesIO(data)) as z:
      return {k: z[k] for k in z.files}
  except (ValueError, OSError, EOFError, zipfile.BadZipFile) as e:
    raise LibraryError(f"{path}: not a readable numpy file ({e})") from None


def load(lib: str, name: str, *, verify: bool = True) -> dict[str, Any]:
  """One task: {'entry', 'textemb' ([hidden] or None), 'taskemb' (dict)}.

  'taskemb' maps each component to its [hidden] vector. The version the
  manifest names is read under the shared lock; with `verify` each file
  must match its recorded sha256.
  """
  def read():
    manifest = _read_manifest(lib)
    if name not in manifest["tasks"]:
      raise LibraryError(f"{lib}: no task {name!r} (has: "
                         f"{', '.join(sorted(manifest['tasks'])) or 'none'})")
    entry = _checked_entry(lib, name, manifest["tasks"][name])
    folder = _version_folder(lib, entry)
    out: dict[str, Any] = {"entry": entry, "textemb": None, "taskemb": {}}
    for what, fname in FILES.items():
      if what in entry:
        out[what] = _arrays(os.path.join(folder, fname),
                            _read_file(folder, fname, entry, verify))
    return out
  return _reading(lib, read)


def load_all(lib: str, names: Sequence[str] | None = None, *,
             skip_unreadable: bool = False
             ) -> tuple[dict[str, dict[str, Any]], list[dict[str, str]]]:
  """Loads every task of `lib` (or `names`): ({name: `load` result}, skipped).

  With `skip_unreadable`, a task that cannot be read (damaged files, a bad
  entry) goes to the skipped list as {'name', 'reason'} instead of raising.
  """
  loaded, skipped = {}, []
  for name in tasks(lib) if names is None else names:
    try:
      loaded[name] = load(lib, name)
    except LibraryError as e:
      if not skip_unreadable:
        raise
      skipped.append({"name": name, "reason": str(e)})
  return loaded, skipped


# ----------------------------------------------------------------------------
# Writing: exclusive lock, repair first.


@contextlib.contextmanager
def _writing(lib: str, create: bool = True) -> Iterator[dict[str, Any]]:
  """Holds the exclusive lock; yields the manifest after `_repair`.

  Waits as long as other writers or readers hold the lock (the kernel
  queues the request; a killed holder's lock is dropped).
  """
  if not os.path.isdir(lib):
    if not create:
      raise LibraryError(f"{lib}: no task library here")
    os.makedirs(lib, exist_ok=True)
  with files.lock(os.path.join(lib, TURN)), files.lock(
      os.path.join(lib, LOCK)):
    yield _repair(lib)


def repair(lib: str) -> dict[str, Any]:
  """Finishes or rolls back killed writes (under the lock); the manifest."""
  with _writing(lib, create=False) as manifest:
    return manifest


def _uid() -> str:
  return uuid.uuid4().hex[:12]


def _own_entry(e: Any) -> bool:
  """Whether `e` (an entry.json) is a task's entry naming its own folder."""
  try:
    return isinstance(e, dict) and e.get("folder") == folder_of(e.get("name"))
  except LibraryError:
    return False


def _delete(path: str) -> None:
  if os.path.isdir(path) and not os.path.islink(path):
    shutil.rmtree(path, ignore_errors=True)
  else:
    with contextlib.suppress(FileNotFoundError):
      os.remove(path)


def _repair(lib: str) -> dict[str, Any]:
  """Brings the library back to one version per task (lock held)."""
  manifest = _read_manifest(lib)
  known = manifest["tasks"]
  files.remove_temporaries(lib)
  for d in sorted(os.listdir(lib)):
    side = _side_of(d)
    if side is None:
      continue
    path = os.path.join(lib, d)
    e = _entry_json(path) if side[1] == "old" else None
    if (_own_entry(e) and e["folder"] == side[0] and known.get(e["name"]) == e
        and not os.path.lexists(os.path.join(lib, side[0]))):
      os.replace(path, os.path.join(lib, side[0]))  # Roll back.
    else:
      _delete(path)
  changed = False
  for d in sorted(os.listdir(lib)):
    path = os.path.join(lib, d)
    if d.startswith(".") or not os.path.isdir(path):
      continue
    files.remove_temporaries(path)
    e = _entry_json(path)
    if not _own_entry(e) or e["folder"] != d or known.get(e["name"]) == e:
      continue
    try:
      _checked_entry(lib, e["name"], e)
    except LibraryError:
      continue
    if _complete(path, e):
      known[e["name"]] = e  # Roll forward.
      changed = True
  if changed:
    _write_manifest(lib, manifest)
  return manifest


def _write_manifest(lib: str, manifest: dict[str, Any]) -> None:
  files.write_json(os.path.join(lib, MANIFEST), manifest, sort_keys=True)


def _npy_bytes(array: np.ndarray) -> bytes:
  buf = io.BytesIO()
  np.save(buf, np.asarray(array, np.float32))
  return buf.getvalue()


def _npz_bytes(arrays: Mapping[str, np.ndarray]) -> bytes:
  buf = io.BytesIO()
  np.savez(buf, **{k: np.asarray(v, np.float32) for k, v in arrays.items()})
  return buf.getvalue()


def _check_values(a: np.ndarray, where: str, zero_ok: bool = False) -> None:
  if a.size == 0:
    raise LibraryError(f"{where} is empty; not stored")
  if not np.all(np.isfinite(a)):
    raise LibraryError(f"{where} has non-finite values; not stored")
  if not zero_ok and not np.any(a):
    raise LibraryError(f"{where} is all zeros (degenerate training data?); "
                       "not stored")


def _checked_embeddings(name: str, textemb, taskemb) -> dict[str, Any]:
  """{'textemb': [hidden], 'taskemb': {component: array}} of what is given."""
  new: dict[str, Any] = {}
  if textemb is not None:
    a = np.asarray(textemb, np.float32)
    if a.ndim != 1:
      raise LibraryError(f"task {name!r}: textemb has shape {a.shape}, not "
                         "[hidden]; not stored")
    _check_values(a, f"task {name!r}: textemb")
    new["textemb"] = a
  if taskemb is not None:
    if not taskemb:
      raise LibraryError(f"task {name!r}: taskemb has no component; not "
                         "stored")
    new["taskemb"] = {}
    for comp, v in taskemb.items():
      a = np.asarray(v, np.float32)
      # A parameter that the task's head does not use has zero Fisher.
      _check_values(a, f"task {name!r}: taskemb component {comp!r}",
                    zero_ok=comp.startswith("params/"))
      new["taskemb"][comp] = a
  if not new:
    raise LibraryError(f"task {name!r}: no embedding given to store")
  return new


def _kept(lib: str, name: str, old: Mapping[str, Any] | None,
          task: Mapping[str, Any], new: Mapping[str, Any],
          overwrite: bool) -> list[str]:
  """Which of the old entry's embeddings the new version keeps."""
  if old is None:
    return []
  for what in new:
    if what in old and not overwrite:
      raise LibraryError(
          f"{lib}: task {name!r} already has a {what}; pass "
          "--config.overwrite=True to replace it")
  keep = [w for w in FILES if w in old and w not in new]
  if keep and old.get("base") != task["base"]:
    if not overwrite:
      raise LibraryError(
          f"{lib}: task {name!r} holds a {keep[0]} from another base model "
          f"or tokenizer ({old.get('base')} vs {task['base']}); pass "
          "--config.overwrite=True to drop it")
    return []  # The other embedding is dropped with the old base.
  return keep


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
  both come from the same base model and tokenizer. All-zero or non-finite
  embeddings are refused.
  """
  name = task["name"]
  folder = folder_of(name)
  new = _checked_embeddings(name, textemb, taskemb)
  options = {"textemb": textemb_options, "taskemb": taskemb_options}
  with _writing(lib) as manifest:
    old = manifest["tasks"].get(name)
    if old is not None:
      old = _checked_entry(lib, name, old)
    keep = _kept(lib, name, old, task, new, overwrite)
    entry: dict[str, Any] = dict(task)
    data = {}
    for what, fname in FILES.items():
      if what in new:
        data[fname] = (_npy_bytes if what == "textemb" else _npz_bytes)(
            new[what])
        entry[what] = dict(options[what] or {})
      elif what in keep:
        data[fname] = _read_file(_version_folder(lib, old), fname, old, True)
        entry[what] = old[what]
    entry["files"] = {f: _sha(b) for f, b in data.items()}
    entry["folder"] = folder
    entry = json.loads(files.to_json(entry))
    _install(lib, manifest, entry, data)
  return entry


def _install(lib: str, manifest: dict[str, Any], entry: dict[str, Any],
             data: Mapping[str, bytes]) -> None:
  """Stages the task's new folder, swaps it in and records it (lock held)."""
  folder = entry["folder"]
  staged = os.path.join(lib, f".{folder}.new-{_uid()}")
  os.makedirs(staged)
  for fname, b in data.items():
    files.write_bytes(os.path.join(staged, fname), b)
  files.write_json(os.path.join(staged, ENTRY), entry, sort_keys=True)
  final = os.path.join(lib, folder)
  backup = None
  if os.path.lexists(final):
    backup = os.path.join(lib, f".{folder}.old-{_uid()}")
    os.replace(final, backup)
  os.replace(staged, final)
  manifest["tasks"][entry["name"]] = entry
  _write_manifest(lib, manifest)
  if backup:
    _delete(backup)


def remove(lib: str, *names: str) -> None:
  """Removes tasks: folders set aside, manifest written, folders deleted.

  Only a task's own folder (`folder_of`) is ever deleted, whatever its
  entry says.
  """
  names = tuple(dict.fromkeys(names))
  if not names:
    raise LibraryError(f"{lib}: no task named to remove")
  with _writing(lib, create=False) as manifest:
    missing = [n for n in names if n not in manifest["tasks"]]
    if missing:
      raise LibraryError(f"{lib}: no task {missing[0]!r} (has: "
                         f"{', '.join(sorted(manifest['tasks'])) or 'none'})")
    aside = []
    for name in names:
      folder = folder_of(name)
      if os.path.lexists(os.path.join(lib, folder)):
        aside.append(os.path.join(lib, f".{folder}.old-{_uid()}"))
        os.replace(os.path.join(lib, folder), aside[-1])
      del manifest["tasks"][name]
    _write_manifest(lib, manifest)
    for path in aside:
      _delete(path)


# ----------------------------------------------------------------------------
# Usability and comparability.
