"""The pipe protocol of the benchmarks' step workers (standard library only:
the PyTorch worker imports it from its own venv).

A worker process builds a train step, writes one JSON line (``{"ready":
true, ...}``), then answers commands on stdin, one per line, each with one
JSON line on stdout:

  run K   -> {"times": [wall seconds of each of K steps],
              "cpu": [CPU seconds of the process in each], "loss": ...}
  quit    -> exits (as does the end of stdin)

`serve` is the worker's side, `Worker` the parent's.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from typing import Callable


def timed(step: Callable[[], object], k: int) -> dict:
  """K calls of `step` (which blocks until its step is done and returns the
  loss or None): their wall and CPU seconds, and the last loss."""
  times, cpu, loss = [], [], None
  for _ in range(k):
    t, c = time.perf_counter(), time.process_time()
    loss = step()
    times.append(time.perf_counter() - t)
    cpu.append(time.process_time() - c)
  return {"times": times, "cpu": cpu, "loss": loss}


def serve(run: Callable[[int], dict], ready: dict) -> None:
  """The worker's loop: `ready` first, then `run(K)` for every 'run K'."""
  print(json.dumps({"ready": True, **ready}), flush=True)
  for line in sys.stdin:
    cmd = line.split()
    if not cmd or cmd[0] == "quit":
      break
    if cmd[0] == "run" and len(cmd) == 2 and cmd[1].isdigit():
      print(json.dumps(run(int(cmd[1]))), flush=True)
    else:
      print(json.dumps({"error": f"unknown command {line.strip()!r}"}),
            flush=True)


class Worker:
  """The parent's handle on a worker process started with `cmd`.

  `info` is its ready line; `run(k)` the times of k steps (the CPU seconds
  of the last request in `last_cpu`, its loss in `loss`); `start(k)` and
  `result()` split a request so that several workers run at once.
  """

  def __init__(self, cmd: list[str], env: dict | None = None,
               what: str = "a worker"):
    self.what = what
    self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE,
                                 stdout=subprocess.PIPE, text=True, env=env)
    self.info = self._read()
    self.loss, self.last_cpu = None, []

  def _read(self) -> dict:
    line = self.proc.stdout.readline()
    if not line:
      sys.exit(f"error: {self.what} exited ({self.proc.wait()})")
    out = json.loads(line)
    if "error" in out:
      sys.exit(f"error: {self.what}: {out['error']}")
    return out

  def start(self, k: int) -> None:
    self.proc.stdin.write(f"run {k}\n")
    self.proc.stdin.flush()

  def result(self) -> list[float]:
    out = self._read()
    self.loss, self.last_cpu = out.get("loss"), out.get("cpu", [])
    return out["times"]

  def run(self, k: int) -> list[float]:
    self.start(k)
    return self.result()

  def close(self) -> None:
    if self.proc.poll() is None:
      self.proc.stdin.write("quit\n")
      self.proc.stdin.flush()
      self.proc.wait(timeout=60)
