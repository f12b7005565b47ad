"""The `serve` stage: the HTTP server and its worker processes, one command.

  python -m taskemb_jax.main --config=configs/serve.py --workdir=work/serve

Roles (config.serve.role): 'all' runs the API server (uvicorn) and starts
config.serve.workers worker processes, restarting one that dies; 'api' the
server alone; 'worker' one worker (`service.worker`) for another host's
queue (config.serve.broker=redis://...). The server binds to
config.serve.host (loopback by default).
"""

from __future__ import annotations

import multiprocessing
import os
import threading
import time

import ml_collections
from absl import logging

from taskemb_jax import library as library_lib
from taskemb_jax.errors import ConfigError
from taskemb_jax.service import worker as worker_lib

ROLES = ("all", "api", "worker")
# A worker that dies this soon after its start, this many times in a row, is
# not started again (e.g. a broker that cannot be reached).
_QUICK_S, _QUICK_DEATHS = 20.0, 5


def check_settings(config: ml_collections.ConfigDict) -> None:
  """One-line ConfigErrors for serve fields out of range."""
  s = config.serve
  bad = []
  if s.role not in ROLES:
    bad.append(f"config.serve.role={s.role!r}: must be one of "
               f"{', '.join(ROLES)}")
  if not 0 <= s.port < 65536:
    bad.append(f"config.serve.port={s.port}: must be in [0, 65535]")
  for field in ("workers", "max_upload_mb", "max_examples", "max_attempts",
                "top_k", "max_description_chars"):
    low = 0 if field == "workers" else 1
    if not isinstance(s[field], int) or s[field] < low:
      bad.append(f"config.serve.{field}={s[field]!r}: must be an integer >= "
                 f"{low}")
  for field in ("heartbeat_s", "stale_s"):
    if not s[field] > 0:
      bad.append(f"config.serve.{field}={s[field]!r}: must be > 0")
  if s.stale_s <= 2 * s.heartbeat_s:
    bad.append(f"config.serve.stale_s={s.stale_s}: must exceed twice "
               f"config.serve.heartbeat_s={s.heartbeat_s}")
  if bad:
    raise ConfigError("; ".join(bad))


class Workers:
  """Worker processes of role 'all' (spawned), restarted when they die."""

  def __init__(self, config: ml_collections.ConfigDict, workdir: str, n: int):
    self.config, self.workdir, self.n = config, workdir, n
    self.ctx = multiprocessing.get_context("spawn")
    self.procs: list = [None] * n
    self.quick = [0] * n
    self.started = [0.0] * n
    self.stopping = threading.Event()

  def _start(self, i: int) -> None:
    p = self.ctx.Process(target=worker_lib.worker_main,
                         args=(self.config, self.workdir, os.getpid()),
                         name=f"taskemb-worker-{i}", daemon=False)
    p.start()
    self.procs[i], self.started[i] = p, time.time()
    logging.info("serve: started worker %d (pid %d)", i, p.pid)

  def start(self) -> None:
    for i in range(self.n):
      self._start(i)
    threading.Thread(target=self._watch, daemon=True).start()

  def _watch(self) -> None:
    while not self.stopping.wait(0.5):
      for i, p in enumerate(self.procs):
        if p is None or p.is_alive() or self.stopping.is_set():
          continue
        quick = time.time() - self.started[i] < _QUICK_S
        self.quick[i] = self.quick[i] + 1 if quick else 0
        if self.quick[i] >= _QUICK_DEATHS:
          logging.error("serve: worker %d died %d times right after its "
                        "start (exit code %s); not restarting it", i,
                        self.quick[i], p.exitcode)
          self.procs[i] = None
          continue
        logging.warning("serve: worker %d (pid %d) exited with code %s; "
                        "restarting it", i, p.pid, p.exitcode)
        self._start(i)

  def stop(self, timeout_s: float = 20.0) -> None:
    """SIGTERM (a worker puts its running job back in the queue), then
    SIGKILL after timeout_s."""
    self.stopping.set()
    live = [p for p in self.procs if p is not None and p.is_alive()]
    for p in live:
      p.terminate()
    deadline = time.time() + timeout_s
    for p in live:
      p.join(max(0.0, deadline - time.time()))
      if p.is_alive():
        p.kill()
        p.join(5)


def serve_stage(config: ml_collections.ConfigDict, workdir: str) -> None:
  """Serves the task bank until interrupted (see the module docstring)."""
  check_settings(config)
  workdir = workdir or os.path.join("work", "serve")
  s = config.serve
  library_lib.tasks(config.library)  # A missing library fails here, in one line.
  if s.role == "worker":
    worker_lib.worker_main(config, workdir)
    return
  import uvicorn  # pylint: disable=import-outside-toplevel
  from taskemb_jax.service import app as app_lib  # pylint: disable=import-outside-toplevel
  app = app_lib.create_app(config, workdir)
  workers = Workers(config, workdir, s.workers if s.role == "all" else 0)
  workers.start()
  print(f"serving the task bank on http://{s.host}:{s.port} (queue: "
        f"{s.broker or os.path.join(workdir, 'queue.db')}, "
        f"{workers.n} local worker(s))", flush=True)
  try:
    uvicorn.run(app, host=s.host, port=s.port, log_level="info")
  finally:
    workers.stop()
