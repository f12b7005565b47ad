"""Files every stage writes: atomic writes, strict JSON, safe names, locks.

* `write_bytes` / `write_text` / `write_json`: the data goes to a uniquely
  named temporary file in the destination's folder (``.tmp-*``), is flushed
  to disk and renamed over the destination, so a reader sees the old or the
  new file, never a partial one, and two writers never share a temporary
  file. `remove_temporaries` deletes what a killed writer left behind.
* `write_json` writes strict JSON: numpy scalars and arrays become numbers
  and lists; a non-finite float (JSON has no NaN) becomes ``null``.
* `read_json`: a malformed file is one `UserError` naming the file and line.
* `safe_name`: one collision-free path component for any task name.
* `lock`: an exclusive (or shared) inter-process lock (``fcntl.flock``) on a
  lock file.
* `comma_list`: the one parser of comma-separated names in config fields.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import math
import os
import re
import tempfile
import time
from typing import Any, Iterator

import numpy as np

from taskemb_jax.errors import UserError

TEMP_PREFIX = ".tmp-"
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
_MAX_NAME = 96  # Characters of a name kept before its hash suffix.
_UMASK = os.umask(0o022)
os.umask(_UMASK)


def write_bytes(path: str, data: bytes) -> None:
  """Writes `data` to `path` atomically (unique temporary file, rename)."""
  folder = os.path.dirname(os.path.abspath(path))
  os.makedirs(folder, exist_ok=True)
  fd, tmp = tempfile.mkstemp(prefix=TEMP_PREFIX, dir=folder)
  try:
    os.fchmod(fd, 0o666 & ~_UMASK)  # mkstemp's 0600 -> what open() gives.
    with os.fdopen(fd, "wb") as f:
      f.write(data)
      f.flush()
      os.fsync(f.fileno())
    os.replace(tmp, path)
  except BaseException:
    with contextlib.suppress(FileNotFoundError):
      os.remove(tmp)
    raise


def write_text(path: str, text: str) -> None:
  """Writes UTF-8 text atomically."""
  write_bytes(path, text.encode("utf-8"))


def to_json(obj: Any, *, indent: int | None = 2, sort_keys: bool = False
            ) -> str:
  """Strict JSON text: numpy values converted, non-finite floats as null."""
  return json.dumps(_jsonable(obj), indent=indent, sort_keys=sort_keys,
                    allow_nan=False)


def write_json(path: str, obj: Any, *, sort_keys: bool = False) -> None:
  """Writes `obj` as strict JSON atomically (see `to_json`)."""
  write_text(path, to_json(obj, sort_keys=sort_keys) + "\n")


def read_json(path: str) -> Any:
  """Reads a JSON file; a missing or malformed one is a one-line UserError."""
  try:
    with open(path, encoding="utf-8-sig") as f:
      return json.load(f)
  except FileNotFoundError:
    raise UserError(f"{path}: file not found") from None
  except json.JSONDecodeError as e:
    raise UserError(f"{path}:{e.lineno}: not valid JSON: {e.msg}") from None
  except UnicodeDecodeError as e:
    raise UserError(f"{path}: not UTF-8 text ({e.reason} at byte "
                    f"{e.start})") from None


def _jsonable(x: Any) -> Any:
  if isinstance(x, dict):
    return {str(k) if not isinstance(k, str) else k: _jsonable(v)
            for k, v in x.items()}
  if isinstance(x, (list, tuple)):
    return [_jsonable(v) for v in x]
  if isinstance(x, np.ndarray):
    return _jsonable(x.tolist())
  if isinstance(x, np.generic):
    return _jsonable(x.item())
  if isinstance(x, float) and not math.isfinite(x):
    return None
  if x is None or isinstance(x, (str, int, float, bool)):
    return x
  raise TypeError(f"not JSON serialisable: {type(x).__name__}")


def remove_temporaries(folder: str, min_age_s: float = 0.0) -> list[str]:
  """Deletes ``.tmp-*`` files a killed writer left in `folder`.

  Call it only while holding the lock that writers of `folder` take (or
  with `min_age_s` longer than any write lasts). Returns the names removed.
  """
  removed = []
  if not os.path.isdir(folder):
    return removed
  now = time.time()
  for name in os.listdir(folder):
    path = os.path.join(folder, name)
    if not name.startswith(TEMP_PREFIX) or not os.path.isfile(path):
      continue
    try:
      if now - os.path.getmtime(path) >= min_age_s:
        os.remove(path)
        removed.append(name)
    except FileNotFoundError:
      pass
  return removed


def safe_name(name: str) -> str:
  """One path component for `name`, distinct for distinct names.

  Names made of letters, digits and ``._-`` (not starting with a dot) are
  kept as they are; any other name (user tasks hold ``:`` and ``/``) is
  sanitised and suffixed with a hash of the full name, so that e.g.
  ``classification:/d/a_b.jsonl`` and ``classification:/d/a/b.jsonl`` get
  different folders.
  """
  if (name and _UNSAFE.search(name) is None and not name.startswith(".")
      and len(name) <= _MAX_NAME):
    return name
  safe = _UNSAFE.sub("_", name).strip("._")[:_MAX_NAME] or "task"
  return f"{safe}-{hashlib.sha1(name.encode('utf-8')).hexdigest()[:8]}"


def is_safe_component(folder: Any) -> bool:
  """Whether `folder` is a single, plain path component (no '..', no '/')."""
  return (isinstance(folder, str) and bool(folder) and folder not in (".", "..")
          and "/" not in folder and "\\" not in folder and "\0" not in folder)


def comma_list(spec: str) -> list[str]:
  """'a, b,,c ' -> ['a', 'b', 'c']: names separated by commas, trimmed."""
  return [x.strip() for x in (spec or "").split(",") if x.strip()]


@contextlib.contextmanager
def lock(path: str, timeout_s: float | None = None,
         what: str = "", shared: bool = False) -> Iterator[None]:
  """Holds an exclusive `fcntl.flock` on the file `path` (created if needed).

  The lock is released when the block ends or the process dies (the kernel
  drops it), so a killed holder never blocks others. With `timeout_s`, a
  lock not obtained in time is a UserError naming `what` (or the path).
  With `shared`, the lock is a shared one: any number of shared holders at
  once, none while an exclusive one is held (readers vs. writers); the file
  is then opened read-only.
  """
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  fd = os.open(path, (os.O_RDONLY if shared else os.O_RDWR) | os.O_CREAT,
               0o644)
  mode = fcntl.LOCK_SH if shared else fcntl.LOCK_EX
  try:
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    while True:
      try:
        fcntl.flock(fd, mode | (0 if deadline is None else fcntl.LOCK_NB))
        break
      except OSError as e:
        if e.errno not in (errno.EAGAIN, errno.EACCES):
          raise
        if time.monotonic() >= deadline:
          raise UserError(f"{what or path}: busy (another process holds "
                          f"{path}); try again later") from None
        time.sleep(0.05)
    yield
  finally:
    os.close(fd)  # Closing the descriptor releases the lock.


@contextlib.contextmanager
def try_lock(path: str) -> Iterator[bool]:
  """Like `lock` without waiting: yields True if obtained, else False."""
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
  try:
    try:
      fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
      got = True
    except OSError as e:
      if e.errno not in (errno.EAGAIN, errno.EACCES):
        raise
      got = False
    yield got
  finally:
    os.close(fd)
