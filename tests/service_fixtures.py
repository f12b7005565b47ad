"""Shared pieces of the service tests: a tiny library (built once per test
session, by the CLI in a subprocess), server and worker processes, files.

Processes run `python -m taskemb_jax.main --config=configs/serve.py:tiny`
from the repository root in their own process group, and are stopped (the
group killed) by the context managers that started them.
"""

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time

import httpx
import pytest

import synthetic
from configs import serve as serve_config
from taskemb_jax import files

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
KINDS = ("classification", "regression", "tagging")
TINY = "--config=configs/serve.py:tiny"


def build_tiny_library(base: str) -> str:
  """A library of three synthetic tasks embedded with the tiny model.

  Built once per session under `base` (a lock and a marker make a second
  caller reuse it).
  """
  folder = os.path.join(base, "service-library")
  lib = os.path.join(folder, "lib")
  os.makedirs(folder, exist_ok=True)
  with files.lock(os.path.join(folder, ".lock")):
    if os.path.exists(os.path.join(folder, "done")):
      return lib
    names = [f"{k}:{synthetic.write_task(os.path.join(folder, k), k, n_train=48, n_val=24)}"
             for k in KINDS]
    run = subprocess.run(
        [sys.executable, "-m", "taskemb_jax.main", TINY,
         "--config.stage=build_library", f"--config.library={lib}",
         f"--config.transfer.sources={','.join(names)}",
         f"--workdir={os.path.join(folder, 'work')}"],
        cwd=ROOT, capture_output=True, text=True, timeout=600, check=False)
    assert run.returncode == 0, run.stderr[-3000:]
    open(os.path.join(folder, "done"), "w").close()
  return lib


@pytest.fixture(scope="session")
def tiny_library(tmp_path_factory) -> str:
  return build_tiny_library(str(tmp_path_factory.getbasetemp()))


def copy_library(lib: str, dest: str) -> str:
  shutil.copytree(lib, dest)
  return dest


def tiny_config(lib: str, **serve):
  """configs/serve.py:tiny with the library and serve fields given."""
  c = serve_config.get_config("tiny")
  c.library = lib
  c.serve.update(serve)
  return c


def write_jsonl(path: str, records) -> str:
  with open(path, "w") as f:
    for r in records:
      f.write(json.dumps(r) + "\n")
  return path


def classification_file(path: str, n: int = 60, seed: int = 7) -> str:
  return write_jsonl(path, synthetic.make_records("classification", n, seed))


def free_port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def _stop(proc: subprocess.Popen, timeout_s: float = 30.0) -> None:
  """SIGTERM to the process, then SIGKILL to its whole group."""
  if proc.poll() is None:
    proc.terminate()
    try:
      proc.wait(timeout_s)
    except subprocess.TimeoutExpired:
      pass
  with contextlib.suppress(ProcessLookupError, PermissionError):
    os.killpg(proc.pid, signal.SIGKILL)
  proc.wait(10)


@contextlib.contextmanager
def process(args, log_path: str):
  """A `taskemb_jax.main` process (own process group), stopped at the end."""
  with open(log_path, "ab") as log:
    proc = subprocess.Popen([sys.executable, "-m", "taskemb_jax.main", *args],
                            cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
  try:
    yield proc
  finally:
    _stop(proc)


def wait_for(fn, timeout_s: float, what: str, every_s: float = 0.2):
  """Polls fn() until it returns a true value; that value."""
  deadline = time.time() + timeout_s
  last = None
  while time.time() < deadline:
    try:
      last = fn()
    except AssertionError:
      raise
    except Exception as e:  # pylint: disable=broad-except
      last = e  # Not up yet (connection refused, ...).
    if last and not isinstance(last, Exception):
      return last
    time.sleep(every_s)
  raise AssertionError(f"timed out after {timeout_s} s waiting for {what}; "
                       f"last: {last!r}")


@contextlib.contextmanager
def server(workdir: str, lib: str, *flags: str, port: int | None = None,
           workers: int | None = None, timeout_s: float = 90.0):
  """`serve` (role all) on a free loopback port; yields (url, process).

  Waits until the API answers and `workers` workers (default: the
  config's, 1) beat.
  """
  port = port or free_port()
  args = [TINY, f"--workdir={workdir}", f"--config.library={lib}",
          f"--config.serve.port={port}", *flags]
  url = f"http://127.0.0.1:{port}"
  want = 1 if workers is None else workers
  with process(args, os.path.join(workdir + ".log")) as proc:
    def ready():
      assert proc.poll() is None, f"server exited with {proc.returncode}"
      h = httpx.get(url + "/api/health", timeout=5).json()
      return len(h["workers"]) >= want and h
    wait_for(ready, timeout_s, f"the server on {url} and {want} worker(s)")
    yield url, proc


def wait_job(url: str, job_id: str, states, timeout_s: float = 120.0,
             check=None):
  """Polls the job until its state is in `states` (and check(job))."""
  def done():
    job = httpx.get(f"{url}/api/jobs/{job_id}", timeout=10).json()
    return job if job["state"] in states and (
        check is None or check(job)) else None
  return wait_for(done, timeout_s, f"job {job_id} in {states}")
