"""Worker processes of test_library_concurrency.py (kept free of pytest so
that "spawn" starts them quickly)."""

import os
import traceback

import numpy as np

from taskemb_jax import library, rank

BASE = {"model": "m", "tokenizer": "t"}
TASKEMB_OPTS = {"estimator": "empirical", "components": ["layer_0/output",
                                                         "pooler"]}


def entry(name):
  return {"name": name, "kind": "classification", "family": "classification",
          "metric": "accuracy", "size": 10, "num_examples": 10, "base": BASE}


def add(lib, name, what, v):
  """Adds version `v` of one embedding: every value is v + 1."""
  x = np.full(8, v + 1.0, np.float32)
  x[0] = 1.0  # Not parallel to the other versions (cosine differs).
  if what == "textemb":
    library.add(lib, entry(name), textemb=x, textemb_options={"v": v},
                overwrite=True)
  else:
    library.add(lib, entry(name), taskemb={"layer_0/output": x, "pooler": x},
                taskemb_options=dict(TASKEMB_OPTS, v=v), overwrite=True)


def check_consistent(got):
  """The arrays are the version that the entry records."""
  for what in ("textemb", "taskemb"):
    if what not in got["entry"]:
      continue
    v = got["entry"][what]["v"]
    arrays = [got["textemb"]] if what == "textemb" else list(
        got["taskemb"].values())
    for a in arrays:
      assert a[1] == v + 1.0, (got["entry"]["name"], what, v, a)


# ----------------------------------------------------------------------------
# Worker processes.


def attempt(errors, where, fn, *args):
  """fn(*args); an exception's traceback is appended to `errors`."""
  try:
    fn(*args)
  except Exception:  # pylint: disable=broad-except
    errors.append(f"{where}: {traceback.format_exc(limit=3)}")


def add_rounds(root, jobs, rounds, barrier, results):
  """Each round, once all workers meet: adds `jobs` to <root>/<round>.

  Puts (rounds, number of errors, first errors) on `results`.
  """
  errors = []
  for r in range(rounds):
    barrier.wait(timeout=60)
    for name, what in jobs:
      attempt(errors, f"writer {name}/{what} round {r}", add,
              os.path.join(root, str(r)), name, what, r)
  results.put((rounds, len(errors), errors[:2]))


def write_until(lib, names, stop, passes, results):
  """Adds both embeddings of `names` (version = pass) until `stop`."""
  errors = []
  while not stop.is_set():
    for name in names:
      for what in ("textemb", "taskemb"):
        attempt(errors, f"writer {name}/{what} v{passes.value}", add, lib,
                name, what, passes.value)
    passes.value += 1
  results.put((len(errors), errors[:2]))


def read_pass(lib):
  """Loads every task, checks it, and ranks the TextEmbs by cosine."""
  loaded = [library.load(lib, name) for name in library.tasks(lib)]
  for got in loaded:
    check_consistent(got)
  texts = [g["textemb"] for g in loaded if g["textemb"] is not None]
  rank.cosine_scores(texts[0], np.stack(texts[1:] + texts[:1]))


def read_until(lib, stop, passes, results):
  """`read_pass` in a loop until `stop`."""
  errors = []
  while not stop.is_set():
    attempt(errors, f"reader pass {passes.value}", read_pass, lib)
    passes.value += 1
  results.put((len(errors), errors[:2]))


def write_forever(lib, go, started):
  """Once `go` is set: adds and removes tasks until killed."""
  if not go.wait(60):
    return
  started.set()
  v = 1
  while True:
    for name in ("a", "b"):
      add(lib, name, "textemb", v)
      add(lib, name, "taskemb", v)
    if "c" in library.tasks(lib):
      library.remove(lib, "c")
    add(lib, "c", "textemb", v)
    v += 1
