"""Runs `python -m taskemb_jax.main ...` with recording hooks, for the tests
of jobs of several processes (tests/test_multiprocess.py).

  python tests/multiprocess_hooks.py -m taskemb_jax.main --config=... ...

so that launch/local_processes.sh can start it (PYTHON="python
tests/multiprocess_hooks.py"). With TASKEMB_TEST_RECORD=<folder> each
process appends what it does to <folder>/process<i>-<TASKEMB_TEST_TAG>.jsonl
as it happens (so a killed process leaves its record), one [event, value]
line each:

* ``loss``: [workdir, step, mean loss] of a train step;
* ``eval``: [records, loss count] of an evaluation;
* ``encoded``: the number of records of a tokenizer call
  (input_pipeline.encode);
* ``touched``: [operation, path] of a file written, replaced or removed
  through files.write_bytes, os.replace, os.remove or shutil.rmtree.

With TASKEMB_TEST_KILL=<process>:<step>[,<process>:<step>...] each
process named SIGKILLs itself right after saving the latest checkpoint of
its step. With
TASKEMB_TEST_FAIL=<process>:encode that process's first tokenizer call
raises a DataError naming its record 2; with TASKEMB_TEST_FAIL=
<process>:step<n> that process alone raises a DataError after train step n.
"""

import json
import os
import runpy
import shutil
import signal
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

# pylint: disable=g-import-not-at-top,wrong-import-position
import jax

from taskemb_jax import checkpoint, files, input_pipeline, train
from taskemb_jax.errors import DataError

_FOLDER = os.environ.get("TASKEMB_TEST_RECORD", "")
_PATH = os.path.join(_FOLDER, "process{}-{}.jsonl".format(
    os.environ.get("JAX_PROCESS_ID", "0"),
    os.environ.get("TASKEMB_TEST_TAG", "run")))


def _event(name, value):
  if _FOLDER:
    with open(_PATH, "a", encoding="utf-8") as f:
      f.write(json.dumps([name, value]) + "\n")


def _wrap(owner, name, wrapper):
  real = getattr(owner, name)
  setattr(owner, name, lambda *a, **k: wrapper(real, *a, **k))


_FAIL = os.environ.get("TASKEMB_TEST_FAIL", "").split(":")
_CALLS = {"encode": 0}


def _fails(what):
  return _FAIL == [str(jax.process_index()), what]


def _loss(real, loss, step, m, epoch, loop):
  _event("loss", [loop.workdir, step, float(m["loss_sum"]) /
                  max(float(m["count"]), 1.0)])
  if _fails(f"step{step}"):
    raise DataError(f"injected failure of process {jax.process_index()} "
                    f"after step {step}")
  return real(loss, step, m, epoch, loop)


def _metrics(real, kind, outputs, split, labels):
  res = real(kind, outputs, split, labels)
  _event("eval", [len(split.records), float(outputs["count"])])
  return res


def _encode(real, kind, records, *a, **k):
  _event("encoded", len(records))
  _CALLS["encode"] += 1
  if _CALLS["encode"] == 1 and _fails("encode"):
    raise DataError("record 2: injected failure of its encoding")
  return real(kind, records, *a, **k)


def _touch(op):
  def wrapper(real, path, *a, **k):
    _event("touched", [op, os.path.abspath(path)])
    if op == "replace":
      _event("touched", [op, os.path.abspath(a[0])])
    return real(path, *a, **k)
  return wrapper


def _save(real, workdir, which, step, *a, **k):
  real(workdir, which, step, *a, **k)
  kill = os.environ.get("TASKEMB_TEST_KILL", "")
  if which == checkpoint.LATEST and (
      f"{jax.process_index()}:{step}" in kill.split(",")):
    os.kill(os.getpid(), signal.SIGKILL)


_wrap(train, "_add_step_loss", _loss)
_wrap(train, "compute_metrics", _metrics)
_wrap(input_pipeline, "encode", _encode)
_wrap(files, "write_bytes", _touch("write"))
_wrap(os, "replace", _touch("replace"))
_wrap(os, "remove", _touch("remove"))
_wrap(shutil, "rmtree", _touch("rmtree"))
_wrap(checkpoint, "save", _save)

if __name__ == "__main__":
  assert sys.argv[1:3] == ["-m", "taskemb_jax.main"], sys.argv
  sys.argv = ["taskemb_jax.main", *sys.argv[3:]]
  runpy.run_module("taskemb_jax.main", run_name="__main__", alter_sys=True)
