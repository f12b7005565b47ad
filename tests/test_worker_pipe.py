"""benchmarks/worker_pipe.py: the step workers' protocol, end to end with a
stand-in worker process (its 'step' counts calls and returns the count)."""

import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "benchmarks"))
import worker_pipe  # pylint: disable=g-import-not-at-top,wrong-import-position

STANDIN = f"""
import sys
sys.path.insert(0, {os.path.join(ROOT, "benchmarks")!r})
import worker_pipe
calls = [0]
def step():
  calls[0] += 1
  return float(calls[0])
worker_pipe.serve(lambda k: worker_pipe.timed(step, k), {{"name": sys.argv[1]}})
"""


def _start(name):
  return worker_pipe.Worker([sys.executable, "-c", STANDIN, name])


def test_run_start_result_and_close():
  a, b = _start("a"), _start("b")
  try:
    assert a.info == {"ready": True, "name": "a"}
    times = a.run(3)
    assert len(times) == 3 and all(t >= 0 for t in times)
    assert a.loss == 3.0 and len(a.last_cpu) == 3
    # Two requests in flight at once, answered in each worker's own count.
    a.start(2)
    b.start(4)
    assert len(b.result()) == 4 and b.loss == 4.0
    assert len(a.result()) == 2 and a.loss == 5.0
  finally:
    a.close()
    b.close()
  assert a.proc.returncode == 0 and b.proc.returncode == 0


def test_unknown_command_is_answered_with_an_error():
  p = subprocess.run([sys.executable, "-c", STANDIN, "x"], input="jump\nrun 1\n",
                     capture_output=True, text=True, check=True)
  lines = p.stdout.splitlines()
  assert '"error": "unknown command \'jump\'"' in lines[1]
  assert '"loss": 1.0' in lines[2]


def test_a_worker_that_dies_is_one_clear_error():
  with pytest.raises(SystemExit, match="error: the stand-in exited"):
    worker_pipe.Worker([sys.executable, "-c", "raise SystemExit(3)"],
                       what="the stand-in")
